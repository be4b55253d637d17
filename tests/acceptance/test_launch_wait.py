"""``geartrain launch --wait`` and the run commands against real worker processes.

The pipelines come from ``tests/testapp/pipelines.py`` through ``geartrain sync``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from geartrain.models import PipelineRun, RunStatus, StepRun
from tests.acceptance.workers import ROOT, WorkerFactory, wait_until, worker_env

PROGRESS = re.compile(
    r"^\[\d+\.\ds\] steps \d/3 done, \d running, \d failed, "
    r"(about \d+\.\ds left|time left unknown)$"
)


def command(*args: str) -> list[str]:
    out = StringIO()
    call_command("geartrain", *args, stdout=out)
    return out.getvalue().splitlines()


def launch(marks: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "django", "geartrain", "launch", *args],
        env=worker_env(marks),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def marked(marks: Path, name: str = "record") -> list[str]:
    path = marks / name
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def synced(transactional_db: None) -> None:
    command("sync")


def test_wait_exits_0_when_the_run_succeeds_with_failures(
    synced: None, start_worker: WorkerFactory, marks: Path
):
    start_worker("--concurrency", "2")

    done = launch(marks, "fixture-wait-ok", "--wait")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    run = PipelineRun.objects.get()
    assert (
        lines[0] == f"Launched run {run.pk} of pipeline 'fixture-wait-ok' with 3 steps."
    )
    progress = lines[1:-1]
    assert progress, done.stdout
    assert all(PROGRESS.match(line) for line in progress), progress
    assert any("about" in line for line in progress), progress
    assert re.fullmatch(
        rf"Run {run.pk} of pipeline 'fixture-wait-ok' succeeded with failures after "
        r"\d+\.\ds: steps 3/3 done, 1 failed\.",
        lines[-1],
    ), lines[-1]
    assert (run.status, run.has_failures, run.trigger) == ("succeeded", True, "manual")
    assert sorted(marked(marks)) == ["ok-a", "ok-c"]


def test_wait_exits_1_when_the_run_fails_then_dismiss_unblocks_the_pipeline(
    synced: None, start_worker: WorkerFactory, marks: Path
):
    start_worker("--concurrency", "2")

    done = launch(marks, "fixture-wait-fail", "--wait")

    assert done.returncode == 1, done.stderr
    run = PipelineRun.objects.get()
    assert re.fullmatch(
        rf"Run {run.pk} of pipeline 'fixture-wait-fail' failed after \d+\.\ds: "
        r"steps 3/3 done, 1 failed\.",
        done.stdout.splitlines()[-1],
    )
    assert "CommandError: geartrain launch failed." in done.stderr
    assert marked(marks) == ["fail-a"]

    refused = launch(marks, "fixture-wait-fail")
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"CommandError: The latest run of pipeline 'fixture-wait-fail' (run {run.pk}) "
        f"failed. Resume or dismiss run {run.pk} first, or set "
        f"GEARTRAIN['OVERLAP_FAILED'] = True."
    )
    assert command("dismiss", str(run.pk)) == [
        f"Run {run.pk} of pipeline 'fixture-wait-fail' is dismissed; it no longer "
        f"holds scheduled launches."
    ]
    again = launch(marks, "fixture-wait-fail")
    assert again.returncode == 0, again.stderr
    assert PipelineRun.objects.count() == 2


def test_resume_runs_only_the_steps_that_did_not_succeed(
    synced: None, start_worker: WorkerFactory, marks: Path
):
    start_worker("--concurrency", "2")
    first = launch(marks, "fixture-resume", "--wait")
    assert first.returncode == 1, first.stderr
    old = PipelineRun.objects.get()

    lines = command("resume", str(old.pk))

    new = PipelineRun.objects.exclude(pk=old.pk).get()
    assert lines == [
        f"Run {old.pk} of pipeline 'fixture-resume' resumed as run {new.pk}: 2 "
        f"step(s) run again, 1 succeeded step(s) kept."
    ]

    def finished() -> bool:
        new.refresh_from_db()
        return new.status not in (RunStatus.PENDING, RunStatus.RUNNING)

    wait_until(finished, 60, "the resumed run")
    assert new.status == RunStatus.SUCCEEDED
    assert marked(marks) == ["r-ok", "r-two"]
    assert (marks / "flaky-r-flaky").read_text() == "2"
    with pytest.raises(CommandError) as info:
        command("resume", str(new.pk))
    assert str(info.value) == (
        f"Run {new.pk} of pipeline 'fixture-resume' is succeeded; only failed or "
        f"cancelled runs can be resumed."
    )


def test_wait_exits_1_when_the_run_is_cancelled(
    synced: None, start_worker: WorkerFactory, marks: Path
):
    start_worker("--concurrency", "2")
    waiting = subprocess.Popen(
        [
            sys.executable, "-m", "django", "geartrain", "launch", "fixture-wait-ok",
            "--wait",
        ],
        env=worker_env(marks),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: StepRun.objects.filter(step_name="ok-a", status="running").exists(),
            60,
            "step ok-a to start",
        )
        run = PipelineRun.objects.get()

        lines = command("cancel", str(run.pk))

        assert lines[0].startswith(
            f"Run {run.pk} of pipeline 'fixture-wait-ok' is being cancelled: waiting "
            f"steps were cancelled, "
        )
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, err
    assert re.fullmatch(
        rf"Run {run.pk} of pipeline 'fixture-wait-ok' cancelled after \d+\.\ds: "
        r"steps 3/3 done, \d failed\.",
        out.splitlines()[-1],
    ), out
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "ok-c" not in marked(marks)
