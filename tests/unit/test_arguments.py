"""Command-line validators (``geartrain.management.arguments``) and their errors."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geartrain.management import arguments

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_RULE = (
    "is not a duration. Write a number followed by s, m, h, d or w, such as 90s, 1h or "
    "14d."
)


def error_of(func, text: str) -> str:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        func(text)
    return str(info.value)


# duration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(weeks=2)),
        ("1.5h", timedelta(minutes=90)),
        ("0.25d", timedelta(hours=6)),
        ("0s", timedelta(0)),
        (" 1h ", timedelta(hours=1)),
    ],
)
def test_durations(text, expected):
    assert arguments.duration(text) == expected


@given(st.integers(min_value=0, max_value=5000), st.sampled_from(sorted(UNITS)))
def test_whole_durations_in_every_unit(number, unit):
    assert arguments.duration(f"{number}{unit}") == timedelta(
        seconds=number * UNITS[unit]
    )


@given(
    st.integers(min_value=0, max_value=5000),
    st.integers(min_value=0, max_value=999),
    st.sampled_from(sorted(UNITS)),
)
def test_decimal_durations(whole, fraction, unit):
    text = f"{whole}.{fraction:03d}{unit}"

    got = arguments.duration(text)

    assert got.total_seconds() == pytest.approx(float(text[:-1]) * UNITS[unit])


@pytest.mark.parametrize(
    "text",
    [
        "3x",
        "",
        " ",
        "h",
        "1",
        "-1h",
        "+1h",
        "1 h",
        "1H",
        "1hour",
        "1h30m",
        ".5h",
        "1.h",
        "1e3s",
        "P1D",
    ],
)
def test_bad_durations(text):
    assert error_of(arguments.duration, text) == f"{text!r} {DURATION_RULE}"


# positive_int -------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=10**12))
def test_positive_whole_numbers(number):
    assert arguments.positive_int(str(number)) == number
    assert arguments.positive_int(f"+{number}") == number
    assert arguments.positive_int(f" {number} ") == number


@given(st.integers(max_value=0))
def test_zero_and_negative_numbers_are_rejected(number):
    assert error_of(arguments.positive_int, str(number)) == (
        f"'{number}' is not a whole number of 1 or more."
    )


@pytest.mark.parametrize("text", ["", "abc", "1.5", "2.0", "1e3", "1_000", "0x10", "½"])
def test_non_numbers_are_rejected(text):
    assert error_of(arguments.positive_int, text) == (
        f"{text!r} is not a whole number of 1 or more."
    )


def test_leading_zeros_are_whole_numbers():
    assert arguments.positive_int("08") == 8


# non_negative_float -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0.0), ("2.5", 2.5), ("30", 30.0), (" 1 ", 1.0), ("1e3", 1000.0)],
)
def test_non_negative_floats(text, expected):
    assert arguments.non_negative_float(text) == expected


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_any_finite_non_negative_float(number):
    assert arguments.non_negative_float(repr(number)) == number


@pytest.mark.parametrize(
    "text", ["-1", "-0.1", "nan", "inf", "Infinity", "", "soon", "1s"]
)
def test_bad_seconds(text):
    assert error_of(arguments.non_negative_float, text) == (
        f"{text!r} is not a number of seconds of 0 or more."
    )


# queue_list ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("default", ["default"]),
        ("default,emails", ["default", "emails"]),
        (" default , emails ", ["default", "emails"]),
        ("a,b,c", ["a", "b", "c"]),
    ],
)
def test_queue_lists(text, expected):
    assert arguments.queue_list(text) == expected


@given(st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True), min_size=1))
def test_any_list_of_names_round_trips(names):
    assert arguments.queue_list(",".join(names)) == names


@pytest.mark.parametrize("text", [",", "", " ", "a,", ",a", "a,,b", "a, ,b"])
def test_bad_queue_lists(text):
    assert error_of(arguments.queue_list, text) == (
        f"{text!r} is not a comma-separated list of queue names, such as "
        f"default,emails."
    )
