"""Fixture pipelines declared in code (found by ``geartrain.pipelines.code.discover``).

Module-level specs and the ``PIPELINES`` list are both collected.
"""

from __future__ import annotations

from typing import Any

from geartrain.pipelines.spec import JSON, PipelineSpec, StageSpec, StepSpec

T = "tests.testapp.tasks."


def record(name: str, seconds: float = 0.0, **options: Any) -> StepSpec:
    """A ``step_record`` step whose key is its name."""
    kwargs: dict[str, JSON] = {"key": name}
    if seconds:
        kwargs["seconds"] = seconds
    return StepSpec(name=name, task=T + "step_record", kwargs=kwargs, **options)


etl = PipelineSpec(
    name="fixture-etl",
    description="Extract two tables, then load them.",
    defaults={"region": "eu"},
    stages=(
        StageSpec(
            name="extract",
            steps=(
                record("orders", weight=2.5),
                StepSpec(
                    name="customers",
                    task=T + "step_with_kwargs",
                    kwargs={"key": "customers", "limit": 10},
                    queue="reports",
                    priority=5,
                    critical=False,
                    max_attempts=2,
                    timeout=30.0,
                ),
            ),
        ),
        StageSpec(name="load", depends_on=("extract",), steps=(record("warehouse"),)),
    ),
)

wait_ok = PipelineSpec(
    name="fixture-wait-ok",
    description="Succeeds with one non-critical failure.",
    stages=(
        StageSpec(
            name="first",
            steps=(
                record("ok-a", 0.6),
                StepSpec(
                    name="ok-b",
                    task=T + "step_record",
                    kwargs={"key": "ok-b", "seconds": 0.3, "fail": True},
                    critical=False,
                    max_attempts=1,
                ),
            ),
        ),
        StageSpec(name="second", depends_on=("first",), steps=(record("ok-c", 0.6),)),
    ),
)

PIPELINES = [
    PipelineSpec(
        name="fixture-wait-fail",
        description="Fails: a critical step fails, the next stage never starts.",
        stages=(
            StageSpec(
                name="first",
                steps=(
                    record("fail-a", 0.3),
                    StepSpec(
                        name="fail-b",
                        task=T + "step_record",
                        kwargs={"key": "fail-b", "seconds": 0.6, "fail": True},
                        max_attempts=1,
                    ),
                ),
            ),
            StageSpec(name="second", depends_on=("first",), steps=(record("fail-c"),)),
        ),
    ),
    PipelineSpec(
        name="fixture-resume",
        description="Fails once (a flaky critical step), succeeds when resumed.",
        stages=(
            StageSpec(name="zero", steps=(record("r-ok"),)),
            StageSpec(
                name="one",
                depends_on=("zero",),
                steps=(
                    StepSpec(
                        name="r-flaky",
                        task=T + "flaky",
                        kwargs={"key": "r-flaky", "failures": 1},
                        max_attempts=1,
                    ),
                ),
            ),
            StageSpec(name="two", depends_on=("one",), steps=(record("r-two"),)),
        ),
    ),
]
