"""Bad input is refused at enqueue (or decoration) with an exact message.

Nothing is stored by a refused enqueue.

Messages are asserted word for word: they are part of the user-facing contract.
"""

from __future__ import annotations

import math
import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test.utils import override_settings

import geartrain
from geartrain import compat
from geartrain.exceptions import InvalidArguments
from geartrain.models import Job
from geartrain.tasks import GeartrainTask, retry_policy
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

HINT = (
    "which is not JSON. Pass only JSON values (str, int, float, bool, None, list, or "
    "dict with str keys), e.g. an ISO 8601 string for a date or a primary key for a "
    "model instance."
)
IMMEDIATE = f"{compat.TASKS_MODULE}.backends.immediate.ImmediateBackend"
WITH_IMMEDIATE = {
    "default": {
        "BACKEND": "geartrain.backends.DatabaseBackend",
        "QUEUES": ["default", "emails", "reports"],
    },
    "immediate": {"BACKEND": IMMEDIATE},
}
VENDOR = os.environ.get("GEARTRAIN_TEST_DB", "sqlite")
# Typed as Any: these tests pass arguments the task annotations do not allow.
record: Any = tasks.record
RECORD = "tests.testapp.tasks.record"
add: Any = tasks.add


# A task defined outside any installed app's ``tasks`` module: never registered.
@geartrain.task
def unregistered_job(x: int) -> int:
    return x


def plain_function(x: int = 0) -> int:
    """Decorated inside the tests, at module level so Django accepts it."""
    return x


def impostor(a: int, b: int) -> int:
    return a * b


# Pretend to be tests.testapp.tasks.add: same path, different function.
impostor.__module__ = "tests.testapp.tasks"
impostor.__qualname__ = "add"


def _assert_nothing_stored() -> None:
    assert Job.objects.count() == 0


# Queue --------------------------------------------------------------------------------


def test_unknown_queue_is_rejected_with_the_configured_ones():
    with pytest.raises(compat.InvalidTask) as info:
        tasks.add.using(queue_name="nope").enqueue(1, 2)

    assert str(info.value) == (
        "Queue 'nope' of task 'tests.testapp.tasks.add' is not configured for backend "
        "'default' (configured: 'default', 'emails', 'reports'). Add it to "
        "TASKS['default']['QUEUES'] or use a configured queue."
    )
    _assert_nothing_stored()


def test_unknown_queue_in_the_decorator_is_rejected_at_decoration():
    with pytest.raises(compat.InvalidTask) as info:
        geartrain.task(queue_name="bulk")(plain_function)

    assert str(info.value) == (
        "Queue 'bulk' of task 'tests.integration.test_enqueue_validation."
        "plain_function' is not configured for backend 'default' (configured: "
        "'default', 'emails', 'reports'). Add it to TASKS['default']['QUEUES'] or use "
        "a configured queue."
    )


# Priority -----------------------------------------------------------------------------


@pytest.mark.parametrize("priority", [101, -101, 1.5, True, "5"])
def test_priority_out_of_range_or_not_whole_is_rejected(priority):
    with pytest.raises(compat.InvalidTask) as info:
        tasks.add.using(priority=priority).enqueue(1, 2)

    assert str(info.value) == (
        f"Priority {priority!r} of task 'tests.testapp.tasks.add' is not a whole "
        f"number from -100 to 100. Use 100 to run first, -100 to run last, 0 by "
        f"default."
    )
    _assert_nothing_stored()


def test_priority_out_of_range_in_the_decorator_is_rejected_at_decoration():
    with pytest.raises(compat.InvalidTask) as info:
        geartrain.task(priority=500)(plain_function)

    assert str(info.value).startswith(
        "Priority 500 of task 'tests.integration.test_enqueue_validation."
        "plain_function' is not a whole number from -100 to 100."
    )


# run_after ----------------------------------------------------------------------------


def test_naive_run_after_is_rejected():
    with pytest.raises(compat.InvalidTask) as info:
        tasks.add.using(run_after=datetime(2030, 5, 17, 9, 30)).enqueue(1, 2)

    assert str(info.value) == (
        "run_after '2030-05-17T09:30:00' of task 'tests.testapp.tasks.add' is a naive "
        "datetime. Pass an aware datetime, such as timezone.now() + "
        "timedelta(minutes=5)."
    )
    _assert_nothing_stored()


