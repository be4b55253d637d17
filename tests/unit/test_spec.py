"""Pipeline definitions: validation rules, graph helpers and plain-data round trips.

Pure Python, no Django: run with ``pytest tests/unit/test_spec.py -p no:django``.
"""

import datetime
import graphlib
import inspect
import itertools
import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geartrain.dag import find_cycle
from geartrain.pipelines.spec import (
    InvalidPipeline,
    PipelineSpec,
    StageSpec,
    StepSpec,
    heaviest_first,
    merge_arguments,
    topological_stages,
    validate,
)
from geartrain.pipelines.spec_io import from_dict, to_dict

# --- helpers -----------------------------------------------------------------


def stage(name: str, *depends_on: str, steps: tuple[StepSpec, ...] = ()) -> StageSpec:
    return StageSpec(name=name, steps=steps, depends_on=depends_on)


def pipeline(*stages: StageSpec, name: str = "etl", **options: Any) -> PipelineSpec:
    return PipelineSpec(name=name, stages=stages, **options)


def one_step(step: StepSpec, **options: Any) -> PipelineSpec:
    return pipeline(stage("load", steps=(step,)), **options)


def problems_of(spec: PipelineSpec, **options: Any) -> list[str]:
    with pytest.raises(InvalidPipeline) as caught:
        validate(spec, **options)
    return caught.value.problems


def io_problems(data: Any) -> list[str]:
    with pytest.raises(InvalidPipeline) as caught:
        from_dict(data)
    return caught.value.problems


def mail(to: str, subject: str) -> None:
    """A task with two required arguments."""


def mail_with_context(context: object, to: str, subject: str = "") -> None:
    """A task that takes the task context first."""


def flexible(to: str, **extra: object) -> None:
    """A task that accepts any keyword argument."""


def no_arguments() -> None:
    """A task without arguments."""


def positional(to: str, /) -> None:
    """A task whose argument cannot be passed by keyword."""


SIGNATURES = {
    f"app.tasks.{function.__name__}": inspect.signature(function)
    for function in (mail, mail_with_context, flexible, no_arguments, positional)
}


def send(task: str = "app.tasks.mail", **kwargs: Any) -> StepSpec:
    return StepSpec(name="send", task=task, kwargs=kwargs)


# --- valid pipelines -----------------------------------------------------------


def test_diamond_is_valid_and_layered() -> None:
    spec = pipeline(stage("d", "b", "c"), stage("c", "a"), stage("b", "a"), stage("a"))
    validate(spec)
    assert topological_stages(spec) == [["a"], ["b", "c"], ["d"]]


def test_defaults_of_the_value_objects() -> None:
    step = StepSpec(name="send", task="app.tasks.mail")
    assert (step.queue, step.priority, step.weight) == ("default", 0, 1.0)
    assert (step.critical, step.enabled, dict(step.kwargs)) == (True, True, {})
    assert (step.error_handler, step.max_attempts, step.timeout) == (None, None, None)
    spec = pipeline()
    assert (spec.overlap, spec.enabled, spec.description) == ("forbid", True, "")
    with pytest.raises(AttributeError):
        step.name = "other"  # type: ignore[misc]


def test_full_step_within_limits_is_valid() -> None:
    step = StepSpec(
        name="send",
        task="app.tasks.mail",
        kwargs={"to": "a@example.com", "subject": "hi"},
        queue="mail",
        priority=-100,
        weight=0,
        max_attempts=1,
        timeout=0.5,
        error_handler="app.tasks.alert",
    )
    validate(one_step(step, overlap="allow"), signatures=SIGNATURES, queues={"mail"})
    validate(one_step(StepSpec(name="s", task="t", priority=100)))


