"""The admin: job list, filters, search, detail page, retry/cancel and workers."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from geartrain.admin.actions import retry_message
from geartrain.admin.display import format_seconds
from geartrain.admin.jobs import CappedPaginator
from geartrain.models import Job, JobStatus, WorkerProcess
from geartrain.worker import executor, outcomes
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/geartrain/job/"
WORKERS = "/admin/geartrain/workerprocess/"


def change_url(pk: int) -> str:
    return reverse("admin:geartrain_job_change", args=[pk])


def retry_url(pk: int) -> str:
    return reverse("admin:geartrain_job_retry", args=[pk])


def cancel_url(pk: int) -> str:
    return reverse("admin:geartrain_job_cancel", args=[pk])


def make_job(status: str = JobStatus.READY, **fields) -> Job:
    fields.setdefault("task_path", "tests.testapp.tasks.add")
    fields.setdefault("args", [1, 2])
    now = timezone.now()
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        fields.setdefault("started_at", now - timedelta(seconds=12.5))
        fields.setdefault("finished_at", now)
    if status == JobStatus.RUNNING:
        fields.setdefault("started_at", now)
        fields.setdefault("lease_owner", "host-1-abc/101")
        fields.setdefault("lease_expires_at", now + timedelta(seconds=30))
    return Job.objects.create(status=status, **fields)


def failed_job(message: str = "boom <b>here</b>") -> Job:
    """A job enqueued through the backend and failed by the real executor."""
    result = tasks.fail.enqueue(message)
    job = Job.objects.get(pk=int(result.id))
    job.attempts = 1
    outcome = executor.execute(job, None)
    assert outcome.kind == "error"
    entry = outcomes.log_entry(
        job,
        "host-1-abc/101",
        outcome.started_at,
        outcome.finished_at,
        error_class=outcome.error_class,
        message=outcome.message,
        traceback=outcome.traceback,
    )
    job.status = JobStatus.FAILED
    job.started_at = outcome.started_at
    job.finished_at = outcome.finished_at
    job.attempt_log = [entry]
    job.save()
    return job


def row_ids(response) -> set[int]:
    html = response.content.decode()
    return {
        int(pk) for pk in re.findall(r'href="/admin/geartrain/job/(\d+)/change/', html)
    }


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def admin_user(db):
    """pytest-django's superuser, without the slow password hash (we force_login)."""
    return User.objects.create_superuser("admin", "admin@example.com", None)


@pytest.fixture
def staff_client():
    """A logged-in staff user with exactly the given ``geartrain`` permissions."""

    def make(*codenames: str) -> Client:
        user = User.objects.create_user(
            f"staff-{'-'.join(codenames) or 'none'}", is_staff=True
        )
        perms = Permission.objects.filter(
            content_type__app_label="geartrain", codename__in=codenames
        )
        assert perms.count() == len(codenames), codenames
        user.user_permissions.set(perms)
        client = Client()
        client.force_login(user)
        return client

    return make


def post_action(client: Client, action: str, jobs: list[Job]):
    data = {"action": action, "index": 0, "_selected_action": [j.pk for j in jobs]}
    return client.post(CHANGELIST, data, follow=True)


# Changelist ---------------------------------------------------------------------------


def test_changelist_shows_columns_and_status_badge(admin_client):
    job = make_job(JobStatus.SUCCEEDED, queue="emails", priority=5, attempts=1)
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("Task", "Queue", "Status", "Priority", "Attempts", "Duration"):
        assert f">{title}<" in html, title
    assert (
        '<span class="geartrain-status geartrain-status--succeeded">succeeded' in html
    )
    assert "12.5 s" in html
    assert row_ids(response) == {job.pk}
    assert "geartrain/admin.css" in html


