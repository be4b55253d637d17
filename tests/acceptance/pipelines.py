"""Build pipeline definitions compactly for tests."""

from __future__ import annotations

from typing import Any

from geartrain.models import Pipeline, Stage, Step

T = "tests.testapp.tasks."


def make_pipeline(
    name: str, stages: dict[str, dict[str, Any]], **fields: Any
) -> Pipeline:
    """``stages``: ``{stage: {"after": [...], "steps": {step: {options}}}}``.

    Step options: ``task`` (short name in tests.testapp.tasks, default step_record),
    ``kwargs`` (default ``{"key": <step name>}``), and any Step field.
    """
    pipeline = Pipeline.objects.create(name=name, **fields)
    made = {s: Stage.objects.create(pipeline=pipeline, name=s) for s in stages}
    for stage_name, spec in stages.items():
        made[stage_name].depends_on.set([made[d] for d in spec.get("after", [])])
        for step_name, options in spec.get("steps", {}).items():
            options = dict(options)
            task = T + options.pop("task", "step_record")
            kwargs = options.pop("kwargs", {"key": step_name})
            Step.objects.create(
                stage=made[stage_name],
                name=step_name,
                task_path=task,
                kwargs=kwargs,
                **options,
            )
    return pipeline
