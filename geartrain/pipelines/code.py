"""Pipelines declared in code, and pipeline documents (JSON or YAML files).

An installed app declares pipelines in its ``pipelines`` module: every
:class:`~geartrain.pipelines.spec.PipelineSpec` at the module's top level is
collected, and so is every one in a top-level ``PIPELINES`` list::

    # myapp/pipelines.py
    from geartrain.pipelines.spec import PipelineSpec, StageSpec, StepSpec

    nightly = PipelineSpec(
        name="nightly",
        stages=(StageSpec(name="extract", steps=(StepSpec(name="fetch", task=...),)),),
    )

:func:`discover` finds them; ``geartrain sync`` writes them to the database with
:func:`geartrain.pipelines.sync.sync`, after :func:`validate_all` checked them
(pipeline rules, registered tasks, configured queues, column limits).
:func:`dump_document` and :func:`load_document` write and read the
``{"pipelines": [...]}`` documents of ``geartrain export`` and ``geartrain import``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from types import ModuleType
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from geartrain.conf import configured_queues
from geartrain.pipelines import spec as specs
from geartrain.pipelines import spec_io
from geartrain.pipelines.launching import signatures
from geartrain.pipelines.spec import InvalidPipeline, PipelineSpec
from geartrain.registry import import_if_present

MODULE = "pipelines"
FORMATS = ("json", "yaml")
MAX_WEIGHT = Decimal("9999999.99999")  # Step.weight: 12 digits, 5 decimal places
MAX_ATTEMPTS = 2147483647  # PositiveIntegerField on every supported database


def specs_of(module: ModuleType) -> list[PipelineSpec]:
    """The pipelines ``module`` declares: top-level specs, then its ``PIPELINES``."""
    found = [v for v in vars(module).values() if isinstance(v, PipelineSpec)]
    listed = getattr(module, "PIPELINES", ())
    if not isinstance(listed, list | tuple):
        raise ImproperlyConfigured(
            f"PIPELINES in module {module.__name__!r} is a "
            f"{type(listed).__name__}, not a list. Make it a list of PipelineSpec."
        )
    for index, item in enumerate(listed):
        if not isinstance(item, PipelineSpec):
            raise ImproperlyConfigured(
                f"PIPELINES[{index}] in module {module.__name__!r} is a "
                f"{type(item).__name__}, not a PipelineSpec. List only PipelineSpec "
                f"objects."
            )
        found.append(item)
    unique: dict[int, PipelineSpec] = {id(spec): spec for spec in found}
    return list(unique.values())


def discover(app_names: Iterable[str] | None = None) -> list[PipelineSpec]:
    """Import each installed app's ``pipelines`` module; return its pipelines.

    ``app_names`` defaults to every installed app. An app without a ``pipelines``
    module is skipped; an ImportError raised inside one propagates. Two different
    pipelines with the same name are an error that names both modules.
    """
    if app_names is None:
        app_names = [config.name for config in apps.get_app_configs()]
    seen: dict[str, tuple[str, PipelineSpec]] = {}
    for app in app_names:
        module = import_if_present(f"{app}.{MODULE}")
        if module is None:
            continue
        for spec in specs_of(module):
            known = seen.get(spec.name)
            if known is not None and known[1] is not spec:
                raise ImproperlyConfigured(
                    f"Pipeline {spec.name!r} is declared twice: in module "
                    f"{known[0]!r} and in module {module.__name__!r}. Give one of "
                    f"them another name."
                )
            seen[spec.name] = (module.__name__, spec)
    return [spec for _, spec in seen.values()]


def format_of(path: str, given: str | None = None) -> str:
    """The document format: ``given``, else ``yaml`` for .yaml/.yml, else ``json``."""
    if given:
        return given
    return "yaml" if path.lower().endswith((".yaml", ".yml")) else "json"


def _yaml(action: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ImproperlyConfigured(
            f"PyYAML is not installed. Install django-geartrain[yaml] to {action} YAML."
        ) from None
    return yaml


def dump_document(specs: Sequence[PipelineSpec], fmt: str = "json") -> str:
    """``{"pipelines": [...]}`` as JSON (indented) or YAML text."""
    data = {"pipelines": [spec_io.to_dict(spec) for spec in specs]}
    if fmt == "yaml":
        text: str = _yaml("write").safe_dump(data, sort_keys=False, allow_unicode=True)
        return text
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _parse(text: str, fmt: str, source: str) -> object:
    if fmt == "yaml":
        yaml = _yaml("read")
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1} column {mark.column + 1}"
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise InvalidPipeline(
                [
                    f"{source} is not valid YAML{where}: {problem}. Fix the file, "
                    f"or write it again with `geartrain export --format yaml`."
                ]
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPipeline(
            [
                f"{source} is not valid JSON at line {exc.lineno} column {exc.colno}: "
                f"{exc.msg}. Fix the file, or write it again with `geartrain export`."
            ]
        ) from None


def load_document(text: str, fmt: str, source: str) -> list[PipelineSpec]:
    """Read a ``{"pipelines": [...]}`` document; problems name their path.

    ``source`` names the document in messages (such as ``File 'etl.json'``).
    Raises :class:`InvalidPipeline` listing every problem found.
    """
    data = _parse(text, fmt, source)
    shape = (
        f"{source} must hold a mapping with the single key 'pipelines', a list of "
        f"pipelines, as `geartrain export` writes it."
    )
    if not isinstance(data, dict) or set(data) != {"pipelines"}:
        raise InvalidPipeline([shape])
    items = data["pipelines"]
    if not isinstance(items, list):
        raise InvalidPipeline([shape])
    specs: list[PipelineSpec] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            specs.append(spec_io.from_dict(item))
        except InvalidPipeline as exc:
            problems += [f"In pipelines[{index}]: {p}" for p in exc.problems]
    if problems:
        raise InvalidPipeline(problems)
    return specs


# Checks before storing ----------------------------------------------------------------


def _too_long(value: str | None, limit: int, what: str) -> list[str]:
    if value is None or len(value) <= limit:
        return []
    return [
        f"{what} is {len(value)} characters long; the database stores at most "
        f"{limit}. Shorten it."
    ]


def _storage_problems(spec: PipelineSpec) -> list[str]:
    """Values the database columns cannot hold."""
    problems = _too_long(spec.name, 200, f"The name of pipeline {spec.name[:40]!r}")
    for stage in spec.stages:
        problems += _too_long(stage.name, 200, f"The name of stage {stage.name[:40]!r}")
        for step in stage.steps:
            name = step.name[:40]
            problems += _too_long(step.name, 200, f"The name of step {name!r}")
            problems += _too_long(step.task, 255, f"The task of step {name!r}")
            problems += _too_long(step.queue, 64, f"The queue of step {name!r}")
            problems += _too_long(
                step.error_handler, 255, f"The error handler of step {name!r}"
            )
            if isinstance(step.weight, int | float) and step.weight > MAX_WEIGHT:
                problems.append(
                    f"Step {step.name!r} has weight {step.weight}, which is more than "
                    f"{MAX_WEIGHT}, the largest weight the database stores. Use a "
                    f"smaller weight."
                )
            if isinstance(step.max_attempts, int) and step.max_attempts > MAX_ATTEMPTS:
                problems.append(
                    f"Step {step.name!r} has max_attempts {step.max_attempts}, which "
                    f"is more than {MAX_ATTEMPTS}. Use a smaller number."
                )
    return problems


def check(
    spec: PipelineSpec,
    *,
    sigs: Mapping[str, Any] | None = None,
    queues: Collection[str] | None = None,
) -> list[str]:
    """Every problem of ``spec``: shape, JSON values, pipeline rules, column limits."""
    try:
        spec_io.from_dict(spec_io.to_dict(spec))
    except InvalidPipeline as exc:
        return exc.problems  # wrong types: the rules below would only stumble
    except (TypeError, ValueError) as exc:
        return [
            f"The definition cannot be read as data ({exc}). Give stages and steps "
            f"as tuples of StageSpec and StepSpec, and arguments as mappings."
        ]
    problems = _storage_problems(spec)
    try:
        specs.validate(spec, signatures=sigs, queues=queues)
    except InvalidPipeline as exc:
        problems = exc.problems + problems
    return problems


def validate_all(given: Sequence[PipelineSpec]) -> None:
    """Raise :class:`InvalidPipeline` with every problem of every spec, by pipeline."""
    sigs, queues = signatures(), configured_queues()
    problems: list[str] = []
    seen: set[str] = set()
    for spec in given:
        if spec.name in seen:
            problems.append(
                f"Pipeline {spec.name!r} is given twice. Give each pipeline its own "
                f"name."
            )
        seen.add(spec.name)
        problems += [
            f"Pipeline {spec.name!r}: {p}"
            for p in check(spec, sigs=sigs, queues=queues)
        ]
    if problems:
        raise InvalidPipeline(problems)
