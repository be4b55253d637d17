"""Pipeline definitions as plain values, and the rules that make them valid.

A pipeline is a DAG of stages; a stage is a set of steps run in parallel; a step
is one configured call of a registered task. No Django imports: definitions can
be checked anywhere. :mod:`geartrain.pipelines.spec_io` converts to plain data.
"""

import graphlib
import inspect
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from geartrain.dag import all_cycles
from geartrain.scheduler import cron

type JSON = str | int | float | bool | list[JSON] | dict[str, JSON] | None

PRIORITY_MIN = -100
PRIORITY_MAX = 100
OVERLAP_CHOICES = ("forbid", "allow")

_Param = inspect.Parameter
_KEYWORD_KINDS = (_Param.POSITIONAL_OR_KEYWORD, _Param.KEYWORD_ONLY)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSpec:
    """One configured call of a registered task.

    ``task`` is the task's registered dotted path, ``kwargs`` its JSON keyword
    arguments, ``priority`` from -100 to 100 and ``weight`` (0 or more) the
    step's relative cost: :func:`heaviest_first` starts heavy steps first.
    """

    name: str
    task: str
    kwargs: Mapping[str, JSON] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    weight: float = 1.0
    critical: bool = True
    enabled: bool = True
    error_handler: str | None = None
    max_attempts: int | None = None
    timeout: float | None = None
    prevent_overlap: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StageSpec:
    """A named set of steps run in parallel after the stages in ``depends_on``."""

    name: str
    steps: tuple[StepSpec, ...] = ()
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineSpec:
    """A named DAG of stages.

    ``overlap`` is one of :data:`OVERLAP_CHOICES`. ``defaults`` are keyword
    arguments shared by the steps: they can give a task's required arguments.
    """

    name: str
    stages: tuple[StageSpec, ...]
    description: str = ""
    enabled: bool = True
    overlap: str = "forbid"
    defaults: Mapping[str, JSON] = field(default_factory=dict)
    cron: str = ""
    """Launch on this cron expression (a schedule is kept from it); "" for none."""
    cron_timezone: str = "UTC"
    """IANA time zone the ``cron`` expression is read in."""


class InvalidPipeline(ValueError):
    """A pipeline definition breaks rules; ``problems`` lists each, in order.

    Each problem names the bad value, states the rule and says how to fix it.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        """Keep the problems; pickling re-creates the exception from them."""
        self.problems = list(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        """Return the problems, one per line."""
        return "\n".join(self.problems)


@dataclass(frozen=True, slots=True)
class _Parameters:
    """What a task's signature lets a step pass by keyword."""

    accepted: list[str]
    required: list[str]
    positional_only: list[str]
    var_keyword: bool
    takes_context: bool

    def accepts(self, name: str) -> bool:
        if name in self.accepted:
            return True
        return self.var_keyword and not (self.takes_context and name == "context")


def _parameters(signature: inspect.Signature) -> _Parameters:
    params = list(signature.parameters.values())
    takes_context = bool(params) and params[0].name == "context"
    if takes_context:
        params = params[1:]
    required = [p for p in params if p.default is _Param.empty]
    return _Parameters(
        accepted=[p.name for p in params if p.kind in _KEYWORD_KINDS],
        required=[p.name for p in required if p.kind in _KEYWORD_KINDS],
        positional_only=[p.name for p in required if p.kind is _Param.POSITIONAL_ONLY],
        var_keyword=any(p.kind is _Param.VAR_KEYWORD for p in params),
        takes_context=takes_context,
    )


def merge_arguments(
    signature: inspect.Signature,
    static: Mapping[str, Any],
    runtime: Mapping[str, Any],
) -> dict[str, Any]:
    """Combine a step's static arguments with arguments given at run time.

    Runtime values override static ones, but only for parameters the function
    accepts by keyword (every key when it takes ``**kwargs``); static arguments
    are kept as they are. A leading ``context`` parameter is never filled.
    """
    params = _parameters(signature)
    merged = dict(static)
    merged.update((k, v) for k, v in runtime.items() if params.accepts(k))
    return merged


