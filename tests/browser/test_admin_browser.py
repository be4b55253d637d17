"""The job admin driven in headless Chromium: log in, filter, retry, detail, cancel."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from geartrain.models import Job, JobStatus, WorkerProcess
from geartrain.worker import executor, outcomes
from tests.testapp import tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


def screenshot_dir(tmp_path: Path) -> Path:
    """``GEARTRAIN_SCREENSHOT_DIR`` when set (to look at them), else a temp dir."""
    folder = Path(os.environ.get("GEARTRAIN_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def failed_job() -> Job:
    """A job enqueued through the backend and failed by the real executor."""
    job = Job.objects.get(pk=int(tasks.fail.enqueue("disk full").id))
    job.attempts = 1  # the attempt being recorded, as a worker's claim sets it
    outcome = executor.execute(job, None)
    entry = outcomes.log_entry(
        job,
        "web-1-4f2a/4242",
        outcome.started_at,
        outcome.finished_at,
        error_class=outcome.error_class,
        message=outcome.message,
        traceback=outcome.traceback,
    )
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED,
        attempts=1,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        attempt_log=[entry],
    )
    return job


@pytest.fixture
def admin_url(live_server):
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    return f"{live_server.url}/admin/"


def log_in(page, admin_url: str) -> None:
    page.goto(f"{admin_url}login/?next=/admin/geartrain/job/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/geartrain/job/")


def test_retry_a_failed_job_from_the_filtered_list(page, admin_url, tmp_path):
    failed = failed_job()
    Job.objects.create(task_path="tests.testapp.tasks.add", args=[1, 2])
    log_in(page, admin_url)

    status_filter = page.locator("#changelist-filter details[data-filter-title=status]")
    status_filter.get_by_role("link", name="failed", exact=True).click()
    page.wait_for_url("**/?status__exact=failed")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "failed" in rows.first.locator(".geartrain-status").inner_text()
    page.screenshot(path=str(screenshot_dir(tmp_path) / "job-list.png"))

    page.check(f"input[name=_selected_action][value='{failed.pk}']")
    page.select_option("select[name=action]", "retry_selected")
    page.click("button[name=index]")
    message = page.locator(".messagelist .success")
    new = Job.objects.get(retried_from=failed)
    assert message.inner_text() == f"Retried 1 job as #{new.pk}."
    assert new.status == JobStatus.READY


def test_detail_shows_traceback_and_cancel_button_works(page, admin_url, tmp_path):
    failed = failed_job()
    ready = Job.objects.create(
        task_path="tests.testapp.tasks.send_email",
        queue="emails",
        kwargs={"to": "ada@example.com"},
        run_after=timezone.now() + timedelta(minutes=5),
    )
    log_in(page, admin_url)

    page.goto(f"{admin_url}geartrain/job/{failed.pk}/change/")
    traceback = page.locator("pre.geartrain-traceback")
    assert "Traceback (most recent call last)" in traceback.inner_text()
    assert "ValueError: disk full" in traceback.inner_text()
    assert page.locator(".geartrain-error-class").inner_text() == "builtins.ValueError"
    assert page.locator("#geartrain-retry").is_visible()
    assert page.locator("input[name=_save]").count() == 0
    shot = screenshot_dir(tmp_path) / "job-detail.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    page.goto(f"{admin_url}geartrain/job/{ready.pk}/change/")
    page.click("#geartrain-cancel")
    page.wait_for_selector(".messagelist .success")
    assert page.locator(".messagelist .success").inner_text() == "Cancelled 1 job."
    assert "cancelled" in page.locator(".geartrain-status").inner_text()
    assert page.locator("#geartrain-cancel").count() == 0
    assert Job.objects.get(pk=ready.pk).status == JobStatus.CANCELLED


def test_workers_show_liveness_and_link_to_their_running_jobs(
    page, admin_url, tmp_path, settings
):
    # Alive means a heartbeat within 3 heartbeat intervals: 30 s here.
    settings.GEARTRAIN = {**settings.GEARTRAIN, "HEARTBEAT_INTERVAL": 10.0}
    now = timezone.now()
    WorkerProcess.objects.create(
        id="web-1-4f2a", hostname="web-1", pid=4242, queues=["default", "emails"]
    )
    WorkerProcess.objects.create(
        id="web-2-9c1d",
        hostname="web-2",
        pid=77,
        last_heartbeat_at=now - timedelta(hours=2),
        started_at=now - timedelta(days=1),
    )
    running = Job.objects.create(
        task_path="tests.testapp.tasks.sleep_then_record",
        kwargs={"key": "a", "seconds": 60},
        status=JobStatus.RUNNING,
        started_at=now,
        lease_owner="web-1-4f2a/4243",
        lease_expires_at=now + timedelta(seconds=30),
    )
    Job.objects.create(task_path="tests.testapp.tasks.noop")
    log_in(page, admin_url)

    page.goto(f"{admin_url}geartrain/workerprocess/")
    live = page.locator("#result_list tbody tr", has_text="web-1-4f2a")
    dead = page.locator("#result_list tbody tr", has_text="web-2-9c1d")
    assert live.locator("td.field-alive img[alt=True]").count() == 1
    assert dead.locator("td.field-alive img[alt=False]").count() == 1
    assert "2 h 0 min ago" in dead.inner_text()
    assert "default, emails" in live.inner_text()
    page.screenshot(path=str(screenshot_dir(tmp_path) / "workers.png"))

    live.get_by_role("link", name="1", exact=True).click()
    page.wait_for_url("**/admin/geartrain/job/?*worker=web-1-4f2a*")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert str(running.pk) in rows.first.inner_text()