def test_importing_spec_does_not_import_django() -> None:
    code = (
        "import sys, geartrain.pipelines.spec, geartrain.pipelines.spec_io; "
        "sys.exit(any(m.split('.')[0] == 'django' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- stage graph ---------------------------------------------------------------


def test_dependency_on_a_stage_of_another_pipeline_is_rejected() -> None:
    extract = pipeline(stage("extract"), name="etl")
    validate(extract)
    report = pipeline(stage("load", "extract"), name="report")
    assert problems_of(report) == [
        "Stage 'load' depends on 'extract', which is not a stage of pipeline "
        "'report'. Depend only on stages of the same pipeline."
    ]


def test_unknown_dependency_message() -> None:
    spec = pipeline(stage("extract"), stage("load", "extract2"))
    assert problems_of(spec) == [
        "Stage 'load' depends on 'extract2', which is not a stage of pipeline 'etl'. "
        "Depend only on stages of the same pipeline."
    ]


def test_cycle_is_rejected_with_its_path() -> None:
    spec = pipeline(stage("a", "b"), stage("b", "a"), stage("c", "a"))
    expected = [
        "Stages 'a' -> 'b' -> 'a' form a cycle in pipeline 'etl'. "
        "Remove one of these dependencies."
    ]
    assert problems_of(spec) == expected
    with pytest.raises(InvalidPipeline) as caught:
        topological_stages(spec)
    assert caught.value.problems == expected


def test_longer_cycle_and_disjoint_cycles_are_all_reported() -> None:
    spec = pipeline(
        stage("x", "z"),
        stage("y", "x"),
        stage("z", "y"),
        stage("p", "q"),
        stage("q", "p"),
    )
    assert problems_of(spec) == [
        "Stages 'p' -> 'q' -> 'p' form a cycle in pipeline 'etl'. "
        "Remove one of these dependencies.",
        "Stages 'x' -> 'z' -> 'y' -> 'x' form a cycle in pipeline 'etl'. "
        "Remove one of these dependencies.",
    ]


def test_stage_depending_on_itself() -> None:
    assert problems_of(pipeline(stage("load", "load"))) == [
        "Stage 'load' depends on itself. Remove 'load' from its own dependencies."
    ]


def test_duplicate_and_empty_stage_names() -> None:
    spec = pipeline(stage("load"), stage(" "), stage("load"), stage("x"), stage("x"))
    spec = pipeline(*spec.stages, stage("x"))
    assert problems_of(spec) == [
        "The stage at index 1 of pipeline 'etl' has an empty name. "
        "Give each stage a name.",
        "Stage name 'load' is used twice in pipeline 'etl'. "
        "Give each stage of a pipeline its own name.",
        "Stage name 'x' is used 3 times in pipeline 'etl'. "
        "Give each stage of a pipeline its own name.",
    ]


def test_pipeline_name_and_overlap() -> None:
    assert problems_of(pipeline(stage("a"), name="", overlap="sometimes")) == [
        "The pipeline name is empty. Give the pipeline a name.",
        "Pipeline '' has overlap 'sometimes', which is not an overlap policy. "
        "Use 'forbid' or 'allow'.",
    ]


def test_topological_stages_rejects_unknown_dependencies() -> None:
    with pytest.raises(InvalidPipeline, match="not a stage of pipeline"):
        topological_stages(pipeline(stage("a", "nope")))


# --- steps -----------------------------------------------------------------------


def test_duplicate_and_empty_step_names() -> None:
    steps = (
        StepSpec(name="", task="t"),
        StepSpec(name="x", task="t"),
        StepSpec(name="x", task="t"),
    )
    assert problems_of(pipeline(stage("load", steps=steps))) == [
        "The step at index 0 of stage 'load' has an empty name. Give each step a name.",
        "Step name 'x' is used twice in stage 'load'. "
        "Give each step of a stage its own name.",
    ]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            StepSpec(name="send", task="t", priority=101),
            "Step 'send' has priority 101, which is outside -100..100. "
            "Use a priority from -100 to 100.",
        ),
        (
            StepSpec(name="send", task="t", priority=-101),
            "Step 'send' has priority -101, which is outside -100..100. "
            "Use a priority from -100 to 100.",
        ),
        (
            StepSpec(name="send", task="t", weight=-0.5),
            "Step 'send' has weight -0.5, which is negative. "
            "Use a weight of 0 or more.",
        ),
        (
            StepSpec(name="send", task="t", weight=float("nan")),
            "Step 'send' has weight nan, which is not a finite number. "
            "Use a weight of 0 or more.",
        ),
        (
            StepSpec(name="send", task=" "),
            "Step 'send' has an empty task. "
            "Set it to the dotted path of a registered task.",
        ),
        (
            StepSpec(name="send", task="t", max_attempts=0),
            "Step 'send' has max_attempts 0, which is less than 1. "
            "Use 1 or more, or leave it unset.",
        ),
        (
            StepSpec(name="send", task="t", timeout=0),
            "Step 'send' has timeout 0, which is not a positive number of seconds. "
            "Use a timeout above 0, or leave it unset.",
        ),
        (
            StepSpec(name="send", task="t", queue=""),
            "Step 'send' has an empty queue name. "
            "Use 'default' or the name of a configured queue.",
        ),
    ],
)
def test_step_value_rules(step: StepSpec, message: str) -> None:
    assert problems_of(one_step(step)) == [message]