def heaviest_first(steps: Sequence[StepSpec]) -> list[StepSpec]:
    """Return the enabled steps by weight, heaviest first, ties by name."""
    return sorted((s for s in steps if s.enabled), key=lambda s: (-s.weight, s.name))


def _is_blank(name: str) -> bool:
    return not name.strip()


def _name_problems(names: Sequence[str], kind: str, owner: str, name: str) -> list[str]:
    """Report empty and repeated names of a pipeline's stages or a stage's steps."""
    problems = [
        f"The {kind} at index {index} of {owner} {name!r} has an empty name. "
        f"Give each {kind} a name."
        for index, item in enumerate(names)
        if _is_blank(item)
    ]
    counts = Counter(item for item in names if not _is_blank(item))
    problems += [
        f"{kind.capitalize()} name {item!r} is used "
        f"{'twice' if count == 2 else f'{count} times'} in {owner} {name!r}. "
        f"Give each {kind} of a {owner} its own name."
        for item, count in counts.items()
        if count > 1
    ]
    return problems


def _pipeline_problems(spec: PipelineSpec) -> list[str]:
    problems = []
    if _is_blank(spec.name):
        problems.append("The pipeline name is empty. Give the pipeline a name.")
    if spec.overlap not in OVERLAP_CHOICES:
        choices = " or ".join(map(repr, OVERLAP_CHOICES))
        problems.append(
            f"Pipeline {spec.name!r} has overlap {spec.overlap!r}, which is not an "
            f"overlap policy. Use {choices}."
        )
    if spec.cron:
        try:
            cron.CronExpression.parse(spec.cron)
        except cron.InvalidCronExpression as exc:
            problems.append(f"Pipeline {spec.name!r}: {exc}")
    try:
        cron.zone(spec.cron_timezone)
    except cron.InvalidTimeZone as exc:
        problems.append(f"Pipeline {spec.name!r}: {exc}")
    return problems


def _graph_problems(spec: PipelineSpec) -> list[str]:
    """Check stage names and dependencies: unknown, self, cyclic."""
    pipeline = spec.name
    names = [stage.name for stage in spec.stages]
    problems = _name_problems(names, "stage", "pipeline", pipeline)
    known = set(names)
    edges: dict[str, set[str]] = {}
    for stage in spec.stages:
        for dep in stage.depends_on:
            if dep == stage.name:
                problems.append(
                    f"Stage {dep!r} depends on itself. "
                    f"Remove {dep!r} from its own dependencies."
                )
            elif dep not in known:
                problems.append(
                    f"Stage {stage.name!r} depends on {dep!r}, which is not a stage "
                    f"of pipeline {pipeline!r}. Depend only on stages of the same "
                    "pipeline."
                )
            else:
                edges.setdefault(stage.name, set()).add(dep)
    problems += [
        f"Stages {' -> '.join(map(repr, cycle))} form a cycle in pipeline "
        f"{pipeline!r}. Remove one of these dependencies."
        for cycle in all_cycles(edges)
    ]
    return problems


def _step_value_problems(step: StepSpec, queues: Collection[str] | None) -> list[str]:
    """Check one step's own fields."""
    name, problems = step.name, []
    if _is_blank(step.task):
        problems.append(
            f"Step {name!r} has an empty task. "
            "Set it to the dotted path of a registered task."
        )
    if not PRIORITY_MIN <= step.priority <= PRIORITY_MAX:
        problems.append(
            f"Step {name!r} has priority {step.priority}, which is outside "
            f"{PRIORITY_MIN}..{PRIORITY_MAX}. "
            f"Use a priority from {PRIORITY_MIN} to {PRIORITY_MAX}."
        )
    if not (math.isfinite(step.weight) and step.weight >= 0):
        why = "negative" if math.isfinite(step.weight) else "not a finite number"
        problems.append(
            f"Step {name!r} has weight {step.weight}, which is {why}. "
            "Use a weight of 0 or more."
        )
    if step.max_attempts is not None and step.max_attempts < 1:
        problems.append(
            f"Step {name!r} has max_attempts {step.max_attempts}, which is less "
            "than 1. Use 1 or more, or leave it unset."
        )
    timeout = step.timeout
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        problems.append(
            f"Step {name!r} has timeout {timeout}, which is not a positive "
            "number of seconds. Use a timeout above 0, or leave it unset."
        )
    if _is_blank(step.queue):
        problems.append(
            f"Step {name!r} has an empty queue name. "
            "Use 'default' or the name of a configured queue."
        )
    elif queues is not None and step.queue not in queues:
        configured = ", ".join(map(repr, sorted(queues))) or "(none)"
        problems.append(
            f"Step {name!r} uses queue {step.queue!r}, which is not configured. "
            f"Use one of the configured queues: {configured}."
        )
    return problems


