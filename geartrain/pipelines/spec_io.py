"""Convert pipeline definitions to and from plain data, for JSON and YAML files.

:func:`to_dict` writes every field, so the output documents itself.
:func:`from_dict` accepts any subset of optional keys, rejects unknown keys,
wrong types and arguments JSON cannot hold, and names the path of each bad
value, such as ``stages[1].steps[0].weight``. It only checks the shape of the data: call
:func:`geartrain.pipelines.spec.validate` for the pipeline rules.
"""

import copy
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from geartrain.pipelines.spec import InvalidPipeline, PipelineSpec, StageSpec, StepSpec

JSON_HINT = (
    "Use only strings, numbers, booleans, null, lists and mappings with string keys."
)


def to_dict(spec: PipelineSpec) -> dict[str, Any]:
    """Return ``spec`` as plain dicts, lists and scalars, ready for JSON or YAML."""
    return {
        "name": spec.name,
        "description": spec.description,
        "enabled": spec.enabled,
        "overlap": spec.overlap,
        "defaults": copy.deepcopy(dict(spec.defaults)),
        "cron": spec.cron,
        "cron_timezone": spec.cron_timezone,
        "stages": [
            {
                "name": stage.name,
                "depends_on": list(stage.depends_on),
                "steps": [_step_to_dict(step) for step in stage.steps],
            }
            for stage in spec.stages
        ],
    }


def _step_to_dict(step: StepSpec) -> dict[str, Any]:
    return {
        "name": step.name,
        "task": step.task,
        "kwargs": copy.deepcopy(dict(step.kwargs)),
        "queue": step.queue,
        "priority": step.priority,
        "weight": step.weight,
        "critical": step.critical,
        "enabled": step.enabled,
        "error_handler": step.error_handler,
        "max_attempts": step.max_attempts,
        "timeout": step.timeout,
        "prevent_overlap": step.prevent_overlap,
    }


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_flag(value: object) -> bool:
    return isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple)


def _is_names(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


def _is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)


def _or_null(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


def _keep(value: Any) -> Any:
    return value


def _float_or_null(value: Any) -> Any:
    return None if value is None else float(value)


def _json_copy(value: Any) -> Any:
    return copy.deepcopy(dict(value))


@dataclass(frozen=True, slots=True)
class _Field:
    expected: str
    check: Callable[[object], bool]
    convert: Callable[[Any], Any] = _keep


_TEXT = _Field("a string", _is_text)
_FLAG = _Field("true or false", _is_flag)
_JSON_MAPPING = _Field("a mapping", _is_mapping, _json_copy)
_LIST = _Field("a list", _is_list)

_PIPELINE_FIELDS = {
    "name": _TEXT,
    "description": _TEXT,
    "enabled": _FLAG,
    "overlap": _TEXT,
    "defaults": _JSON_MAPPING,
    "cron": _TEXT,
    "cron_timezone": _TEXT,
    "stages": _LIST,
}
_STAGE_FIELDS = {
    "name": _TEXT,
    "depends_on": _Field("a list of strings", _is_names, tuple),
    "steps": _LIST,
}
_STEP_FIELDS = {
    "name": _TEXT,
    "task": _TEXT,
    "kwargs": _JSON_MAPPING,
    "queue": _TEXT,
    "priority": _Field("an integer", _is_int),
    "weight": _Field("a number", _is_number, float),
    "critical": _FLAG,
    "enabled": _FLAG,
    "error_handler": _Field("a string or null", _or_null(_is_text)),
    "max_attempts": _Field("an integer or null", _or_null(_is_int)),
    "timeout": _Field("a number or null", _or_null(_is_number), _float_or_null),
    "prevent_overlap": _FLAG,
}


def _json_error(value: object, path: str) -> tuple[str, str] | None:
    """Find a part of ``value`` JSON cannot hold: ``(path, what is wrong)``."""
    if value is None or isinstance(value, str | int | float):
        return None
    if isinstance(value, list | tuple):
        items: Iterable[tuple[object, object]] = enumerate(value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return path, f"is a value of type {type(value).__name__}"
    for key, item in items:
        if isinstance(value, dict) and not isinstance(key, str):
            return path, f"has a key of type {type(key).__name__} ({key!r})"
        found = _json_error(
            item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        )
        if found is not None:
            return found
    return None


def _describe(value: object) -> str:
    """Name a value's JSON type, with the value itself when it is short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, int | float):
        kind = "integer" if isinstance(value, int) else "number"
        return f"the {kind} {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a value of type {type(value).__name__}"


def _read(
    data: object,
    path: str,
    fields: Mapping[str, _Field],
    required: Collection[str],
    problems: list[str],
) -> dict[str, Any] | None:
    """Return the well-typed fields of ``data``, adding a problem for each bad one."""
    if not isinstance(data, Mapping):
        problems.append(
            f"{f'The value at {path}' if path else 'The pipeline data'} is "
            f"{_describe(data)}, but it must be a mapping. "
            f"Write it as a mapping with the keys {', '.join(map(repr, fields))}."
        )
        return None
    where = f"The mapping at {path}" if path else "The pipeline data"
    problems += [
        f"{where} has unknown key {key!r}. "
        f"Remove it, or use one of {', '.join(map(repr, fields))}."
        for key in data
        if key not in fields
    ]
    values: dict[str, Any] = {}
    for key, rule in fields.items():
        at = f"{path}.{key}" if path else key
        if key not in data:
            if key in required:
                problems.append(f"{where} is missing the required key {key!r}. Add it.")
        elif not rule.check(data[key]):
            problems.append(
                f"The value at {at} is {_describe(data[key])}, but it must be "
                f"{rule.expected}. Change it to {rule.expected}."
            )
        elif rule is _JSON_MAPPING and (found := _json_error(dict(data[key]), at)):
            problems.append(
                f"The value at {found[0]} {found[1]}, which cannot be stored as "
                f"JSON. {JSON_HINT}"
            )
        else:
            values[key] = rule.convert(data[key])
    return values


def _step(data: object, path: str, problems: list[str]) -> StepSpec | None:
    values = _read(data, path, _STEP_FIELDS, ("name", "task"), problems)
    if values is None or not {"name", "task"} <= values.keys():
        return None
    return StepSpec(**values)


def _stage(data: object, path: str, problems: list[str]) -> StageSpec | None:
    values = _read(data, path, _STAGE_FIELDS, ("name",), problems)
    if values is None:
        return None
    steps = [
        _step(item, f"{path}.steps[{index}]", problems)
        for index, item in enumerate(values.get("steps", ()))
    ]
    values["steps"] = tuple(step for step in steps if step is not None)
    return StageSpec(**values) if "name" in values else None


def from_dict(data: Mapping[str, Any]) -> PipelineSpec:
    """Build a :class:`PipelineSpec` from plain data, such as :func:`to_dict` output.

    ``name`` and ``stages`` are required, as are each stage's ``name`` and each
    step's ``name`` and ``task``; other keys fall back to the field defaults.
    Raises :class:`InvalidPipeline` listing every missing key, unknown key and
    wrong type, each named by its path, for example ``stages[1].steps[0].weight``.
    """
    problems: list[str] = []
    values = _read(data, "", _PIPELINE_FIELDS, ("name", "stages"), problems)
    if values is not None:
        stages = [
            _stage(item, f"stages[{index}]", problems)
            for index, item in enumerate(values.get("stages", ()))
        ]
        values["stages"] = tuple(stage for stage in stages if stage is not None)
    if problems or values is None:
        raise InvalidPipeline(problems)
    return PipelineSpec(**values)
