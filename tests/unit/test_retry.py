"""Retry arithmetic (``geartrain.retry``): pure, no database."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geartrain.retry import BACKOFFS, RetryPolicy, postpone_allowed

delays = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
attempts = st.integers(min_value=1, max_value=10_000)
unit = st.floats(min_value=0, max_value=1, exclude_max=True)


@st.composite
def policies(draw: st.DrawFn, *, jitter: bool | None = None) -> RetryPolicy:
    delay = draw(delays)
    max_delay = draw(st.floats(min_value=delay, max_value=2e6, allow_nan=False))
    return RetryPolicy(
        max_attempts=draw(st.integers(min_value=1, max_value=50)),
        backoff=draw(st.sampled_from(BACKOFFS)),
        delay=delay,
        max_delay=max_delay,
        jitter=draw(st.booleans()) if jitter is None else jitter,
    )


def _fixed(backoff: str, delay: float, max_delay: float) -> RetryPolicy:
    return RetryPolicy(backoff=backoff, delay=delay, max_delay=max_delay, jitter=False)  # type: ignore[arg-type]


# Delays -------------------------------------------------------------------------------


def test_defaults():
    policy = RetryPolicy()

    assert policy.max_attempts == 3
    assert policy.retry_on == (Exception,)
    assert (policy.backoff, policy.delay, policy.max_delay, policy.jitter) == (
        "exponential",
        2.0,
        300.0,
        True,
    )
    assert BACKOFFS == ("constant", "incremental", "exponential")


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("constant", [3, 3, 3, 3, 3]),
        ("incremental", [3, 6, 9, 12, 15]),
        ("exponential", [3, 6, 12, 24, 48]),
    ],
)
def test_delay_sequences(backoff, expected):
    policy = _fixed(backoff, 3, 1000)

    assert [policy.delay_for(n) for n in range(1, 6)] == expected


def test_the_cap_applies_to_every_strategy():
    assert [_fixed("exponential", 2, 10).delay_for(n) for n in range(1, 6)] == [
        2,
        4,
        8,
        10,
        10,
    ]
    assert [_fixed("incremental", 4, 10).delay_for(n) for n in range(1, 5)] == [
        4,
        8,
        10,
        10,
    ]
    assert _fixed("constant", 5, 5).delay_for(99) == 5


@given(delay=delays, extra=delays, attempt=attempts)
def test_constant_is_the_delay(delay, extra, attempt):
    assert _fixed("constant", delay, delay + extra).delay_for(attempt) == delay


@given(delay=delays, extra=delays, attempt=attempts)
def test_incremental_is_delay_times_attempt_capped(delay, extra, attempt):
    cap = delay + extra

    assert _fixed("incremental", delay, cap).delay_for(attempt) == min(
        delay * attempt, cap
    )


@given(delay=delays, extra=delays, attempt=attempts)
def test_exponential_doubles_and_is_capped(delay, extra, attempt):
    cap = delay + extra
    got = _fixed("exponential", delay, cap).delay_for(attempt)

    assert got == min(delay * 2.0 ** min(attempt - 1, 64), cap)
    assert math.isfinite(got)
    assert 0 <= got <= cap


@given(policy=policies(jitter=False), attempt=attempts)
def test_delays_never_shrink_as_attempts_grow(policy, attempt):
    assert policy.delay_for(attempt) <= policy.delay_for(attempt + 1)


@given(policy=policies(), attempt=st.integers(min_value=-5, max_value=1))
def test_attempt_numbers_below_one_count_as_the_first(policy, attempt):
    fixed = RetryPolicy(
        backoff=policy.backoff,
        delay=policy.delay,
        max_delay=policy.max_delay,
        jitter=False,
    )
    assert fixed.delay_for(attempt) == fixed.delay_for(1)


def test_huge_attempt_numbers_do_not_overflow():
    policy = _fixed("exponential", 1, 1e300)

    assert policy.delay_for(10**9) == 2.0**64
    assert _fixed("incremental", 1, 60).delay_for(10**12) == 60


# Jitter -------------------------------------------------------------------------------


@given(policy=policies(jitter=True), attempt=attempts, r=unit)
def test_jitter_draws_between_half_and_all_of_the_delay(policy, attempt, r):
    plain = RetryPolicy(
        backoff=policy.backoff,
        delay=policy.delay,
        max_delay=policy.max_delay,
        jitter=False,
    ).delay_for(attempt)

    got = policy.delay_for(attempt, rand=lambda: r)

    assert plain / 2 <= got <= plain
    assert got == pytest.approx(plain / 2 + r * plain / 2)


def test_jitter_bounds_with_the_extreme_draws():
    policy = RetryPolicy(backoff="constant", delay=10, max_delay=10, jitter=True)

    assert policy.delay_for(1, rand=lambda: 0.0) == 5
    assert policy.delay_for(1, rand=lambda: 1.0) == 10


def test_jitter_uses_random_by_default():
    policy = RetryPolicy(backoff="constant", delay=8, max_delay=8, jitter=True)

    draws = {policy.delay_for(1) for _ in range(50)}

    assert len(draws) > 1
    assert all(4 <= d <= 8 for d in draws)


# Which failures are retried -----------------------------------------------------------


class AppError(Exception):
    pass


class NetworkError(AppError):
    pass


@given(max_attempts=st.integers(min_value=1, max_value=100), attempt=attempts)
def test_retries_only_while_attempts_remain(max_attempts, attempt):
    policy = RetryPolicy(max_attempts=max_attempts)

    assert policy.retries(ValueError("x"), attempt) is (attempt < max_attempts)
    assert policy.retries(None, attempt) is (attempt < max_attempts)


def test_max_attempts_one_never_retries():
    policy = RetryPolicy(max_attempts=1)

    assert policy.retries(ValueError(), 1) is False
    assert policy.retries(None, 1) is False


def test_retry_on_matches_subclasses_instances_and_classes():
    policy = RetryPolicy(max_attempts=5, retry_on=(AppError,))

    assert policy.retries(AppError(), 1) is True
    assert policy.retries(NetworkError(), 1) is True
    assert policy.retries(NetworkError, 4) is True
    assert policy.retries(ValueError(), 1) is False
    assert policy.retries(KeyboardInterrupt, 1) is False


def test_retry_on_several_classes():
    policy = RetryPolicy(max_attempts=5, retry_on=(ConnectionError, TimeoutError))

    assert policy.retries(ConnectionResetError(), 1) is True
    assert policy.retries(TimeoutError(), 2) is True
    assert policy.retries(OSError(), 1) is False


def test_empty_retry_on_retries_only_lost_workers():
    policy = RetryPolicy(max_attempts=3, retry_on=())

    assert policy.retries(Exception(), 1) is False
    assert policy.retries(None, 1) is True
    assert policy.retries(None, 2) is True
    assert policy.retries(None, 3) is False


@given(
    max_attempts=st.integers(min_value=1, max_value=20),
    attempt=st.integers(min_value=1, max_value=40),
)
def test_a_lost_worker_retries_whatever_retry_on_says(max_attempts, attempt):
    policy = RetryPolicy(max_attempts=max_attempts, retry_on=(KeyError,))

    assert policy.retries(None, attempt) is (attempt < max_attempts)


# Validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"max_attempts": 0},
            "max_attempts is 0; it must be 1 or more (1 means the job is never "
            "retried).",
        ),
        (
            {"max_attempts": -2},
            "max_attempts is -2; it must be 1 or more (1 means the job is never "
            "retried).",
        ),
        ({"max_attempts": 2.0}, "max_attempts 2.0 is not a whole number."),
        ({"max_attempts": True}, "max_attempts True is not a whole number."),
        ({"max_attempts": "3"}, "max_attempts '3' is not a whole number."),
        (
            {"backoff": "linear"},
            "backoff is 'linear'; it must be one of constant, incremental, "
            "exponential.",
        ),
        ({"delay": -1.0}, "retry_delay is -1.0; it must be 0 or greater."),
        (
            {"delay": 10.0, "max_delay": 5.0},
            "retry_delay 10.0 is larger than its cap max_retry_delay 5.0. Lower "
            "retry_delay or raise max_retry_delay (GEARTRAIN['MAX_RETRY_DELAY'] by "
            "default).",
        ),
        (
            {"retry_on": (ValueError, int)},
            "retry_on contains <class 'int'>, which is not an exception class.",
        ),
        (
            {"retry_on": ("builtins.ValueError",)},
            "retry_on contains 'builtins.ValueError', which is not an exception class.",
        ),
    ],
)
def test_invalid_policies_are_rejected_with_the_rule(options, message):
    with pytest.raises(ValueError, match=r".") as info:
        RetryPolicy(**options)

    assert str(info.value) == message


def test_problems_lists_every_violation():
    policy = RetryPolicy()
    object.__setattr__(policy, "max_attempts", 0)
    object.__setattr__(policy, "backoff", "sometimes")
    object.__setattr__(policy, "delay", -1)

    assert policy.problems() == [
        "max_attempts is 0; it must be 1 or more (1 means the job is never retried).",
        "backoff is 'sometimes'; it must be one of constant, incremental, exponential.",
        "retry_delay is -1; it must be 0 or greater.",
    ]


def test_valid_policy_has_no_problems():
    assert (
        RetryPolicy(max_attempts=1, delay=0, max_delay=0, retry_on=()).problems() == []
    )


def test_policy_is_frozen():
    policy = RetryPolicy()

    with pytest.raises(AttributeError):
        policy.max_attempts = 5  # type: ignore[misc]


# Postpones ----------------------------------------------------------------------------


@given(so_far=st.integers(min_value=0, max_value=1000), limit=st.integers(0, 1000))
def test_postpone_allowed_below_the_limit(so_far, limit):
    assert postpone_allowed(so_far, limit) is (so_far < limit)


@given(so_far=st.integers(min_value=0, max_value=10**9))
def test_postpone_without_limit_is_always_allowed(so_far):
    assert postpone_allowed(so_far, None) is True


def test_a_limit_of_zero_allows_no_postpone():
    assert postpone_allowed(0, 0) is False
