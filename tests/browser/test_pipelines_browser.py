"""The pipeline admin in headless Chromium: edit, launch, watch the run's pictures."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from geartrain.models import PipelineRun, RunStatus, Stage, Step
from tests.acceptance.pipelines import make_pipeline
from tests.acceptance.workers import WorkerFactory, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


def screenshot_dir(tmp_path: Path) -> Path:
    """``GEARTRAIN_SCREENSHOT_DIR`` when set (to look at them), else a temp dir."""
    folder = Path(os.environ.get("GEARTRAIN_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def admin_url(live_server):
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    return f"{live_server.url}/admin/"


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerFactory]:
    marks = tmp_path / "marks"
    marks.mkdir()
    factory = WorkerFactory(marks)
    try:
        yield factory
    finally:
        factory.stop_all()


def log_in(page, admin_url: str) -> None:
    page.goto(f"{admin_url}login/?next=/admin/geartrain/pipeline/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/geartrain/pipeline/")


def submit(page, selector: str) -> None:
    """Click a submit button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def test_edit_launch_and_watch_a_pipeline(page, admin_url, tmp_path, workers):
    shots = screenshot_dir(tmp_path)
    make_pipeline(
        "nightly-etl",
        {
            "extract": {
                "steps": {
                    "orders": {"kwargs": {"key": "orders", "seconds": 0.3}},
                    "customers": {"kwargs": {"key": "customers", "seconds": 0.1}},
                    "flaky-feed": {
                        "kwargs": {"key": "feed", "fail": True},
                        "critical": False,
                        "max_attempts": 1,
                    },
                }
            },
            "transform": {
                "after": ["extract"],
                "steps": {"join": {"kwargs": {"key": "join", "seconds": 0.2}}},
            },
        },
    )
    transform = Stage.objects.get(name="transform")
    log_in(page, admin_url)
    page.get_by_role("link", name="nightly-etl").click()

    # 1. A new stage, after "transform" (steps can only go in saved stages).
    page.fill("#id_stages-2-name", "load")
    page.check(f"input[name='stages-2-depends_on'][value='{transform.pk}']")
    submit(page, "input[name=_continue]")
    success = page.locator(".messagelist .success")
    assert "was changed successfully" in success.inner_text()
    load = Stage.objects.get(name="load")

    # 2. Its step, on the same page.
    page.select_option("#id_steps-4-stage", label="load")
    page.fill("#id_steps-4-name", "warehouse")
    page.select_option("#id_steps-4-task_path", "tests.testapp.tasks.step_record")
    page.fill("#id_steps-4-kwargs", '{"key": "warehouse", "seconds": 0.2}')
    submit(page, "input[name=_continue]")
    assert "was changed successfully" in success.inner_text()
    assert Step.objects.get(name="warehouse").stage == load

    dag = page.locator("#definition-graph svg.geartrain-dag")
    assert dag.locator("g.geartrain-dag-stage").count() == 3
    assert dag.locator("path.geartrain-dag-edge").count() == 2
    assert "1 step" in (dag.locator("g[data-stage=load]").text_content() or "")
    page.screenshot(path=str(shots / "pipeline-change.png"), full_page=True)

    # A cycle is refused with the rule it breaks, and nothing is stored.
    extract = Stage.objects.get(name="extract")
    page.check(f"input[name='stages-0-depends_on'][value='{load.pk}']")
    submit(page, "input[name=_continue]")
    errors = page.locator("ul.errorlist.nonfield li")
    assert errors.all_inner_texts() == [
        "Stages 'extract' -> 'load' -> 'transform' -> 'extract' form a cycle in "
        "pipeline 'nightly-etl'. Remove one of these dependencies."
    ]
    page.screenshot(path=str(shots / "pipeline-rejected.png"))
    assert not extract.depends_on.exists()
    page.goto(page.url)  # drop the refused edit

    # 3. Launch now, with a runtime argument.
    page.fill("#geartrain-launch-arguments", '{"note": "from the browser"}')
    submit(page, "#geartrain-launch-tool")
    page.wait_for_url("**/admin/geartrain/pipelinerun/*/change/")
    run = PipelineRun.objects.get()
    assert success.inner_text() == f"Pipeline 'nightly-etl' launched as run {run.pk}."
    assert run.arguments == {"note": "from the browser"}
    run_dag = page.locator("#run-graph svg.geartrain-dag")
    assert run_dag.locator("g[data-stage=extract]").get_attribute("data-status") in (
        "running",
        "pending",
    )
    assert page.locator("#geartrain-cancel").is_visible()
    page.screenshot(path=str(shots / "run-launched.png"), full_page=True)

    # 4. A real worker does the work; the page shows the finished run.
    worker = workers("--burst", "--concurrency", "2")
    try:
        assert worker.wait(timeout=60) == 0, worker.stderr()
    except subprocess.TimeoutExpired:
        pytest.fail(f"The burst worker did not finish:\n{worker.stderr()}")
    wait_until(lambda: PipelineRun.objects.get(pk=run.pk).finished_at, 10, "the run")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.outcome == "succeeded with failures"
    page.reload()
    statuses = {
        stage: run_dag.locator(f"g[data-stage={stage}]").get_attribute("data-status")
        for stage in ("extract", "transform", "load")
    }
    assert statuses == {
        "extract": "succeeded",
        "transform": "succeeded",
        "load": "succeeded",
    }
    bars = page.locator("#run-timeline rect.geartrain-bar")
    assert bars.count() == 5
    assert page.locator(".field-status_badge .geartrain-status").inner_text() == (
        "succeeded with failures"
    )
    assert page.locator("#geartrain-cancel").count() == 0
    error = page.locator(".geartrain-step-error summary")
    assert "RuntimeError" in error.inner_text()
    error.click()
    assert "step feed failed" in page.locator(".geartrain-step-error pre").inner_text()
    page.screenshot(path=str(shots / "run-finished.png"), full_page=True)

    # 5. The run list.
    page.goto(f"{admin_url}geartrain/pipelinerun/")
    row = page.locator("#result_list tbody tr").first
    assert "5/5 steps" in row.inner_text()
    assert "succeeded with failures" in row.inner_text()
    page.screenshot(path=str(shots / "run-list.png"))