def test_queue_must_be_configured_when_queues_are_given() -> None:
    spec = one_step(StepSpec(name="send", task="t", queue="fast"))
    validate(spec)
    assert problems_of(spec, queues=["slow", "default"]) == [
        "Step 'send' uses queue 'fast', which is not configured. "
        "Use one of the configured queues: 'default', 'slow'."
    ]


def test_multiple_problems_are_reported_together() -> None:
    spec = pipeline(
        stage("extract", steps=(StepSpec(name="get", task="t", priority=500),)),
        stage("load", "extract2", steps=(send(to="x", subject="y", colour="red"),)),
        overlap="never",
    )
    problems = problems_of(spec, signatures=SIGNATURES)
    assert problems == [
        "Pipeline 'etl' has overlap 'never', which is not an overlap policy. "
        "Use 'forbid' or 'allow'.",
        "Stage 'load' depends on 'extract2', which is not a stage of pipeline 'etl'. "
        "Depend only on stages of the same pipeline.",
        "Step 'get' has priority 500, which is outside -100..100. "
        "Use a priority from -100 to 100.",
        "Step 'get' uses task 't', which is not registered. "
        "Register the task, or pick one of the registered tasks.",
        "Step 'send' passes argument 'colour' that task 'app.tasks.mail' does not "
        "accept. Accepted arguments: 'to', 'subject'.",
    ]


def test_invalid_pipeline_str_joins_and_pickles() -> None:
    error = InvalidPipeline(["First problem.", "Second problem."])
    assert isinstance(error, ValueError)
    assert str(error) == "First problem.\nSecond problem."
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own data
    assert copy.problems == error.problems
    assert str(copy) == str(error)


# --- signatures ------------------------------------------------------------------


def test_unregistered_task() -> None:
    spec = one_step(send(task="app.tasks.nope"))
    validate(spec)  # without signatures, tasks are not checked
    assert problems_of(spec, signatures=SIGNATURES) == [
        "Step 'send' uses task 'app.tasks.nope', which is not registered. "
        "Register the task, or pick one of the registered tasks."
    ]


def test_unknown_argument_and_missing_required_argument() -> None:
    spec = one_step(send(subject="hi", colour="red"))
    assert problems_of(spec, signatures=SIGNATURES) == [
        "Step 'send' passes argument 'colour' that task 'app.tasks.mail' does not "
        "accept. Accepted arguments: 'to', 'subject'.",
        "Step 'send' does not give required argument 'to' of task 'app.tasks.mail'. "
        "Add it to the step's arguments or to the pipeline's default arguments.",
    ]


def test_pipeline_defaults_give_required_arguments() -> None:
    spec = one_step(send(subject="hi"), defaults={"to": "ops@example.com"})
    validate(spec, signatures=SIGNATURES)


def test_var_keyword_task_accepts_any_argument() -> None:
    spec = one_step(send("app.tasks.flexible", to="x", colour="red", size=3))
    validate(spec, signatures=SIGNATURES)
    assert problems_of(one_step(send("app.tasks.flexible")), signatures=SIGNATURES) == [
        "Step 'send' does not give required argument 'to' of task "
        "'app.tasks.flexible'. Add it to the step's arguments or to the pipeline's "
        "default arguments."
    ]


def test_leading_context_parameter_is_neither_required_nor_accepted() -> None:
    task = "app.tasks.mail_with_context"
    validate(one_step(send(task, to="x")), signatures=SIGNATURES)
    assert problems_of(
        one_step(send(task, to="x", context=1)), signatures=SIGNATURES
    ) == [
        "Step 'send' passes argument 'context' that task "
        "'app.tasks.mail_with_context' does not accept. "
        "Accepted arguments: 'to', 'subject'."
    ]


def test_task_without_arguments() -> None:
    spec = one_step(send("app.tasks.no_arguments", x=1))
    assert problems_of(spec, signatures=SIGNATURES) == [
        "Step 'send' passes argument 'x' that task 'app.tasks.no_arguments' does "
        "not accept. The task accepts no arguments."
    ]