def _signature_problems(
    step: StepSpec,
    signatures: Mapping[str, inspect.Signature],
    defaults: Mapping[str, JSON],
) -> list[str]:
    """Check a step's arguments against its task's signature."""
    name, task = step.name, step.task
    signature = signatures.get(task)
    if signature is None:
        if _is_blank(task):
            return []  # reported by _step_value_problems
        return [
            f"Step {name!r} uses task {task!r}, which is not registered. "
            "Register the task, or pick one of the registered tasks."
        ]
    params = _parameters(signature)
    accepted = (
        f"Accepted arguments: {', '.join(map(repr, params.accepted))}."
        if params.accepted
        else "The task accepts no arguments."
    )
    problems = [
        f"Step {name!r} passes argument {arg!r} that task {task!r} does not "
        f"accept. {accepted}"
        for arg in step.kwargs
        if not params.accepts(arg)
    ]
    problems += [
        f"Step {name!r} does not give required argument {arg!r} of task "
        f"{task!r}. Add it to the step's arguments or to the pipeline's default "
        "arguments."
        for arg in params.required
        if arg not in step.kwargs and arg not in defaults
    ]
    problems += [
        f"Task {task!r} of step {name!r} has required positional-only parameter "
        f"{arg!r}, which a step cannot give by name. Let the parameter be passed "
        "by keyword, or give it a default."
        for arg in params.positional_only
    ]
    return problems


def _stage_step_problems(
    stage: StageSpec,
    defaults: Mapping[str, JSON],
    signatures: Mapping[str, inspect.Signature] | None,
    queues: Collection[str] | None,
) -> list[str]:
    names = [step.name for step in stage.steps]
    problems = _name_problems(names, "step", "stage", stage.name)
    for step in stage.steps:
        problems += _step_value_problems(step, queues)
        if signatures is not None:
            problems += _signature_problems(step, signatures, defaults)
    return problems


def validate(
    spec: PipelineSpec,
    *,
    signatures: Mapping[str, inspect.Signature] | None = None,
    queues: Collection[str] | None = None,
) -> None:
    """Raise :class:`InvalidPipeline` listing every problem of ``spec``.

    Always checks names, dependencies (unknown, on itself, cycles), the overlap
    policy and each step's priority, weight, attempts, timeout and queue name.
    With ``signatures`` (task path -> signature), also checks that each step's
    task is registered, accepts the step's arguments and gets every required
    argument from the step or the pipeline's ``defaults``. With ``queues``,
    also checks that each step's queue is one of them. Disabled steps are
    checked too.
    """
    problems = _pipeline_problems(spec) + _graph_problems(spec)
    for stage in spec.stages:
        problems += _stage_step_problems(stage, spec.defaults, signatures, queues)
    if problems:
        raise InvalidPipeline(problems)


def topological_stages(spec: PipelineSpec) -> list[list[str]]:
    """Return stage names in layers: each stage after all its dependencies.

    The first layer holds the stages without dependencies; each further layer
    holds the stages whose dependencies are all in earlier layers. Names are
    sorted within a layer. Raises :class:`InvalidPipeline` if stage names or
    dependencies are invalid (duplicates, unknown names, cycles).
    """
    problems = _graph_problems(spec)
    if problems:
        raise InvalidPipeline(problems)
    sorter = graphlib.TopologicalSorter({s.name: s.depends_on for s in spec.stages})
    sorter.prepare()
    layers = []
    while sorter.is_active():
        layer = sorted(sorter.get_ready())
        sorter.done(*layer)
        layers.append(layer)
    return layers
