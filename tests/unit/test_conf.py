"""The ``GEARTRAIN`` setting (``geartrain.conf``): parsing, defaults, value messages."""

from __future__ import annotations

import dataclasses

import pytest
from django.test.utils import override_settings

from geartrain import conf
from geartrain.conf import Settings, get_settings, get_settings_from, value_problems


def test_defaults_are_documented_values():
    defaults = Settings()

    assert dataclasses.asdict(defaults) == {
        "DATABASE": "default",
        "TASK_MODULES": (),
        "MAX_ATTEMPTS": 3,
        "RETRY_ON": ("builtins.Exception",),
        "BACKOFF": "exponential",
        "RETRY_DELAY": 2.0,
        "MAX_RETRY_DELAY": 300.0,
        "RETRY_JITTER": True,
        "MAX_POSTPONES": 20,
        "POSTPONE_DELAY": 5.0,
        "TIMEOUT": None,
        "LEASE_SECONDS": 30.0,
        "HEARTBEAT_INTERVAL": 10.0,
        "REAP_INTERVAL": 10.0,
        "POLL_INTERVAL": 0.1,
        "CLAIM_BATCH_SIZE": 32,
        "SHUTDOWN_TIMEOUT": 30.0,
        "WORKER_FORGET_AFTER": 3600.0,
        "OVERLAP_FAILED": False,
        "AUTO_WEIGHT": True,
        "WEIGHT_SAMPLE_SIZE": 10,
        "SCHEDULER_INTERVAL": 60.0,
        "CATCH_UP_LIMIT": 100,
        "DEPENDENCY_RECHECK": 10.0,
        "SCHEDULER_BATCH_SIZE": 100,
    }
    assert value_problems({}) == []


def test_the_defaults_pass_every_rule():
    assert value_problems(dataclasses.asdict(Settings())) == []


def test_every_setting_has_a_type_rule():
    assert set(conf._TYPES) == {f.name for f in dataclasses.fields(Settings)}


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().MAX_ATTEMPTS = 5  # type: ignore[misc]


def test_get_settings_from_ignores_unknown_keys_and_freezes_lists():
    parsed = get_settings_from(
        {
            "MAX_ATTEMPTS": 7,
            "TASK_MODULES": ["app.jobs", "app.more"],
            "RETRY_ON": ["builtins.OSError"],
            "NOT_A_SETTING": 1,
        }
    )

    assert parsed.MAX_ATTEMPTS == 7
    assert parsed.TASK_MODULES == ("app.jobs", "app.more")
    assert parsed.RETRY_ON == ("builtins.OSError",)
    assert parsed.BACKOFF == "exponential"


def test_unknown_keys_are_sorted():
    raw = {"ZED": 1, "MAX_ATTEMPTS": 3, "alpha": 2, "max_attempts": 4}

    assert conf.unknown_keys(raw) == ["ZED", "alpha", "max_attempts"]


def test_unknown_keys_are_not_value_problems():
    assert value_problems({"NOPE": -1}) == []


def test_get_settings_follows_override_settings():
    with override_settings(GEARTRAIN={"MAX_ATTEMPTS": 9, "BACKOFF": "constant"}):
        inside = get_settings()
        assert get_settings() is inside
    after = get_settings()

    assert (inside.MAX_ATTEMPTS, inside.BACKOFF) == (9, "constant")
    assert after.MAX_ATTEMPTS == 3
    assert after.POLL_INTERVAL == 0.05  # tests/settings.py


def test_missing_or_non_dict_setting_reads_as_empty():
    with override_settings(GEARTRAIN=["MAX_ATTEMPTS", 9]):
        assert conf.raw_settings() == {}
        assert get_settings() == Settings()