def test_changelist_never_counts_the_whole_table_nor_loads_json(admin_client):
    for _ in range(3):
        make_job()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    job_queries = [q["sql"] for q in queries if "geartrain_job" in q["sql"]]
    counts = [sql for sql in job_queries if "COUNT(" in sql.upper()]
    assert counts, job_queries
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    # Filter choices come from configuration (the date hierarchy does scan dates).
    scans = [
        sql
        for sql in job_queries
        if "DISTINCT" in sql.upper()
        and re.search(r"[`\"](task_path|queue|backend)[`\"]", sql)
    ]
    assert not scans, scans
    listing = [sql for sql in job_queries if '"priority"' in sql or "`priority`" in sql]
    assert listing
    assert not any("attempt_log" in sql for sql in listing), listing


def test_changelist_says_more_than_when_the_count_is_capped(admin_client, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    for _ in range(5):
        make_job()
    html = admin_client.get(CHANGELIST).content.decode()
    assert "More than 3 jobs; filter to narrow them down" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status__exact": "failed"}, {"failed"}),
        ({"queue": "emails"}, {"email"}),
        ({"task_path": "tests.testapp.tasks.send_email"}, {"email"}),
        ({"backend": "other"}, {"other"}),
        ({"worker": "host-1-abc"}, {"running"}),
        ({"q": "send_em"}, {"email"}),
        ({"q": "#{failed}"}, {"failed"}),
        ({"q": "{failed}"}, {"failed"}),
        ({"q": "99999999999999999999999"}, set()),
    ],
)
def test_filters_and_search(admin_client, query, expected):
    jobs = {
        "failed": make_job(JobStatus.FAILED),
        "email": make_job(queue="emails", task_path="tests.testapp.tasks.send_email"),
        "other": make_job(backend="other"),
        "running": make_job(JobStatus.RUNNING),
    }
    ids = {name: job.pk for name, job in jobs.items()}
    params = {key: value.format(**ids) for key, value in query.items()}
    response = admin_client.get(CHANGELIST, params)
    assert response.status_code == 200
    assert row_ids(response) == {ids[name] for name in expected}


def test_filter_sidebar_lists_configured_choices(admin_client, settings):
    settings.GEARTRAIN = {**settings.GEARTRAIN, "HEARTBEAT_INTERVAL": 10.0}
    WorkerProcess.objects.create(id="host-9-live", hostname="host", pid=9)
    html = admin_client.get(CHANGELIST).content.decode()
    # Registered tasks, TASKS queues and backends, live workers; no job needed.
    assert "?task_path=tests.testapp.tasks.noop" in html
    assert "?queue=reports" in html
    assert "?backend=default" in html
    assert "?worker=host-9-live" in html
    # A value that is no longer configured stays listed while it is selected.
    html = admin_client.get(CHANGELIST, {"queue": "retired"}).content.decode()
    assert re.search(r'<li class="selected">\s*<a href="\?queue=retired"', html)


def test_queue_filter_reads_the_table_when_any_queue_is_allowed(admin_client, settings):
    settings.TASKS = {
        "default": {"BACKEND": "geartrain.backends.DatabaseBackend", "QUEUES": []}
    }
    make_job(queue="adhoc")
    html = admin_client.get(CHANGELIST).content.decode()
    assert "?queue=adhoc" in html
    assert "?queue=emails" not in html


def test_date_hierarchy_drills_down(admin_client):
    job = make_job(enqueued_at=timezone.now().replace(year=2024, month=3))
    other = make_job()
    response = admin_client.get(CHANGELIST, {"enqueued_at__year": "2024"})
    assert response.status_code == 200
    assert row_ids(response) == {job.pk}
    assert other.pk not in row_ids(response)


# Detail page ----------------------------------------------------------------------