def test_required_positional_only_parameter() -> None:
    spec = one_step(send("app.tasks.positional"))
    assert problems_of(spec, signatures=SIGNATURES) == [
        "Task 'app.tasks.positional' of step 'send' has required positional-only "
        "parameter 'to', which a step cannot give by name. Let the parameter be "
        "passed by keyword, or give it a default."
    ]


def test_disabled_steps_are_checked_too() -> None:
    step = StepSpec(name="send", task="app.tasks.nope", enabled=False)
    assert len(problems_of(one_step(step), signatures=SIGNATURES)) == 1


# --- merge_arguments and heaviest_first ----------------------------------------


def signature_of(function: Callable[..., object]) -> inspect.Signature:
    return inspect.signature(function)


def test_merge_arguments_example() -> None:
    def f(a: int, b: int, c: int) -> None: ...

    merged = merge_arguments(
        signature_of(f), {"a": 1, "b": 2}, {"a": 10, "c": 3, "z": 9}
    )
    assert merged == {"a": 10, "b": 2, "c": 3}


def test_merge_arguments_keeps_static_and_takes_all_with_var_keyword() -> None:
    def f(a: int, **rest: object) -> None: ...

    merged = merge_arguments(signature_of(f), {"zz": 0}, {"a": 1, "z": 9})
    assert merged == {"zz": 0, "a": 1, "z": 9}


def test_merge_arguments_never_fills_context() -> None:
    def f(context: object, a: int, **rest: object) -> None: ...

    merged = merge_arguments(signature_of(f), {}, {"context": 1, "a": 2})
    assert merged == {"a": 2}


def test_heaviest_first() -> None:
    steps = [
        StepSpec(name="one", task="t", weight=1),
        StepSpec(name="five", task="t", weight=5),
        StepSpec(name="three", task="t", weight=3),
        StepSpec(name="off", task="t", weight=9, enabled=False),
        StepSpec(name="also-three", task="t", weight=3),
    ]
    assert [s.name for s in heaviest_first(steps)] == [
        "five",
        "also-three",
        "three",
        "one",
    ]


# --- find_cycle ------------------------------------------------------------------


def test_find_cycle_examples() -> None:
    assert find_cycle({}) is None
    assert find_cycle({"a": ["b"], "b": []}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    assert find_cycle({"b": ["a"], "a": ["c"], "c": ["b"]}) == ["a", "c", "b", "a"]
    assert find_cycle({"a": ["missing"]}) is None


def test_find_cycle_handles_long_chains_without_recursion() -> None:
    edges = {str(i): [str(i + 1)] for i in range(5000)}
    assert find_cycle(edges) is None
    edges["5000"] = ["0"]
    cycle = find_cycle(edges)
    assert cycle is not None
    assert len(cycle) == 5002


def assert_valid_cycle(cycle: list[str], edges: dict[str, set[str]]) -> None:
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle)) == len(cycle) - 1
    for source, target in itertools.pairwise(cycle):
        assert target in edges.get(source, set())


# --- properties --------------------------------------------------------------------

names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8
).filter(str.strip)


@st.composite
def acyclic_edges(draw: st.DrawFn) -> tuple[list[str], dict[str, set[str]]]:
    """Stage names and dependencies that only point to earlier stages."""
    stage_names = draw(st.lists(names, min_size=1, max_size=10, unique=True))
    edges = {
        name: set(draw(st.lists(st.sampled_from(stage_names[:index]))) if index else [])
        for index, name in enumerate(stage_names)
    }
    return stage_names, edges


def spec_from_edges(stage_names: list[str], edges: dict[str, set[str]]) -> PipelineSpec:
    return pipeline(*(stage(n, *sorted(edges[n])) for n in stage_names))