# value_problems: one exact sentence per bad value -------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"DATABASE": 5}, "GEARTRAIN['DATABASE'] is 5 (int); it must be of type str."),
        (
            {"TASK_MODULES": "app.tasks"},
            "GEARTRAIN['TASK_MODULES'] is 'app.tasks' (str); it must be of type list "
            "or tuple.",
        ),
        (
            {"RETRY_ON": "builtins.OSError"},
            "GEARTRAIN['RETRY_ON'] is 'builtins.OSError' (str); it must be of type "
            "list or tuple.",
        ),
        (
            {"MAX_ATTEMPTS": 0},
            "GEARTRAIN['MAX_ATTEMPTS'] is 0; it must be greater than 0.",
        ),
        (
            {"MAX_ATTEMPTS": 2.5},
            "GEARTRAIN['MAX_ATTEMPTS'] is 2.5 (float); it must be of type int.",
        ),
        (
            {"MAX_ATTEMPTS": True},
            "GEARTRAIN['MAX_ATTEMPTS'] is True (bool); it must be of type int.",
        ),
        (
            {"BACKOFF": "linear"},
            "GEARTRAIN['BACKOFF'] is 'linear'; it must be one of constant, "
            "incremental, exponential.",
        ),
        ({"BACKOFF": 2}, "GEARTRAIN['BACKOFF'] is 2 (int); it must be of type str."),
        (
            {"RETRY_DELAY": -0.5},
            "GEARTRAIN['RETRY_DELAY'] is -0.5; it must be 0 or greater.",
        ),
        (
            {"RETRY_DELAY": "2"},
            "GEARTRAIN['RETRY_DELAY'] is '2' (str); it must be of type int or float.",
        ),
        (
            {"MAX_RETRY_DELAY": -1},
            "GEARTRAIN['MAX_RETRY_DELAY'] is -1; it must be 0 or greater.",
        ),
        (
            {"RETRY_JITTER": 1},
            "GEARTRAIN['RETRY_JITTER'] is 1 (int); it must be of type bool.",
        ),
        (
            {"MAX_POSTPONES": -1},
            "GEARTRAIN['MAX_POSTPONES'] is -1; it must be 0 or greater.",
        ),
        (
            {"MAX_POSTPONES": "10"},
            "GEARTRAIN['MAX_POSTPONES'] is '10' (str); it must be of type int or None.",
        ),
        (
            {"POSTPONE_DELAY": -5},
            "GEARTRAIN['POSTPONE_DELAY'] is -5; it must be 0 or greater.",
        ),
        (
            {"TIMEOUT": 0},
            "GEARTRAIN['TIMEOUT'] is 0; it must be greater than 0, or None for no "
            "limit.",
        ),
        (
            {"TIMEOUT": -3.5},
            "GEARTRAIN['TIMEOUT'] is -3.5; it must be greater than 0, or None for no "
            "limit.",
        ),
        (
            {"TIMEOUT": "60"},
            "GEARTRAIN['TIMEOUT'] is '60' (str); it must be of type int or float or "
            "None.",
        ),
        (
            {"LEASE_SECONDS": 0},
            "GEARTRAIN['LEASE_SECONDS'] is 0; it must be greater than 0.",
        ),
        (
            {"HEARTBEAT_INTERVAL": -1},
            "GEARTRAIN['HEARTBEAT_INTERVAL'] is -1; it must be greater than 0.",
        ),
        (
            {"REAP_INTERVAL": 0.0},
            "GEARTRAIN['REAP_INTERVAL'] is 0.0; it must be greater than 0.",
        ),
        (
            {"POLL_INTERVAL": 0},
            "GEARTRAIN['POLL_INTERVAL'] is 0; it must be greater than 0.",
        ),
        (
            {"CLAIM_BATCH_SIZE": 0},
            "GEARTRAIN['CLAIM_BATCH_SIZE'] is 0; it must be greater than 0.",
        ),
        (
            {"CLAIM_BATCH_SIZE": 8.0},
            "GEARTRAIN['CLAIM_BATCH_SIZE'] is 8.0 (float); it must be of type int.",
        ),
        (
            {"SHUTDOWN_TIMEOUT": -1},
            "GEARTRAIN['SHUTDOWN_TIMEOUT'] is -1; it must be 0 or greater.",
        ),
        (
            {"WORKER_FORGET_AFTER": 0},
            "GEARTRAIN['WORKER_FORGET_AFTER'] is 0; it must be greater than 0.",
        ),
        (
            {"LEASE_SECONDS": None},
            "GEARTRAIN['LEASE_SECONDS'] is None (NoneType); it must be of type int or "
            "float.",
        ),
    ],
)
def test_value_problem_messages(raw, message):
    assert value_problems(raw) == [message]


