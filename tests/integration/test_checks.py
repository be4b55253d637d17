"""System checks: ids, messages and hints asserted exactly.

The live ``DATABASES`` is never replaced for a database connection: the database checks
read the settings only, so they are called directly or with a short-lived override.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from django.conf import settings
from django.core import checks as django_checks
from django.core.checks import run_checks
from django.test.utils import override_settings

from geartrain import checks, compat
from geartrain.compat import task_backends

GEARTRAIN_BACKEND = "geartrain.backends.DatabaseBackend"
IMMEDIATE = f"{compat.TASKS_MODULE}.backends.immediate.ImmediateBackend"
SETTINGS_HINT = "Fix the value in GEARTRAIN."


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


def only(messages: list[Any]) -> Any:
    assert len(messages) == 1, messages
    return messages[0]


def _with_databases(**extra: dict[str, Any]) -> Any:
    """DATABASES plus ``extra`` aliases (settings only; connections are untouched)."""
    return override_settings(DATABASES={**settings.DATABASES, **extra})


# The project's own settings are clean -------------------------------------------------


def test_test_settings_pass_every_geartrain_check():
    assert run_checks(tags=["geartrain"]) == []
    assert checks.check_database() == []


def test_checks_are_registered_under_the_geartrain_tag():
    registered = django_checks.registry.registry.get_checks()
    for check in (
        checks.check_settings,
        checks.check_database,
        checks.check_backend_configured,
    ):
        assert check in list[Any](registered)
        assert "geartrain" in getattr(check, "tags", ())
    # It reads settings only, so it runs with every `check`, not just --database.
    assert "database" not in getattr(checks.check_database, "tags", ())


# E001 unknown key ---------------------------------------------------------------------


@override_settings(GEARTRAIN={"MAX_ATTEMPT": 5, "POLL_INTERVAL": 1.0, "Database": "x"})
def test_unknown_keys_are_e001_through_run_checks():
    found = [m for m in run_checks(tags=["geartrain"]) if m.id == "geartrain.E001"]

    assert [m.msg for m in found] == [
        "GEARTRAIN has the unknown key 'Database'.",
        "GEARTRAIN has the unknown key 'MAX_ATTEMPT'.",
    ]
    assert all(m.level == django_checks.ERROR for m in found)
    assert found[0].hint == (
        "Remove it, or fix its spelling; docs/reference/settings.md lists the keys."
    )


# E002 bad values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"MAX_ATTEMPTS": 0},
            "GEARTRAIN['MAX_ATTEMPTS'] is 0; it must be greater than 0.",
        ),
        (
            {"MAX_ATTEMPTS": "3"},
            "GEARTRAIN['MAX_ATTEMPTS'] is '3' (str); it must be of type int.",
        ),
        (
            {"BACKOFF": "sometimes"},
            "GEARTRAIN['BACKOFF'] is 'sometimes'; it must be one of constant, "
            "incremental, exponential.",
        ),
        (
            {"TIMEOUT": 0},
            "GEARTRAIN['TIMEOUT'] is 0; it must be greater than 0, or None for no "
            "limit.",
        ),
        (
            {"RETRY_DELAY": -1},
            "GEARTRAIN['RETRY_DELAY'] is -1; it must be 0 or greater.",
        ),
        (
            {"DATABASE": None},
            "GEARTRAIN['DATABASE'] is None (NoneType); it must be of type str.",
        ),
        (
            {"HEARTBEAT_INTERVAL": 30.0, "LEASE_SECONDS": 30.0},
            "GEARTRAIN['HEARTBEAT_INTERVAL'] (30.0) must be shorter than "
            "GEARTRAIN['LEASE_SECONDS'] (30.0), or leases expire while their jobs "
            "still run.",
        ),
        (
            {"RETRY_DELAY": 60, "MAX_RETRY_DELAY": 10},
            "GEARTRAIN['MAX_RETRY_DELAY'] (10) must not be smaller than "
            "GEARTRAIN['RETRY_DELAY'] (60).",
        ),
    ],
)
def test_bad_values_are_e002(raw, message):
    with override_settings(GEARTRAIN=raw):
        found = checks.check_settings()

    error = only(found)
    assert error.id == "geartrain.E002"
    assert error.msg == message
    assert error.hint == SETTINGS_HINT
    assert error.level == django_checks.ERROR


@override_settings(GEARTRAIN={"MAX_ATTEMPTS": 0, "POLL_INTERVAL": -1, "NOPE": 1})
def test_every_problem_is_reported_at_once():
    found = checks.check_settings()

    assert ids(found) == ["geartrain.E001", "geartrain.E002", "geartrain.E002"]
    assert [m.msg for m in found[1:]] == [
        "GEARTRAIN['MAX_ATTEMPTS'] is 0; it must be greater than 0.",
        "GEARTRAIN['POLL_INTERVAL'] is -1; it must be greater than 0.",
    ]


@pytest.mark.parametrize("raw", [["MAX_ATTEMPTS", 3], "MAX_ATTEMPTS=3"])
def test_geartrain_that_is_not_a_dict_is_e002(raw):
    with override_settings(GEARTRAIN=raw):
        error = only(checks.check_settings())

    assert error.id == "geartrain.E002"
    assert error.msg == f"GEARTRAIN is a {type(raw).__name__}; it must be a dict."
    assert error.hint == "Set GEARTRAIN = {...} in your settings, or remove it."


@pytest.mark.parametrize(
    "retry_on",
    [["no.such.Error"], ["builtins.int"], ["builtins.ValueError", 3]],
    ids=["missing", "not-exception", "not-str"],
)
def test_retry_on_entries_that_are_not_exception_paths_are_e002(retry_on):
    with override_settings(GEARTRAIN={"RETRY_ON": retry_on}):
        found = checks.check_settings()

    assert ids(found) == ["geartrain.E002"]
    assert "RETRY_ON" in found[0].msg


@pytest.mark.parametrize(
    "raw",
    [
        {"LEASE_SECONDS": math.nan},
        {"POLL_INTERVAL": math.inf},
        {"RETRY_DELAY": math.nan},
    ],
    ids=["nan-lease", "inf-poll", "nan-delay"],
)
def test_nan_and_infinite_durations_are_e002(raw):
    with override_settings(GEARTRAIN=raw):
        found = checks.check_settings()

    assert ids(found) == ["geartrain.E002"]


# E003 bad queue names (the backend's own check) ---------------------------------------


def test_bad_queue_names_are_e003():
    tasks_setting = {
        "default": {"BACKEND": GEARTRAIN_BACKEND, "QUEUES": ["default", "", "q" * 65]}
    }
    with override_settings(TASKS=tasks_setting):
        found = list(task_backends["default"].check())

    assert ids(found) == ["geartrain.E003", "geartrain.E003"]
    assert found[0].msg == (
        "Queue name '' of task backend 'default' is not a string of 1 to 64 characters."
    )
    assert found[1].msg == (
        f"Queue name {'q' * 65!r} of task backend 'default' is not a string of 1 to 64 "
        f"characters."
    )
    assert found[0].hint == "Rename the queue in TASKS[...]['QUEUES']."


def test_queue_names_of_64_characters_pass():
    tasks_setting = {"default": {"BACKEND": GEARTRAIN_BACKEND, "QUEUES": ["q" * 64]}}
    with override_settings(TASKS=tasks_setting):
        assert list(task_backends["default"].check()) == []


def test_a_non_string_queue_name_is_e003():
    tasks_setting = {
        "default": {"BACKEND": GEARTRAIN_BACKEND, "QUEUES": ["default", 5]}
    }
    with override_settings(TASKS=tasks_setting):
        found = list(task_backends["default"].check())

    assert ids(found) == ["geartrain.E003"]
    assert found[0].msg == (
        "Queue name 5 of task backend 'default' is not a string of 1 to 64 characters."
    )


# E004 / E005 the database -------------------------------------------------------------


@override_settings(GEARTRAIN={"DATABASE": "jobs"})
def test_unknown_database_alias_is_e004():
    error = only(checks.check_database())

    assert error.id == "geartrain.E004"
    assert error.msg == "GEARTRAIN['DATABASE'] is 'jobs', which is not in DATABASES."
    assert error.hint == (
        "Add 'jobs' to DATABASES or point GEARTRAIN['DATABASE'] at a configured alias."
    )
    assert "geartrain.E004" in ids(run_checks(tags=["geartrain"]))


def test_unsupported_database_engine_is_e005():
    legacy = {"ENGINE": "django.db.backends.oracle", "NAME": "orcl"}
    with (
        pytest.warns(UserWarning, match="Overriding setting DATABASES"),
        _with_databases(legacy=legacy),
        override_settings(GEARTRAIN={"DATABASE": "legacy"}),
    ):
        error = only(checks.check_database())

    assert error.id == "geartrain.E005"
    assert error.msg == (
        "Database 'legacy' uses the engine 'django.db.backends.oracle', which "
        "geartrain does not support."
    )
    assert error.hint == "Use PostgreSQL, MariaDB/MySQL or SQLite."


# W001 / W002 SQLite set-up ------------------------------------------------------------

W001 = 'SQLite database \'jobs\' does not use "transaction_mode": "IMMEDIATE".'
W002 = "SQLite database 'jobs' does not switch to WAL journal mode."


def test_sqlite_without_options_gets_w001_and_w002():
    found = checks._sqlite_warnings("jobs", {})

    assert ids(found) == ["geartrain.W001", "geartrain.W002"]
    assert [m.msg for m in found] == [W001, W002]
    assert all(m.level == django_checks.WARNING for m in found)
    assert found[0].hint == (
        "Add it to DATABASES[...]['OPTIONS'] so that concurrent workers wait for the "
        "write lock instead of failing with 'database is locked'."
    )
    assert found[1].hint == (
        'Add "init_command": "PRAGMA journal_mode=WAL;" to DATABASES[...][\'OPTIONS\'] '
        "so that readers never block the worker."
    )


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
            [],
        ),
        (
            {
                "transaction_mode": "immediate",
                "init_command": "pragma JOURNAL_MODE = wal",
            },
            [],
        ),
        (
            {
                "transaction_mode": "DEFERRED",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
            ["geartrain.W001"],
        ),
        (
            {
                "transaction_mode": "EXCLUSIVE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
            ["geartrain.W001"],
        ),
        ({"transaction_mode": "IMMEDIATE"}, ["geartrain.W002"]),
        (
            {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=DELETE;",
            },
            ["geartrain.W002"],
        ),
    ],
)
def test_sqlite_options(options, expected):
    assert ids(checks._sqlite_warnings("jobs", options)) == expected


def test_check_database_warns_about_a_plain_sqlite_alias():
    plain = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    with (
        pytest.warns(UserWarning, match="Overriding setting DATABASES"),
        _with_databases(jobs=plain),
        override_settings(GEARTRAIN={"DATABASE": "jobs"}),
    ):
        found = checks.check_database()

    assert [m.msg for m in found] == [W001, W002]


# W003 no geartrain backend ------------------------------------------------------------


def test_no_geartrain_task_backend_is_w003():
    with override_settings(TASKS={"default": {"BACKEND": IMMEDIATE}}):
        warning = only(checks.check_backend_configured())
        via_registry = ids(run_checks(tags=["geartrain"]))

    assert warning.id == "geartrain.W003"
    assert warning.level == django_checks.WARNING
    assert warning.msg == (
        "No TASKS backend uses geartrain, so tasks will not be stored or run by "
        "geartrain workers."
    )
    assert warning.hint == (
        "Set TASKS = {'default': {'BACKEND': 'geartrain.backends.DatabaseBackend'}}."
    )
    assert "geartrain.W003" in via_registry


def test_one_geartrain_backend_among_others_is_enough():
    tasks_setting = {
        "default": {"BACKEND": IMMEDIATE},
        "jobs": {"BACKEND": GEARTRAIN_BACKEND},
    }
    with override_settings(TASKS=tasks_setting):
        assert checks.check_backend_configured() == []
