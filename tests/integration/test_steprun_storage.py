"""Step runs are written twice per step: those writes must not touch an index."""

from __future__ import annotations

import pytest
from django.db import connection

from geartrain.models import StepRun

pytestmark = pytest.mark.django_db

# What marking a step running and writing its outcome set.
WRITTEN = {"status", "started_at", "finished_at", "return_value", "attempts"}


def test_no_index_covers_a_column_that_a_step_start_or_finish_writes():
    table = StepRun._meta.db_table
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    indexed = {
        column
        for constraint in found.values()
        if constraint["index"] or constraint["unique"]
        for column in constraint["columns"]
    }
    assert indexed & WRITTEN == set()
    assert {"stage_run_id", "step_name", "run_id"} <= indexed


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
def test_step_run_pages_leave_room_for_hot_updates_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s",
            [StepRun._meta.db_table],
        )
        (options,) = cursor.fetchone()
    assert options == ["fillfactor=50"]