# Arguments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "where", "what"),
    [
        ((1, object()), {}, "args[1]", "a builtins.object"),
        ((1, {2, 3}), {}, "args[1]", "a builtins.set"),
        ((Decimal("1.5"), 2), {}, "args[0]", "a decimal.Decimal"),
        ((), {"when": date(2024, 1, 2)}, "kwargs['when']", "a datetime.date"),
        (
            (),
            {"when": datetime(2024, 1, 2, tzinfo=UTC)},
            "kwargs['when']",
            "a datetime.datetime",
        ),
        ((), {"b": b"bytes"}, "kwargs['b']", "a builtins.bytes"),
        (
            (),
            {"opts": {"a": {"b": [1, 2, {"c": object()}]}}},
            "kwargs['opts']['a']['b'][2]['c']",
            "a builtins.object",
        ),
        (
            ([[1, [2, [3, timedelta(1)]]]],),
            {},
            "args[0][0][1][1][1]",
            "a datetime.timedelta",
        ),
        (
            (),
            {"opts": {"a": {1: "one"}}},
            "kwargs['opts']['a']",
            "a dict with the non-str key 1",
        ),
        (({("x", 1): 2},), {}, "args[0]", "a dict with the non-str key ('x', 1)"),
        ((), {"ratio": math.nan}, "kwargs['ratio']", "the float nan"),
        ((1, [math.inf]), {}, "args[1][0]", "the float inf"),
        ((1, -math.inf), {}, "args[1]", "the float -inf"),
    ],
)
def test_non_json_arguments_are_rejected_with_their_path(args, kwargs, where, what):
    with pytest.raises(InvalidArguments) as info:
        record.enqueue(*args, **kwargs)

    assert str(info.value) == (
        f"Argument {where} of task 'tests.testapp.tasks.record' is {what}, {HINT}"
    )
    # InvalidArguments is also a TypeError, as Django code expects.
    assert isinstance(info.value, TypeError)
    _assert_nothing_stored()


def test_model_instance_argument_is_rejected():
    from django.contrib.auth.models import Group

    group = Group.objects.create(name="editors")

    with pytest.raises(InvalidArguments) as info:
        record.enqueue(group)

    assert str(info.value) == (
        f"Argument args[0] of task 'tests.testapp.tasks.record' is a "
        f"django.contrib.auth.models.Group, {HINT}"
    )
    _assert_nothing_stored()


@pytest.mark.parametrize(
    "value",
    [
        2**70,
        -(2**63) - 1,
        1.5,
        -0.5,
        "naïve ☃ 𝄞",
        {"nested": [None, True, False, 0, "", [], {}]},
        "",
    ],
)
def test_json_values_are_stored_and_read_back_unchanged(value):
    result = add.enqueue(value, b=value)

    fetched = tasks.add.get_result(result.id)
    assert fetched.args == [value]
    assert fetched.kwargs == {"b": value}
    assert Job.objects.get().args == [value]


def _xfail_on(request: Any, vendors: set[str], reason: str) -> None:
    if VENDOR in vendors:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


@pytest.mark.parametrize(
    ("value", "what"),
    [
        pytest.param(
            "nul \x00 inside", "a string containing a NUL character (\\x00)", id="nul"
        ),
        pytest.param(
            "lone \ud800 surrogate",
            "a string containing a lone surrogate, which is not valid Unicode",
            id="surrogate",
        ),
    ],
)
def test_strings_no_database_can_store_are_refused_by_name(value, what):
    with pytest.raises(InvalidArguments) as info:
        record.enqueue(value)

    assert str(info.value) == (
        f"Argument args[0] of task '{RECORD}' is {what}, which is not JSON. Pass only "
        f"JSON values (str, int, float, bool, None, list, or dict with str keys), e.g. "
        f"an ISO 8601 string for a date or a primary key for a model instance."
    )
    _assert_nothing_stored()


def test_float_in_exponent_form_keeps_its_value(request):
    _xfail_on(
        request,
        {"postgresql"},
        "PostgreSQL jsonb stores 1e300 as numeric and returns the integer "
        "10**300, which is a different value: a float argument or return value "
        "does not survive storage on PostgreSQL (Job.args/return_value JSONField).",
    )
    result = record.enqueue(1e300)

    fetched = tasks.record.get_result(result.id).args[0]
    assert fetched == 1e300
    assert isinstance(fetched, float)


# Registration -------------------------------------------------------------------------


def test_unregistered_task_is_rejected():
    with pytest.raises(compat.InvalidTask) as info:
        unregistered_job.enqueue(1)

    assert str(info.value) == (
        "Task 'tests.integration.test_enqueue_validation.unregistered_job' is not "
        "registered, so no worker would run it. Define it in the 'tasks' module of an "
        "installed app, or add its module to GEARTRAIN['TASK_MODULES']."
    )
    _assert_nothing_stored()


def test_unregistered_task_is_rejected_by_bulk_enqueue():
    with pytest.raises(compat.InvalidTask, match="is not registered"):
        geartrain.bulk_enqueue(unregistered_job, [((1,), {}), ((2,), {})])

    _assert_nothing_stored()


def test_a_different_function_under_a_registered_path_is_rejected():
    fake = geartrain.task(impostor)
    assert fake.module_path == "tests.testapp.tasks.add"

    with pytest.raises(compat.InvalidTask) as info:
        fake.enqueue(6, 7)

    assert str(info.value).startswith(
        "Task 'tests.testapp.tasks.add' is not registered, so no worker would run it."
    )
    _assert_nothing_stored()


# Per-task options ---------------------------------------------------------------------