def test_detail_shows_every_attempt_with_escaped_traceback(admin_client):
    job = failed_job()
    response = admin_client.get(change_url(job.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h2>Attempts</h2>" in html
    assert "Attempt 1" in html
    assert "host-1-abc/101" in html
    assert '<code class="geartrain-error-class">builtins.ValueError</code>' in html
    traceback = re.search(r'<pre class="geartrain-traceback">(.*?)</pre>', html, re.S)
    assert traceback is not None
    text = traceback.group(1)
    assert "Traceback (most recent call last)" in unescape(text)
    assert "ValueError: boom <b>here</b>" in unescape(text)
    assert "<b>" not in text  # escaped
    assert (
        '<pre class="geartrain-json">[\n  '
        "&quot;boom &lt;b&gt;here&lt;/b&gt;&quot;\n]</pre>" in html
    )


def test_detail_is_read_only_without_save_buttons(admin_client):
    job = make_job(kwargs={"to": "a@example.com"}, return_value={"ok": True})
    html = admin_client.get(change_url(job.pk)).content.decode()
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    form = html.split('id="job_form"')[1].split("</form>")[0]
    inputs = re.findall(r"<(?:input|textarea|select)\b[^>]*>", form)
    assert all('type="hidden"' in tag for tag in inputs), inputs
    assert "No attempt yet." in html
    assert "&quot;to&quot;: &quot;a@example.com&quot;" in html
    post = admin_client.post(change_url(job.pk), {"task_path": "x"})
    assert post.status_code == 403
    assert Job.objects.get(pk=job.pk).task_path == "tests.testapp.tasks.add"


def test_no_add_page(admin_client):
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.get(f"{WORKERS}add/").status_code == 403


def test_detail_links_retried_from_and_retries(admin_client):
    old = make_job(JobStatus.FAILED)
    new1 = make_job(retried_from=old)
    new2 = make_job(retried_from=old)
    html = admin_client.get(change_url(old.pk)).content.decode()
    assert f'<a href="{change_url(new1.pk)}">#{new1.pk}</a>, ' in html
    assert f'<a href="{change_url(new2.pk)}">#{new2.pk}</a>' in html
    html = admin_client.get(change_url(new1.pk)).content.decode()
    assert f'<a href="{change_url(old.pk)}">#{old.pk}</a>' in html


# Actions --------------------------------------------------------------------------


def test_retry_action_creates_linked_copies(staff_client):
    client = staff_client("view_job", "retry_job")
    first, second = failed_job(), make_job(JobStatus.SUCCEEDED, kwargs={"b": 3})
    response = post_action(client, "retry_selected", [first, second])
    new = list(Job.objects.filter(retried_from__isnull=False).order_by("id"))
    assert len(new) == 2
    assert messages_of(response) == [f"Retried 2 jobs as #{new[0].pk}, #{new[1].pk}."]
    assert [j.retried_from_id for j in new] == [first.pk, second.pk]
    assert new[0].args == first.args
    assert new[1].kwargs == {"b": 3}
    assert {j.status for j in new} == {JobStatus.READY}


def test_retry_action_leaves_waiting_and_running_jobs_alone(staff_client):
    client = staff_client("view_job", "retry_job")
    done, running = make_job(JobStatus.FAILED), make_job(JobStatus.RUNNING)
    response = post_action(client, "retry_selected", [done, running])
    new = Job.objects.get(retried_from=done)
    assert messages_of(response) == [
        f"Retried 1 job as #{new.pk}; "
        "1 was still waiting or running and was left alone."
    ]
    response = post_action(client, "retry_selected", [running, make_job()])
    assert messages_of(response) == [
        "Retried 0 jobs; 2 were still waiting or running and were left alone. "
        "Only finished jobs (succeeded, failed or cancelled) can be retried."
    ]


def test_retry_message_lists_at_most_twenty_ids():
    ids = ", ".join(f"#{pk}" for pk in range(1, 21))
    jobs = [Job(pk=pk) for pk in range(1, 24)]
    assert retry_message(jobs, 0) == f"Retried 23 jobs as {ids} and 3 more."


def test_cancel_action_cancels_waiting_jobs_only(staff_client):
    client = staff_client("view_job", "cancel_job")
    waiting = [
        make_job(),
        make_job(),
        make_job(JobStatus.SCHEDULED, run_after=timezone.now() + timedelta(hours=1)),
    ]
    running = make_job(JobStatus.RUNNING)
    response = post_action(client, "cancel_selected", [*waiting, running])
    assert messages_of(response) == [
        "Cancelled 3 jobs; 1 was already running or finished and was left alone."
    ]
    statuses = set(
        Job.objects.filter(pk__in=[j.pk for j in waiting]).values_list(
            "status", flat=True
        )
    )
    assert statuses == {JobStatus.CANCELLED}
    assert Job.objects.get(pk=running.pk).status == JobStatus.RUNNING
    response = post_action(client, "cancel_selected", [running])
    assert messages_of(response) == [
        "Cancelled 0 jobs; 1 was already running or finished and was left alone. "
        "Only scheduled or ready jobs can be cancelled."
    ]


def test_actions_need_their_own_permission(staff_client):
    viewer = staff_client("view_job")
    html = viewer.get(CHANGELIST).content.decode()
    assert "retry_selected" not in html
    assert "cancel_selected" not in html
    failed, ready = make_job(JobStatus.FAILED), make_job()
    # No action at all for this user: the POST just shows the list again.
    for action, job in (("retry_selected", failed), ("cancel_selected", ready)):
        response = post_action(viewer, action, [job])
        assert response.status_code == 200
        assert messages_of(response) == []
    assert not Job.objects.filter(retried_from=failed).exists()
    assert Job.objects.get(pk=ready.pk).status == JobStatus.READY

    retrier = staff_client("view_job", "retry_job")
    html = retrier.get(CHANGELIST).content.decode()
    assert '<option value="retry_selected">Retry selected jobs</option>' in html
    assert "cancel_selected" not in html
    assert messages_of(post_action(retrier, "cancel_selected", [ready])) == [
        "No action selected."
    ]
    assert Job.objects.get(pk=ready.pk).status == JobStatus.READY


def test_delete_needs_delete_permission(staff_client):
    job = make_job(JobStatus.FAILED)
    viewer = staff_client("view_job")
    assert viewer.get(f"{CHANGELIST}{job.pk}/delete/").status_code == 403
    assert "delete_selected" not in viewer.get(CHANGELIST).content.decode()
    deleter = staff_client("view_job", "delete_job")
    response = deleter.post(f"{CHANGELIST}{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()


# Detail-page buttons ---------------------------------------------------------------


def test_buttons_follow_permission_and_status(staff_client, admin_client):
    failed, ready = make_job(JobStatus.FAILED), make_job()
    retry_form = f'action="{retry_url(failed.pk)}"'
    cancel_form = f'action="{cancel_url(ready.pk)}"'
    assert retry_form in admin_client.get(change_url(failed.pk)).content.decode()
    assert cancel_form in admin_client.get(change_url(ready.pk)).content.decode()
    # Not offered where the job's status makes them pointless.
    assert "/cancel/" not in admin_client.get(change_url(failed.pk)).content.decode()
    assert "/retry/" not in admin_client.get(change_url(ready.pk)).content.decode()
    viewer = staff_client("view_job")
    assert "/retry/" not in viewer.get(change_url(failed.pk)).content.decode()
    assert "/cancel/" not in viewer.get(change_url(ready.pk)).content.decode()


def test_detail_retry_view(staff_client):
    failed, running = make_job(JobStatus.FAILED), make_job(JobStatus.RUNNING)
    url = retry_url(failed.pk)
    retrier = staff_client("view_job", "retry_job")
    assert retrier.get(url).status_code == 405
    assert staff_client("view_job").post(url).status_code == 403
    assert not Job.objects.filter(retried_from=failed).exists()

    response = retrier.post(url, follow=True)
    new = Job.objects.get(retried_from=failed)
    assert response.redirect_chain[-1][0] == change_url(new.pk)
    assert messages_of(response) == [f"Retried 1 job as #{new.pk}."]

    response = retrier.post(retry_url(running.pk), follow=True)
    assert response.redirect_chain[-1][0] == change_url(running.pk)
    assert messages_of(response) == [
        f"Job #{running.pk} was not retried: it is running. Only finished jobs "
        "(succeeded, failed or cancelled) can be retried; wait until it ends."
    ]
    assert retrier.post(retry_url(987654321)).status_code == 404
    # The retry permission alone, without seeing jobs, is not enough.
    assert staff_client("retry_job").post(url).status_code == 403


def test_detail_cancel_view(staff_client):
    ready, running = make_job(), make_job(JobStatus.RUNNING)
    url = cancel_url(ready.pk)
    canceller = staff_client("view_job", "cancel_job")
    assert canceller.get(url).status_code == 405
    assert staff_client("view_job", "retry_job").post(url).status_code == 403
    assert Job.objects.get(pk=ready.pk).status == JobStatus.READY

    response = canceller.post(url, follow=True)
    assert response.redirect_chain[-1][0] == change_url(ready.pk)
    assert messages_of(response) == ["Cancelled 1 job."]
    assert Job.objects.get(pk=ready.pk).status == JobStatus.CANCELLED

    response = canceller.post(cancel_url(running.pk), follow=True)
    assert messages_of(response) == [
        f"Job #{running.pk} was not cancelled: it is running. Only scheduled or ready "
        "jobs can be cancelled; a running job finishes its attempt."
    ]
    assert Job.objects.get(pk=running.pk).status == JobStatus.RUNNING


def test_detail_views_need_login_and_csrf(admin_user):
    job = make_job()
    url = cancel_url(job.pk)
    anonymous = Client()
    response = anonymous.post(url)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(url).status_code == 403
    assert Job.objects.get(pk=job.pk).status == JobStatus.READY


# Workers ------------------------------------------------------------------------


def test_worker_list_shows_liveness_and_running_jobs(admin_client, settings):
    # Alive means a heartbeat within 3 heartbeat intervals: 30 s here.
    settings.GEARTRAIN = {**settings.GEARTRAIN, "HEARTBEAT_INTERVAL": 10.0}
    now = timezone.now()
    live = WorkerProcess.objects.create(
        id="host-1-abc",
        hostname="host",
        pid=1,
        queues=["default", "emails"],
        concurrency=4,
        last_heartbeat_at=now - timedelta(seconds=1),
    )
    WorkerProcess.objects.create(
        id="host-2-def",
        hostname="host",
        pid=2,
        last_heartbeat_at=now - timedelta(hours=1),
    )
    mine = [make_job(JobStatus.RUNNING), make_job(JobStatus.RUNNING)]
    make_job(JobStatus.RUNNING, lease_owner="host-1-abcd/5")  # another worker
    make_job(JobStatus.SUCCEEDED, lease_owner=None)
    response = admin_client.get(WORKERS)
    assert response.status_code == 200
    html = response.content.decode()
    assert "default, emails" in html
    assert re.search(r">[0-9] s ago<", html)
    assert ">1 h 0 min ago<" in html
    alive_cells = re.findall(r'<td class="field-alive"><img [^>]*alt="(\w+)"', html)
    assert alive_cells == ["True", "False"]  # newest heartbeat first
    link = re.search(r'<a href="(/admin/geartrain/job/\?[^"]+)">2</a>', html)
    assert link is not None
    jobs = admin_client.get(unescape(link.group(1)))
    assert row_ids(jobs) == {j.pk for j in mine}

    alive = admin_client.get(WORKERS, {"alive": "yes"})
    assert live.pk in alive.content.decode()
    assert "host-2-def" not in alive.content.decode()
    assert admin_client.get(f"{WORKERS}{live.pk}/change/").status_code == 200


def test_worker_admin_is_read_only(admin_client):
    worker = WorkerProcess.objects.create(id="host-3-x", hostname="host", pid=3)
    response = admin_client.post(f"{WORKERS}{worker.pk}/change/", {"pid": 4})
    assert response.status_code == 403
    assert WorkerProcess.objects.get(pk=worker.pk).pid == 3


@pytest.mark.parametrize(
    ("seconds", "precise", "text"),
    [
        (0.35, True, "350 ms"),
        (12.54, True, "12.5 s"),
        (12.54, False, "12 s"),
        (243, False, "4 min 3 s"),
        (7500, False, "2 h 5 min"),
        (273600, False, "3 d 4 h"),
        (-2, False, "0 s"),
    ],
)
def test_format_seconds(seconds, precise, text):
    assert format_seconds(seconds, precise=precise) == text
