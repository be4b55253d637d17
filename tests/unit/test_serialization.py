"""JSON checks of arguments and results (``geartrain.serialization``): pure."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from datetime import date
from decimal import Decimal
from enum import IntEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geartrain import serialization
from geartrain.exceptions import InvalidArguments

# Text every database stores: no NUL, no lone surrogates (both refused).
STORABLE = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(STORABLE, max_size=12)
)
keys = st.text(STORABLE, max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.tuples(children, children)
    ),
    max_leaves=12,
)
HINT = "str, int, float, bool, None, list, or dict with str keys"


class Thing:
    class Inner:
        pass


class Colour(IntEnum):
    RED = 1


def round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value))


# Accepted values ----------------------------------------------------------------------


@given(json_values)
def test_json_values_are_accepted(value):
    assert serialization.find_non_json(value, "args") is None


@given(json_values)
def test_normalize_equals_the_json_round_trip(value):
    assert serialization.normalize(value) == round_trip(value)


@given(
    st.lists(json_values, max_size=3), st.dictionaries(keys, json_values, max_size=3)
)
def test_check_arguments_returns_the_round_tripped_call(args, kwargs):
    norm_args, norm_kwargs = serialization.check_arguments(
        "t.task", tuple(args), kwargs
    )

    assert norm_args == round_trip(args)
    assert norm_kwargs == round_trip(kwargs)
    assert isinstance(norm_args, list)
    assert isinstance(norm_kwargs, dict)


@given(json_values)
def test_check_return_value_returns_the_round_tripped_value(value):
    assert serialization.check_return_value("t.task", value) == round_trip(value)


@given(json_values)
def test_dumps_is_compact_json_of_the_value(value):
    text = serialization.dumps(value)

    assert text == json.dumps(value, separators=(",", ":"))
    assert json.loads(text) == round_trip(value)


@given(
    st.dictionaries(keys, json_values, max_size=6), st.randoms(use_true_random=False)
)
def test_canonical_ignores_dict_order(mapping, rnd):
    items = list(mapping.items())
    rnd.shuffle(items)

    assert serialization.canonical(dict(items)) == serialization.canonical(mapping)
    assert serialization.canonical(mapping) == json.dumps(
        mapping, separators=(",", ":"), sort_keys=True
    )


def test_canonical_treats_tuples_and_lists_alike():
    assert serialization.canonical(["t", (1, (2,)), {"b": 1, "a": 2}]) == (
        '["t",[1,[2]],{"a":2,"b":1}]'
    )


def test_subclasses_of_json_types_are_accepted():
    value = {"colour": Colour.RED, "ordered": OrderedDict(a=1)}

    assert serialization.find_non_json(value, "kwargs") is None
    assert serialization.normalize(value) == {"colour": 1, "ordered": {"a": 1}}


def test_tuples_become_lists_everywhere():
    assert serialization.normalize(((1, (2, 3)), {"a": ({"b": (4,)},)})) == [
        [1, [2, 3]],
        {"a": [{"b": [4]}]},
    ]


# Rejected values: the path of the bad value -------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("list"),
            st.lists(scalars, max_size=2),
            st.lists(scalars, max_size=2),
        ),
        st.tuples(st.just("dict"), keys, st.dictionaries(keys, scalars, max_size=2)),
    ),
    max_size=5,
)


@given(steps, st.sampled_from([object(), {1, 2}, b"x", Decimal("1"), date(2024, 1, 1)]))
def test_the_path_of_a_single_bad_value_is_reported(path_steps, bad):
    value: Any = bad
    path = ""
    for kind, first, second in reversed(path_steps):
        if kind == "list":
            value = [*first, value, *second]
            path = f"[{len(first)}]" + path
        else:
            container = {k: v for k, v in second.items() if k != first}
            container[first] = value
            value = container
            path = f"[{first!r}]" + path

    where, what = serialization.find_non_json(value, "args") or ("", "")

    assert where == "args" + path
    assert what == f"a {type(bad).__module__}.{type(bad).__qualname__}"


@pytest.mark.parametrize(
    ("value", "where", "what"),
    [
        (object(), "x", "a builtins.object"),
        ([1, Thing()], "x[1]", "a tests.unit.test_serialization.Thing"),
        ({"a": Thing.Inner()}, "x['a']", "a tests.unit.test_serialization.Thing.Inner"),
        ({"a": {"b": [0, [1, math.nan]]}}, "x['a']['b'][1][1]", "the float nan"),
        ([math.inf], "x[0]", "the float inf"),
        ({"it's": -math.inf}, 'x["it\'s"]', "the float -inf"),
        ({"a": {1: "x"}}, "x['a']", "a dict with the non-str key 1"),
        ({None: 1}, "x", "a dict with the non-str key None"),
        ({True: 1}, "x", "a dict with the non-str key True"),
        ([1, 2, (3, {4})], "x[2][1]", "a builtins.set"),
        ([frozenset()], "x[0]", "a builtins.frozenset"),
        ([range(3)], "x[0]", "a builtins.range"),
    ],
)
def test_reported_paths_and_descriptions(value, where, what):
    assert serialization.find_non_json(value, "x") == (where, what)


def test_the_first_bad_value_in_order_is_reported():
    assert serialization.find_non_json([1, object(), {2}], "args") == (
        "args[1]",
        "a builtins.object",
    )
    assert serialization.find_non_json({"a": {1}, "b": object()}, "kwargs") == (
        "kwargs['a']",
        "a builtins.set",
    )


def test_the_first_non_str_key_is_reported():
    assert serialization.find_non_json({1: "a", 2: "b"}, "x") == (
        "x",
        "a dict with the non-str key 1",
    )


def test_check_arguments_message():
    with pytest.raises(InvalidArguments) as info:
        serialization.check_arguments(
            "app.tasks.send", (1,), {"when": date(2024, 1, 2)}
        )

    assert str(info.value) == (
        "Argument kwargs['when'] of task 'app.tasks.send' is a datetime.date, which is "
        f"not JSON. Pass only JSON values ({HINT}), e.g. an ISO 8601 string for a date "
        "or a primary key for a model instance."
    )
    assert isinstance(info.value, TypeError)


def test_check_arguments_checks_args_before_kwargs():
    with pytest.raises(InvalidArguments, match=r"^Argument args\[0\] "):
        serialization.check_arguments("t", (object(),), {"k": object()})


def test_check_return_value_message():
    with pytest.raises(InvalidArguments) as info:
        serialization.check_return_value("app.tasks.report", {"rows": [1, {2}]})

    assert str(info.value) == (
        "Task 'app.tasks.report' returned a builtins.set at return_value['rows'][1], "
        f"which is not JSON. Return only JSON values ({HINT})."
    )


def test_check_return_value_accepts_none_and_normalises():
    assert serialization.check_return_value("t", None) is None
    assert serialization.check_return_value("t", (1, 2)) == [1, 2]


def test_dumps_and_canonical_refuse_nan():
    with pytest.raises(ValueError, match="Out of range float values"):
        serialization.dumps(math.nan)
    with pytest.raises(ValueError, match="Out of range float values"):
        serialization.canonical([math.inf])