PATH = "'tests.integration.test_enqueue_validation.plain_function'"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"max_attempts": 0},
            f"max_attempts 0 of task {PATH} is not a whole number of 1 or more.",
        ),
        (
            {"max_attempts": -3},
            f"max_attempts -3 of task {PATH} is not a whole number of 1 or more.",
        ),
        (
            {"max_attempts": 2.5},
            f"max_attempts 2.5 of task {PATH} is not a whole number of 1 or more.",
        ),
        (
            {"max_attempts": True},
            f"max_attempts True of task {PATH} is not a whole number of 1 or more.",
        ),
        (
            {"backoff": "sometimes"},
            f"backoff 'sometimes' of task {PATH} is not one of constant, incremental, "
            f"exponential.",
        ),
        (
            {"timeout": -1},
            f"timeout -1 of task {PATH} is not a number of seconds > 0. Use None for "
            "no limit.",
        ),
        (
            {"timeout": "60"},
            f"timeout '60' of task {PATH} is not a number of seconds > 0. Use None "
            "for no limit.",
        ),
        (
            {"retry_delay": -0.5},
            f"retry_delay -0.5 of task {PATH} is not a number of seconds >= 0.",
        ),
        (
            {"max_retry_delay": False},
            f"max_retry_delay False of task {PATH} is not a number of seconds >= 0.",
        ),
        (
            {"max_postpones": -1},
            f"max_postpones -1 of task {PATH} is not a whole number of 0 or more.",
        ),
        (
            {"max_attempts": 0, "backoff": "never", "timeout": -2},
            f"max_attempts 0 of task {PATH} is not a whole number of 1 or more. "
            f"backoff 'never' of task {PATH} is not one of constant, incremental, "
            f"exponential. timeout -2 of task {PATH} is not a number of seconds > 0. "
            "Use None for no limit.",
        ),
    ],
)
def test_bad_task_options_are_rejected_at_decoration(options, message):
    with pytest.raises(compat.InvalidTask) as info:
        geartrain.task(**options)(plain_function)

    assert str(info.value) == message


def test_djangos_own_task_decorator_passes_options_to_geartrain():
    from geartrain.compat import task

    django_task: Any = task

    made = django_task(max_attempts=4, backoff="constant", timeout=9)(plain_function)
    assert isinstance(made, GeartrainTask)
    assert (made.max_attempts, made.backoff, made.timeout) == (4, "constant", 9)
    with pytest.raises(compat.InvalidTask) as info:
        django_task(max_attempts=0)(plain_function)
    assert str(info.value) == (
        f"max_attempts 0 of task {PATH} is not a whole number of 1 or more."
    )


def test_good_task_options_are_kept():
    made = geartrain.task(
        max_attempts=7,
        retry_on=(ConnectionError, "builtins.TimeoutError"),
        backoff="incremental",
        retry_delay=1,
        max_retry_delay=10,
        retry_jitter=False,
        max_postpones=0,
        timeout=2.5,
        unique=True,
        priority=9,
        queue_name="reports",
    )(plain_function)

    assert made.max_attempts == 7
    assert made.unique is True
    assert (made.priority, made.queue_name) == (9, "reports")
    policy = retry_policy(made)
    assert policy.max_attempts == 7
    assert policy.retry_on == (ConnectionError, TimeoutError)
    assert (policy.backoff, policy.delay, policy.max_delay, policy.jitter) == (
        "incremental",
        1.0,
        10.0,
        False,
    )


@override_settings(TASKS=WITH_IMMEDIATE)
def test_geartrain_options_on_another_backend_raise_type_error():
    with pytest.raises(TypeError) as info:
        geartrain.task(backend="immediate", max_attempts=3, unique=True)(plain_function)

    assert str(info.value) == (
        "Task backend 'immediate' is not geartrain's, so it does not take the options "
        "max_attempts, unique. Set TASKS['immediate']['BACKEND'] to "
        "'geartrain.backends.DatabaseBackend'."
    )


@override_settings(TASKS=WITH_IMMEDIATE)
def test_geartrain_decorator_without_options_on_another_backend_is_clear():
    refusal = ""
    try:
        made = geartrain.task(backend="immediate")(plain_function)
    except TypeError as exc:
        refusal = str(exc)
    if refusal:
        assert "'immediate'" in refusal
    else:
        assert made.enqueue(5).return_value == 5
    _assert_nothing_stored()


def _policy_problem(**options: Any) -> str | None:
    """The InvalidTask message of decorating with ``options``, or None."""
    try:
        made = geartrain.task(**options)(plain_function)
    except compat.InvalidTask as exc:
        return str(exc)
    retry_policy(made)  # what the worker does when an attempt fails
    return None


@pytest.mark.parametrize(
    "options",
    [{"retry_delay": 600}, {"retry_delay": 10, "max_retry_delay": 5}],
    ids=["delay-above-default-cap", "delay-above-own-cap"],
)
def test_retry_delay_above_its_cap_is_rejected_at_decoration(options):
    problem = _policy_problem(**options)

    assert problem is not None
    assert "retry_delay" in problem


@pytest.mark.parametrize(
    "retry_on",
    [(int,), ("no.such.Error",), "builtins.ValueError"],
    ids=["not-an-exception", "bad-path", "bare-string"],
)
def test_bad_retry_on_is_rejected_at_decoration(retry_on):
    with pytest.raises(compat.InvalidTask, match="retry_on"):
        geartrain.task(retry_on=retry_on)(plain_function)
