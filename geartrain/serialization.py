"""JSON checks for task arguments and return values.

geartrain stores arguments and results as JSON and nothing else (never pickle). A value
is accepted only when it survives ``json.dumps``/``json.loads`` unchanged, apart from
tuples, which become lists as they do in Django's ``TaskResult``. Errors name the path
to
the first bad value, such as ``kwargs['when']`` or ``args[2][0]``.

Pure module: no database imports.
"""

from __future__ import annotations

import json
import math
from typing import Any

from geartrain.exceptions import InvalidArguments

JSON_TYPES_HINT = "str, int, float, bool, None, list, or dict with str keys"


def find_non_json(value: Any, path: str) -> tuple[str, str] | None:
    """Return ``(path, description)`` of the first non-JSON part of ``value``."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                return where, problem
            continue
        if isinstance(item, int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return where, f"the float {item!r}"
            continue
        if isinstance(item, list | tuple):
            stack.extend(
                (v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item)))
            )
            continue
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return where, f"a dict with the non-str key {key!r}"
            stack.extend((v, f"{where}[{k!r}]") for k, v in reversed(item.items()))
            continue
        return where, f"a {type(item).__module__}.{type(item).__qualname__}"
    return None


def _string_problem(text: str) -> str | None:
    # PostgreSQL's jsonb rejects NUL; PostgreSQL and MariaDB reject lone surrogates.
    if "\x00" in text:
        return "a string containing a NUL character (\\x00)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a string containing a lone surrogate, which is not valid Unicode"
    return None


def normalize(value: Any) -> Any:
    """Turn tuples into lists, recursively (the JSON round trip does the same)."""
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return value


def check_arguments(
    task_path: str, args: Any, kwargs: Any
) -> tuple[list[Any], dict[str, Any]]:
    """Validate and normalise a call's arguments.

    Raises:
        InvalidArguments: naming the path of the first value that is not JSON.
    """
    for value, root in ((list(args), "args"), (dict(kwargs), "kwargs")):
        bad = find_non_json(value, root)
        if bad:
            where, what = bad
            raise InvalidArguments(
                f"Argument {where} of task {task_path!r} is {what}, which is not JSON. "
                f"Pass only JSON values ({JSON_TYPES_HINT}), e.g. an ISO 8601 string "
                f"for a date or a primary key for a model instance."
            )
    return normalize(list(args)), normalize(dict(kwargs))


def check_return_value(task_path: str, value: Any) -> Any:
    """Validate and normalise a task's return value.

    Raises:
        InvalidArguments: naming the path of the first value that is not JSON.
    """
    bad = find_non_json(value, "return_value")
    if bad:
        where, what = bad
        raise InvalidArguments(
            f"Task {task_path!r} returned {what} at {where}, which is not JSON. "
            f"Return only JSON values ({JSON_TYPES_HINT})."
        )
    return normalize(value)


def dumps(value: Any) -> str:
    """Compact JSON text of an already checked value."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def canonical(value: Any) -> str:
    """Key-sorted JSON text, used to derive unique-job keys."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