@pytest.mark.parametrize(
    "raw",
    [
        {"MAX_POSTPONES": None},
        {"MAX_POSTPONES": 0},
        {"TIMEOUT": None},
        {"TIMEOUT": 0.5},
        {"RETRY_DELAY": 0, "MAX_RETRY_DELAY": 0},
        {"SHUTDOWN_TIMEOUT": 0},
        {"POSTPONE_DELAY": 0},
        {"TASK_MODULES": ("a.tasks",), "RETRY_ON": []},
        {"BACKOFF": "constant", "RETRY_JITTER": False},
        {"HEARTBEAT_INTERVAL": 0.5, "LEASE_SECONDS": 0.6},
        {"MAX_ATTEMPTS": 1, "CLAIM_BATCH_SIZE": 1},
    ],
)
def test_good_values_have_no_problem(raw):
    assert value_problems(raw) == []


def test_several_bad_values_give_one_sentence_each_in_key_order():
    raw = {"POLL_INTERVAL": 0, "BACKOFF": "x", "MAX_ATTEMPTS": "3"}

    assert value_problems(raw) == [
        "GEARTRAIN['POLL_INTERVAL'] is 0; it must be greater than 0.",
        "GEARTRAIN['BACKOFF'] is 'x'; it must be one of constant, incremental, "
        "exponential.",
        "GEARTRAIN['MAX_ATTEMPTS'] is '3' (str); it must be of type int.",
    ]


@pytest.mark.parametrize(
    ("raw", "messages"),
    [
        (
            {"HEARTBEAT_INTERVAL": 40},
            [
                "GEARTRAIN['HEARTBEAT_INTERVAL'] (40) must be shorter than "
                "GEARTRAIN['LEASE_SECONDS'] (30.0), or leases expire while their jobs "
                "still run."
            ],
        ),
        (
            {"LEASE_SECONDS": 5},
            [
                "GEARTRAIN['HEARTBEAT_INTERVAL'] (10.0) must be shorter than "
                "GEARTRAIN['LEASE_SECONDS'] (5), or leases expire while their jobs "
                "still run."
            ],
        ),
        (
            {"RETRY_DELAY": 500},
            [
                "GEARTRAIN['MAX_RETRY_DELAY'] (300.0) must not be smaller than "
                "GEARTRAIN['RETRY_DELAY'] (500)."
            ],
        ),
        (
            {
                "HEARTBEAT_INTERVAL": 3,
                "LEASE_SECONDS": 3,
                "RETRY_DELAY": 9,
                "MAX_RETRY_DELAY": 1,
            },
            [
                "GEARTRAIN['HEARTBEAT_INTERVAL'] (3) must be shorter than "
                "GEARTRAIN['LEASE_SECONDS'] (3), or leases expire while their jobs "
                "still run.",
                "GEARTRAIN['MAX_RETRY_DELAY'] (1) must not be smaller than "
                "GEARTRAIN['RETRY_DELAY'] (9).",
            ],
        ),
    ],
)
def test_coherence_problems_compare_with_the_defaults(raw, messages):
    assert value_problems(raw) == messages


def test_coherence_is_checked_only_when_every_value_is_valid():
    raw = {"HEARTBEAT_INTERVAL": 40, "MAX_ATTEMPTS": 0}

    assert value_problems(raw) == [
        "GEARTRAIN['MAX_ATTEMPTS'] is 0; it must be greater than 0."
    ]
