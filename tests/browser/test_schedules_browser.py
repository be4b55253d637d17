"""The schedule admin in headless Chromium: create, check the next slots, run now,
see the fire and its outcome."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from geartrain.models import FireStatus, Job, JobStatus, Schedule, ScheduleFire
from geartrain.scheduler import outcomes
from tests.acceptance.workers import WorkerFactory, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
SLOT_ROWS = "#geartrain-next-slots tr.geartrain-slot"


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
    page.goto(f"{admin_url}login/?next=/admin/geartrain/schedule/add/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/geartrain/schedule/add/")


def submit(page, selector: str) -> None:
    """Click a submit button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def test_create_check_run_now_and_see_the_fire(page, admin_url, tmp_path, workers):
    shots = screenshot_dir(tmp_path)
    log_in(page, admin_url)
    slots = page.locator(SLOT_ROWS)
    preview = page.locator("#geartrain-next-slots")
    assert "Enter a cron expression to see its next slots." in preview.inner_text()

    # 1. The next slots follow the expression as it is typed, before saving.
    page.fill("#id_name", "paris-mornings")
    page.fill("#id_timezone", "Europe/Paris")
    page.fill("#id_cron", "30 7 * * 1-5")
    slots.nth(4).wait_for()
    assert slots.count() == 5
    for row in slots.all_inner_texts():
        local, utc = row.split("\t")
        assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri) \S+ 07:30 CES?T", local), local
        assert re.fullmatch(r"\S+ 0[56]:30 UTC", utc), utc
    page.fill("#id_cron", "61 7 * * *")
    problem = page.locator("#geartrain-next-slots .geartrain-slot-problems li")
    problem.wait_for()
    assert problem.inner_text() == (
        "Cron field 'minute' has value '61', which is outside 0-59. Use a number "
        "from 0 to 59."
    )
    page.screenshot(path=str(shots / "schedule-typing.png"), full_page=True)

    # 2. A bad value is refused by the model's rule; a good one is saved.
    page.select_option("#id_task_path", "tests.testapp.tasks.record")
    page.fill("#id_kwargs", '{"key": "browser"}')
    submit(page, "input[name=_continue]")
    errors = page.locator(".field-cron ul.errorlist li")
    assert errors.all_inner_texts() == [
        "Cron field 'minute' has value '61', which is outside 0-59. Use a number "
        "from 0 to 59."
    ]
    page.fill("#id_cron", "30 7 * * 1-5")
    submit(page, "input[name=_continue]")
    success = page.locator(".messagelist .success")
    assert "was added successfully" in success.inner_text()
    schedule = Schedule.objects.get(name="paris-mornings")
    assert schedule.next_slot is not None
    first = slots.first.inner_text().split("\t")[1]
    assert first == schedule.next_slot.strftime("%Y-%m-%d %H:%M UTC")
    assert page.locator("#schedule-fires").inner_text().count("No fire yet.") == 1
    page.screenshot(path=str(shots / "schedule-saved.png"), full_page=True)

    # 3. Run now: one job, named in the message, listed under Recent fires.
    submit(page, "#geartrain-run-now")
    job = Job.objects.get()
    assert success.inner_text() == (
        f"Schedule 'paris-mornings' ran now as job #{job.pk}."
    )
    row = page.locator("tr.geartrain-fire-row")
    assert row.count() == 1
    assert row.get_attribute("data-status") == "fired"
    assert "run now" in row.inner_text()
    assert row.get_by_role("link", name=f"job #{job.pk}").is_visible()
    mark = page.locator("#schedule-fires svg g.geartrain-fire")
    assert mark.get_attribute("data-kind") == "manual"

    # 4. A real worker runs the job; the scheduler's outcome sync records it.
    worker = workers("--burst")
    try:
        assert worker.wait(timeout=60) == 0, worker.stderr()
    except subprocess.TimeoutExpired:
        pytest.fail(f"The burst worker did not finish:\n{worker.stderr()}")
    wait_until(
        lambda: Job.objects.get(pk=job.pk).status == JobStatus.SUCCEEDED, 10, "the job"
    )
    assert outcomes.sync(timezone.now()) == 1
    assert ScheduleFire.objects.get().status == FireStatus.SUCCEEDED
    page.reload()
    assert row.get_attribute("data-status") == "succeeded"
    assert mark.get_attribute("data-status") == "succeeded"
    page.screenshot(path=str(shots / "schedule-fired.png"), full_page=True)

    # 5. The list shows the schedule and its fire.
    page.goto(f"{admin_url}geartrain/schedule/")
    listed = page.locator("#result_list tbody tr").first
    assert "paris-mornings" in listed.inner_text()
    assert "30 7 * * 1-5" in listed.inner_text()
    page.goto(f"{admin_url}geartrain/schedulefire/")
    assert "succeeded" in page.locator("#result_list tbody tr").first.inner_text()
    page.screenshot(path=str(shots / "schedule-fires.png"))
