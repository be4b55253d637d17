"""``bulk_enqueue``'s multi-row inserts: statement sizes, order of ids, stored values.

On PostgreSQL one ``INSERT … SELECT FROM unnest``; on SQLite and MariaDB multi-row
``INSERT … VALUES … RETURNING id`` statements (``geartrain.queue.rows``), as many
rows per statement as the database takes parameters for.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from geartrain import bulk_enqueue, compat
from geartrain.conf import get_settings
from geartrain.models import Job, JobStatus
from geartrain.queue import get_strategy
from geartrain.queue.rows import PARAMS_PER_ROW, ROWS_PER_STATEMENT, rows_per_statement
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

COUNT = 2500  # more than one statement's rows on every vendor
HOSTILE = "100% %s %(x)s ' \" \\ \x7f ✓ 😀 ); DROP TABLE geartrain_job; --"


def _db() -> Any:
    return connections[get_settings().DATABASE]


def _inserts(ctx: CaptureQueriesContext) -> int:
    sqls = [q["sql"].lstrip().upper() for q in ctx.captured_queries]
    return sum(1 for sql in sqls if sql.startswith("INSERT"))


def test_every_supported_vendor_has_the_fast_path():
    # MySQL (not MariaDB) cannot return the ids of a multi-row insert; it is not in
    # the test matrix, and keeps the ORM's path.
    assert get_strategy(get_settings().DATABASE).supports_fast_bulk_insert


def test_a_statement_carries_as_many_rows_as_the_database_takes_parameters():
    size = rows_per_statement(_db())
    limit = _db().features.max_query_params
    assert size <= ROWS_PER_STATEMENT
    if limit is not None:
        assert size * PARAMS_PER_ROW <= limit
        assert size == min(ROWS_PER_STATEMENT, limit // PARAMS_PER_ROW)
    else:
        assert size == ROWS_PER_STATEMENT


def test_many_rows_keep_the_order_of_the_calls_across_statements():
    calls = [((i, f"n{i}"), {"subject": f"s{i}"}) for i in range(COUNT)]

    with CaptureQueriesContext(_db()) as ctx:
        results = bulk_enqueue(tasks.send_email, calls)

    expected = math.ceil(COUNT / rows_per_statement(_db()))
    if _db().vendor == "postgresql":
        expected = 1  # one INSERT … SELECT FROM unnest
    assert _inserts(ctx) == expected
    ids = [int(r.id) for r in results]
    assert ids == sorted(ids)
    assert len(set(ids)) == COUNT
    stored = {
        pk: (args, kwargs)
        for pk, args, kwargs in Job.objects.values_list("pk", "args", "kwargs")
    }
    for i, job_id in enumerate(ids):
        assert stored[job_id] == ([i, f"n{i}"], {"subject": f"s{i}"})
        assert results[i].args == [i, f"n{i}"]


def test_new_rows_start_like_any_enqueued_job():
    bulk_enqueue(tasks.send_email, [((1,), {}), ((2,), {"subject": "x"})])
    single = tasks.send_email.enqueue(3)

    columns = ("status", "attempts", "postpones", "attempt_log", "queue", "priority")
    rows = list(Job.objects.order_by("pk").values_list(*columns))
    assert rows[0] == rows[1] == rows[2]
    assert rows[0] == (JobStatus.READY, 0, 0, [], "emails", 5)
    first = Job.objects.order_by("pk").first()
    assert first is not None
    assert first.enqueued_at == first.run_after
    assert single.status == compat.TaskResultStatus.READY


def test_hostile_strings_are_stored_as_given():
    nested = {"a": [HOSTILE, {"b": HOSTILE}], HOSTILE: None}

    results = bulk_enqueue(tasks.send_email, [((HOSTILE,), nested)] * 3)

    for result in results:
        job = Job.objects.get(pk=int(result.id))
        assert job.args == [HOSTILE]
        assert job.kwargs == nested
    assert Job.objects.count() == 3


def test_scheduled_rows_keep_their_time_to_the_microsecond():
    when = (timezone.now() + timedelta(hours=2)).replace(microsecond=123456)

    results = bulk_enqueue(tasks.add.using(run_after=when), [((1, 2), {})] * 3)

    jobs = Job.objects.filter(pk__in=[int(r.id) for r in results])
    assert {(j.status, j.run_after) for j in jobs} == {(JobStatus.SCHEDULED, when)}


class ChangedMind(Exception):
    pass


def _enqueue_then_fail() -> None:
    with transaction.atomic(using=get_settings().DATABASE):
        bulk_enqueue(tasks.add, [((i, i), {}) for i in range(COUNT)])
        assert Job.objects.count() == COUNT
        raise ChangedMind


def test_rows_of_every_statement_roll_back_with_the_callers_transaction():
    with pytest.raises(ChangedMind):
        _enqueue_then_fail()

    assert Job.objects.count() == 0