@given(acyclic_edges())
def test_acyclic_graphs_validate_and_layer_correctly(
    graph: tuple[list[str], dict[str, set[str]]],
) -> None:
    stage_names, edges = graph
    spec = spec_from_edges(stage_names, edges)
    validate(spec)
    assert find_cycle(edges) is None
    layers = topological_stages(spec)
    layer_of = {name: depth for depth, layer in enumerate(layers) for name in layer}
    assert sorted(layer_of) == sorted(stage_names)
    assert sum(map(len, layers)) == len(stage_names)
    for layer in layers:
        assert layer == sorted(layer)
    for name, deps in edges.items():
        assert all(layer_of[dep] < layer_of[name] for dep in deps)
        # Layers are as early as possible: each stage directly follows a dependency.
        expected = max((layer_of[dep] + 1 for dep in deps), default=0)
        assert layer_of[name] == expected


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in edges[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@given(acyclic_edges(), st.data())
def test_back_edge_creates_a_reported_cycle(
    graph: tuple[list[str], dict[str, set[str]]], data: st.DataObject
) -> None:
    stage_names, edges = graph
    pairs = [(a, b) for a in stage_names for b in sorted(reachable(edges, a))]
    if not pairs:
        edges[stage_names[0]].add(stage_names[0])  # a one-stage cycle
        assert find_cycle(edges) == [stage_names[0], stage_names[0]]
        return
    later, earlier = data.draw(st.sampled_from(pairs))
    edges[earlier].add(later)  # earlier now depends on a stage that depends on it
    cycle = find_cycle(edges)
    assert cycle is not None
    assert_valid_cycle(cycle, edges)
    problems = problems_of(spec_from_edges(stage_names, edges))
    assert any(p.endswith("Remove one of these dependencies.") for p in problems)
    with pytest.raises(InvalidPipeline):
        topological_stages(spec_from_edges(stage_names, edges))


@given(
    st.dictionaries(
        st.sampled_from("abcdef"), st.sets(st.sampled_from("abcdefg")), max_size=6
    )
)
def test_find_cycle_agrees_with_graphlib(edges: dict[str, set[str]]) -> None:
    cycle = find_cycle(edges)
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError:
        assert cycle is not None
        assert_valid_cycle(cycle, edges)
    else:
        assert cycle is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
json_kwargs = st.dictionaries(st.text(max_size=5), json_values, max_size=3)
finite = st.floats(min_value=0, max_value=1e9, allow_nan=False)

steps = st.builds(
    StepSpec,
    name=names,
    task=names,
    kwargs=json_kwargs,
    queue=names,
    priority=st.integers(-100, 100),
    weight=finite,
    critical=st.booleans(),
    enabled=st.booleans(),
    error_handler=st.none() | names,
    max_attempts=st.none() | st.integers(1, 10),
    timeout=st.none() | st.floats(min_value=0.001, max_value=1e6),
)
stages = st.builds(
    StageSpec,
    name=names,
    steps=st.lists(steps, max_size=3).map(tuple),
    depends_on=st.lists(names, max_size=3).map(tuple),
)
specs = st.builds(
    PipelineSpec,
    name=names,
    stages=st.lists(stages, max_size=3).map(tuple),
    description=st.text(max_size=10),
    enabled=st.booleans(),
    overlap=st.sampled_from(["forbid", "allow"]),
    defaults=json_kwargs,
)


@given(specs)
def test_to_dict_from_dict_round_trip(spec: PipelineSpec) -> None:
    data = to_dict(spec)
    assert from_dict(data) == spec
    assert from_dict(json.loads(json.dumps(data))) == spec
    assert to_dict(from_dict(data)) == data


# --- from_dict errors ------------------------------------------------------------


def test_from_dict_minimal_data_uses_defaults() -> None:
    spec = from_dict(
        {
            "name": "etl",
            "stages": [{"name": "load", "steps": [{"name": "s", "task": "t"}]}],
        }
    )
    assert spec == pipeline(stage("load", steps=(StepSpec(name="s", task="t"),)))


def test_from_dict_converts_integer_weights_and_timeouts_to_float() -> None:
    step_data = {"name": "s", "task": "t", "weight": 2, "timeout": 5}
    data = {"name": "p", "stages": [{"name": "a", "steps": [step_data]}]}
    step = from_dict(data).stages[0].steps[0]
    assert (step.weight, step.timeout) == (2.0, 5.0)
    assert isinstance(step.weight, float)
    assert isinstance(step.timeout, float)


def test_from_dict_names_the_path_of_wrong_types() -> None:
    data = {
        "name": "etl",
        "stages": [
            {"name": "extract"},
            {
                "name": "load",
                "depends_on": "extract",
                "steps": [
                    {"name": "s", "task": "t", "weight": "heavy", "priority": True},
                    {"name": "u", "task": "t", "timeout": None, "error_handler": 3},
                ],
            },
        ],
    }
    assert io_problems(data) == [
        "The value at stages[1].depends_on is the string 'extract', but it must be "
        "a list of strings. Change it to a list of strings.",
        "The value at stages[1].steps[0].priority is true, but it must be an "
        "integer. Change it to an integer.",
        "The value at stages[1].steps[0].weight is the string 'heavy', but it must "
        "be a number. Change it to a number.",
        "The value at stages[1].steps[1].error_handler is the integer 3, but it must "
        "be a string or null. Change it to a string or null.",
    ]


def test_from_dict_missing_and_unknown_keys() -> None:
    data = {
        "description": 5,
        "stages": [{"name": "a", "wieght": 1, "steps": [{"name": "s"}, "oops"]}],
    }
    assert io_problems(data) == [
        "The pipeline data is missing the required key 'name'. Add it.",
        "The value at description is the integer 5, but it must be a string. "
        "Change it to a string.",
        "The mapping at stages[0] has unknown key 'wieght'. "
        "Remove it, or use one of 'name', 'depends_on', 'steps'.",
        "The mapping at stages[0].steps[0] is missing the required key 'task'. Add it.",
        "The value at stages[0].steps[1] is the string 'oops', but it must be a "
        "mapping. Write it as a mapping with the keys 'name', 'task', 'kwargs', "
        "'queue', 'priority', 'weight', 'critical', 'enabled', 'error_handler', "
        "'max_attempts', 'timeout', 'prevent_overlap'.",
    ]


def test_from_dict_rejects_non_mapping_data() -> None:
    assert io_problems([1, 2]) == [
        "The pipeline data is a list, but it must be a mapping. Write it as a "
        "mapping with the keys 'name', 'description', 'enabled', 'overlap', "
        "'defaults', 'cron', 'cron_timezone', 'stages'."
    ]
    assert io_problems({"name": "p"}) == [
        "The pipeline data is missing the required key 'stages'. Add it."
    ]


def test_from_dict_rejects_values_json_cannot_hold() -> None:
    data = {
        "name": "p",
        "defaults": {"ids": [1, {2: "two"}]},
        "stages": [
            {
                "name": "a",
                "steps": [
                    {
                        "name": "s",
                        "task": "t",
                        "kwargs": {"day": datetime.date(2024, 1, 2)},
                    }
                ],
            }
        ],
    }
    hint = (
        "Use only strings, numbers, booleans, null, lists and mappings with "
        "string keys."
    )
    assert io_problems(data) == [
        "The value at defaults.ids[1] has a key of type int (2), which cannot be "
        f"stored as JSON. {hint}",
        "The value at stages[0].steps[0].kwargs.day is a value of type date, which "
        f"cannot be stored as JSON. {hint}",
    ]


def test_from_dict_does_not_apply_pipeline_rules() -> None:
    data = to_dict(pipeline(stage("a", "b"), stage("b", "a")))
    spec = from_dict(data)
    with pytest.raises(InvalidPipeline, match="form a cycle"):
        validate(spec)


def test_to_dict_copies_arguments() -> None:
    spec = one_step(send(to=["a"]), defaults={"x": {"y": 1}})
    data = to_dict(spec)
    data["defaults"]["x"]["y"] = 2
    data["stages"][0]["steps"][0]["kwargs"]["to"].append("b")
    assert spec.defaults == {"x": {"y": 1}}
    assert spec.stages[0].steps[0].kwargs == {"to": ["a"]}


# --- cron --------------------------------------------------------------------------


def test_a_pipeline_cron_expression_and_time_zone_are_checked() -> None:
    spec = pipeline(stage("a"), cron="61 * * * *", cron_timezone="Mars/Olympus")

    assert problems_of(spec) == [
        "Pipeline 'etl': Cron field 'minute' has value '61', which is outside 0-59. "
        "Use a number from 0 to 59.",
        "Pipeline 'etl': Time zone 'Mars/Olympus' is not a known IANA time zone. "
        "Use a name such as 'Europe/Paris' or 'UTC'.",
    ]


def test_the_cron_fields_survive_a_round_trip() -> None:
    spec = pipeline(stage("a"), cron="0 9 * * 1-5", cron_timezone="America/New_York")

    data = to_dict(spec)

    assert (data["cron"], data["cron_timezone"]) == ("0 9 * * 1-5", "America/New_York")
    assert from_dict(data) == spec
