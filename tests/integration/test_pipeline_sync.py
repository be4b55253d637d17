"""Pipelines as code: discovery, ``sync()`` and the sync, export and import commands."""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from geartrain.models import Pipeline, Stage, Step
from geartrain.pipelines import code
from geartrain.pipelines.spec import InvalidPipeline, PipelineSpec, StageSpec, StepSpec
from geartrain.pipelines.sync import canonical, digest, sync
from tests.testapp import pipelines as fixtures

pytestmark = pytest.mark.django_db

T = "tests.testapp.tasks."
ETL = fixtures.etl
FIXTURE_NAMES = [
    "fixture-etl",
    "fixture-wait-ok",
    "fixture-wait-fail",
    "fixture-resume",
]


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("geartrain", *args, stdout=out)
    return out.getvalue().splitlines()


def stored(name: str) -> dict[str, Any]:
    return canonical(Pipeline.objects.get(name=name).to_spec())


def step(name: str, stage: str = "extract", pipeline: str = "fixture-etl") -> Step:
    return Step.objects.get(
        name=name, stage__name=stage, stage__pipeline__name=pipeline
    )


def writes(queries: CaptureQueriesContext) -> list[str]:
    verbs = ("INSERT", "UPDATE", "DELETE")
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(verbs)]


def replace_stage(spec: PipelineSpec, name: str, **changes) -> PipelineSpec:
    stages = tuple(
        dataclasses.replace(s, **changes) if s.name == name else s for s in spec.stages
    )
    return dataclasses.replace(spec, stages=stages)


# discovery ----------------------------------------------------------------------------


def test_discover_collects_module_level_specs_and_the_pipelines_list():
    found = code.discover()

    assert [spec.name for spec in found] == FIXTURE_NAMES
    assert found[0] is fixtures.etl


@pytest.fixture
def apps_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make importable packages ``gt_app_<name>`` with the given pipelines module."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(name: str, pipelines: str | None) -> str:
        package = tmp_path / f"gt_app_{name}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        if pipelines is not None:
            (package / "pipelines.py").write_text(textwrap.dedent(pipelines))
        made.append(package.name)
        return package.name

    yield make
    for name in made:
        for module in [m for m in sys.modules if m.split(".")[0] == name]:
            del sys.modules[module]


ONE = """
from geartrain.pipelines.spec import PipelineSpec
first = PipelineSpec(name="one", stages=())
"""


def test_discover_skips_apps_without_a_pipelines_module(apps_dir):
    names = [apps_dir("plain", None), apps_dir("one", ONE)]

    assert [spec.name for spec in code.discover(names)] == ["one"]


def test_an_import_error_inside_a_pipelines_module_propagates(apps_dir):
    name = apps_dir("broken", "import gt_not_installed_anywhere\n")

    with pytest.raises(ModuleNotFoundError) as info:
        code.discover([name])

    assert info.value.name == "gt_not_installed_anywhere"


def test_two_pipelines_with_the_same_name_are_an_error_naming_both_modules(apps_dir):
    names = [apps_dir("a", ONE), apps_dir("b", ONE)]

    with pytest.raises(ImproperlyConfigured) as info:
        code.discover(names)

    assert str(info.value) == (
        "Pipeline 'one' is declared twice: in module 'gt_app_a.pipelines' and in "
        "module 'gt_app_b.pipelines'. Give one of them another name."
    )


def test_a_spec_both_at_module_level_and_in_pipelines_counts_once(apps_dir):
    name = apps_dir("both", ONE + "PIPELINES = [first]\n")

    assert [spec.name for spec in code.discover([name])] == ["one"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "PIPELINES = {}\n",
            "PIPELINES in module 'gt_app_bad.pipelines' is a dict, not a list. Make "
            "it a list of PipelineSpec.",
        ),
        (
            ONE + "PIPELINES = [first, 'two']\n",
            "PIPELINES[1] in module 'gt_app_bad.pipelines' is a str, not a "
            "PipelineSpec. List only PipelineSpec objects.",
        ),
    ],
)
def test_a_bad_pipelines_list_is_an_error(apps_dir, source, message):
    name = apps_dir("bad", source)

    with pytest.raises(ImproperlyConfigured) as info:
        code.discover([name])

    assert str(info.value) == message


# sync ---------------------------------------------------------------------------------


def test_sync_creates_rows_equal_to_the_spec():
    report = sync([ETL])

    assert report.lines() == [
        "Pipeline 'fixture-etl': created (2 stages, 3 steps).",
        "1 created, 0 updated, 0 unchanged, 0 not in code.",
    ]
    assert stored("fixture-etl") == canonical(ETL)
    pipeline = Pipeline.objects.get(name="fixture-etl")
    assert pipeline.description == "Extract two tables, then load them."
    assert pipeline.defaults == {"region": "eu"}
    assert pipeline.synced_hash == digest(canonical(ETL, weights=False))
    customers = step("customers")
    assert (customers.task_path, customers.queue, customers.priority) == (
        T + "step_with_kwargs",
        "reports",
        5,
    )
    assert (customers.critical, customers.max_attempts, customers.timeout) == (
        False,
        2,
        30.0,
    )
    assert step("orders").weight == Decimal("2.50000")
    load = Stage.objects.get(name="load")
    assert [s.name for s in load.depends_on.all()] == ["extract"]


def test_a_second_sync_reports_unchanged_and_writes_nothing():
    sync(code.discover())

    with CaptureQueriesContext(connection) as queries:
        report = sync(code.discover())

    assert report.lines() == [
        "Pipeline 'fixture-etl': unchanged.",
        "Pipeline 'fixture-resume': unchanged.",
        "Pipeline 'fixture-wait-fail': unchanged.",
        "Pipeline 'fixture-wait-ok': unchanged.",
        "0 created, 0 updated, 4 unchanged, 0 not in code.",
    ]
    assert writes(queries) == []


def test_sync_updates_and_deletes_what_changed_in_code():
    sync([ETL])
    kept = step("orders").pk
    changed = dataclasses.replace(
        replace_stage(
            ETL,
            "extract",
            steps=(
                dataclasses.replace(ETL.stages[0].steps[0], kwargs={"key": "o2"}),
                StepSpec(name="refunds", task=T + "noop"),
            ),
        ),
        description="New text.",
    )
    changed = dataclasses.replace(
        changed,
        stages=(
            changed.stages[0],
            StageSpec(name="audit", steps=(StepSpec(name="check", task=T + "noop"),)),
            StageSpec(name="report", depends_on=("audit", "extract")),
        ),
    )

    report = sync([changed])

    assert report.lines() == [
        "Pipeline 'fixture-etl': updated.",
        '  description: "Extract two tables, then load them." -> "New text."',
        "  stage 'audit' added (1 step)",
        "  step 'customers' of stage 'extract' removed",
        "  step 'orders' of stage 'extract': kwargs {\"key\": \"orders\"} -> "
        '{"key": "o2"}',
        "  step 'refunds' of stage 'extract' added",
        "  stage 'load' removed",
        "  stage 'report' added (0 steps)",
        "0 created, 1 updated, 0 unchanged, 0 not in code.",
    ]
    assert stored("fixture-etl") == canonical(changed)
    assert step("orders").pk == kept
    assert not Stage.objects.filter(name="load").exists()
    assert not Step.objects.filter(name__in=["customers", "warehouse"]).exists()
    assert sync([changed]).lines()[0] == "Pipeline 'fixture-etl': unchanged."


def test_sync_changes_dependencies():
    spec = PipelineSpec(
        name="deps",
        stages=(
            StageSpec(name="a"),
            StageSpec(name="b"),
            StageSpec(name="c", depends_on=("a",)),
        ),
    )
    sync([spec])
    rewired = replace_stage(spec, "c", depends_on=("b", "a"))

    report = sync([rewired])

    assert report.lines()[:2] == [
        "Pipeline 'deps': updated.",
        '  stage \'c\': depends_on ["a"] -> ["a", "b"]',
    ]
    c = Stage.objects.get(pipeline__name="deps", name="c")
    assert sorted(s.name for s in c.depends_on.all()) == ["a", "b"]


def test_an_edit_in_the_admin_is_reported_and_replaced():
    sync([ETL])
    orders = step("orders")
    orders.kwargs = {"key": "edited"}
    orders.save()
    Stage.objects.get(name="load").depends_on.clear()

    report = sync([ETL])

    assert report.lines() == [
        "Warning: pipeline 'fixture-etl' was changed in the admin since the last "
        "sync; those edits were replaced by the definition given (changes below).",
        "Pipeline 'fixture-etl': updated.",
        "  step 'orders' of stage 'extract': kwargs {\"key\": \"edited\"} -> "
        '{"key": "orders"}',
        "  stage 'load': depends_on [] -> [\"extract\"]",
        "0 created, 1 updated, 0 unchanged, 0 not in code.",
    ]
    assert stored("fixture-etl") == canonical(ETL)
    assert not sync([ETL]).pipelines[0].edited_since_sync


@override_settings(GEARTRAIN={"AUTO_WEIGHT": False})
def test_without_auto_weight_a_weight_edit_is_reported_and_replaced():
    sync([ETL])
    Step.objects.filter(pk=step("orders").pk).update(weight=Decimal("9"))

    report = sync([ETL])

    assert report.lines()[:3] == [
        "Warning: pipeline 'fixture-etl' was changed in the admin since the last "
        "sync; those edits were replaced by the definition given (changes below).",
        "Pipeline 'fixture-etl': updated.",
        "  step 'orders' of stage 'extract': weight 9.0 -> 2.5",
    ]
    assert step("orders").weight == Decimal("2.5")


def test_with_auto_weight_learnt_weights_are_kept_and_not_reported():
    sync([ETL])
    Step.objects.filter(pk=step("orders").pk).update(weight=Decimal("7.25"))
    bigger = replace_stage(
        ETL,
        "load",
        steps=(*ETL.stages[1].steps, StepSpec(name="new", task=T + "noop", weight=4)),
    )

    report = sync([bigger])

    assert report.lines()[:3] == [
        "Pipeline 'fixture-etl': updated.",
        "  step 'new' of stage 'load' added",
        "0 created, 1 updated, 0 unchanged, 0 not in code.",
    ]
    assert step("orders").weight == Decimal("7.25")
    assert step("new", "load").weight == Decimal("4")


def test_a_pipeline_made_in_the_admin_is_taken_over_without_a_warning():
    Pipeline.objects.create(name="fixture-etl", description="hand made")

    report = sync([ETL])

    assert report.lines()[0] == "Pipeline 'fixture-etl': updated."
    assert not report.pipelines[0].edited_since_sync
    assert stored("fixture-etl") == canonical(ETL)


def test_pipelines_only_in_the_database_are_left_alone():
    Pipeline.objects.create(name="admin-only")

    report = sync([ETL])

    assert report.lines()[-2:] == [
        "Pipeline 'admin-only': not in code, left alone.",
        "1 created, 0 updated, 0 unchanged, 1 not in code.",
    ]
    assert Pipeline.objects.filter(name="admin-only").exists()


def test_a_dry_run_reports_and_writes_nothing():
    sync([ETL])
    changed = dataclasses.replace(ETL, enabled=False)
    other = PipelineSpec(name="other", stages=())

    with CaptureQueriesContext(connection) as queries:
        report = sync([changed, other], dry_run=True)

    assert report.lines() == [
        "Pipeline 'fixture-etl': would be updated.",
        "  enabled: true -> false",
        "Pipeline 'other': would be created (0 stages, 0 steps).",
        "1 created, 1 updated, 0 unchanged, 0 not in code.",
        "Dry run: nothing was written.",
    ]
    assert writes(queries) == []
    assert Pipeline.objects.get(name="fixture-etl").enabled


def test_an_invalid_spec_writes_nothing_at_all():
    bad = PipelineSpec(
        name="bad",
        stages=(
            StageSpec(
                name="s" * 201,
                steps=(
                    StepSpec(name="ghost", task=T + "not_a_task"),
                    StepSpec(name="lost", task=T + "noop", queue="nowhere"),
                    StepSpec(name="huge", task=T + "noop", weight=1e8),
                ),
            ),
        ),
    )

    with pytest.raises(InvalidPipeline) as info:
        sync([ETL, bad, dataclasses.replace(ETL, description="twice")])

    assert info.value.problems == [
        "Pipeline 'bad': Step 'ghost' uses task 'tests.testapp.tasks.not_a_task', "
        "which is not registered. Register the task, or pick one of the registered "
        "tasks.",
        "Pipeline 'bad': Step 'lost' uses queue 'nowhere', which is not configured. "
        "Use one of the configured queues: 'default', 'emails', 'reports'.",
        f"Pipeline 'bad': The name of stage {'s' * 40!r} is 201 characters long; the "
        "database stores at most 200. Shorten it.",
        "Pipeline 'bad': Step 'huge' has weight 100000000.0, which is more than "
        "9999999.99999, the largest weight the database stores. Use a smaller "
        "weight.",
        "Pipeline 'fixture-etl' is given twice. Give each pipeline its own name.",
    ]
    assert Pipeline.objects.count() == 0
    assert Stage.objects.count() == 0


def test_arguments_that_are_not_json_are_an_error_with_their_path():
    not_json: Any = {"key": {1, 2}}
    spec = PipelineSpec(
        name="odd",
        stages=(
            StageSpec(
                name="s",
                steps=(StepSpec(name="x", task=T + "record", kwargs=not_json),),
            ),
        ),
    )

    with pytest.raises(InvalidPipeline) as info:
        sync([spec])

    assert info.value.problems == [
        "Pipeline 'odd': The value at stages[0].steps[0].kwargs.key is a value of "
        "type set, which cannot be stored as JSON. Use only strings, numbers, "
        "booleans, null, lists and mappings with string keys."
    ]
    assert Pipeline.objects.count() == 0


# commands: sync -----------------------------------------------------------------------


def test_sync_command_writes_the_pipelines_declared_in_code():
    Pipeline.objects.create(name="admin-only")

    assert run("sync", "--dry-run") == [
        "Pipeline 'fixture-etl': would be created (2 stages, 3 steps).",
        "Pipeline 'fixture-resume': would be created (3 stages, 3 steps).",
        "Pipeline 'fixture-wait-fail': would be created (2 stages, 3 steps).",
        "Pipeline 'fixture-wait-ok': would be created (2 stages, 3 steps).",
        "Pipeline 'admin-only': not in code, left alone.",
        "4 created, 0 updated, 0 unchanged, 1 not in code.",
        "Dry run: nothing was written.",
    ]
    assert Pipeline.objects.count() == 1
    assert run("sync")[0] == "Pipeline 'fixture-etl': created (2 stages, 3 steps)."
    assert Pipeline.objects.count() == 5
    assert run("sync")[-1] == "0 created, 0 updated, 4 unchanged, 1 not in code."


# commands: export and import ----------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_export_then_import_restores_the_pipelines(tmp_path, suffix):
    sync(code.discover())
    before = {p.name: canonical(p.to_spec()) for p in Pipeline.objects.all()}
    path = tmp_path / f"pipelines{suffix}"

    assert run("export", "--output", str(path)) == [
        f"Exported 4 pipeline(s) to {path}."
    ]
    Pipeline.objects.all().delete()
    lines = run("import", str(path))

    assert lines == [
        "Pipeline 'fixture-etl': created (2 stages, 3 steps).",
        "Pipeline 'fixture-resume': created (3 stages, 3 steps).",
        "Pipeline 'fixture-wait-fail': created (2 stages, 3 steps).",
        "Pipeline 'fixture-wait-ok': created (2 stages, 3 steps).",
        "4 created, 0 updated, 0 unchanged.",
    ]
    assert {p.name: canonical(p.to_spec()) for p in Pipeline.objects.all()} == before
    assert run("import", str(path))[-1] == "0 created, 0 updated, 4 unchanged."
    assert run("sync")[-1] == "0 created, 0 updated, 4 unchanged, 0 not in code."


def test_export_by_name_to_stdout_in_both_formats():
    sync([ETL, fixtures.wait_ok])

    data = json.loads("\n".join(run("export", "fixture-etl")))
    assert [p["name"] for p in data["pipelines"]] == ["fixture-etl"]
    assert code.load_document("\n".join(run("export", "--format", "yaml")), "yaml", "")
    text = "\n".join(run("export", "--format", "yaml", "fixture-wait-ok"))
    assert text.startswith("pipelines:\n- name: fixture-wait-ok\n")


def test_export_of_an_unknown_pipeline_is_an_error():
    sync([ETL])

    with pytest.raises(CommandError) as info:
        run("export", "fixture-etl", "nope")

    assert str(info.value) == (
        "No pipeline is named 'nope'. Export one of the pipelines in the database: "
        "'fixture-etl'."
    )


def test_import_dry_run_writes_nothing(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(code.dump_document([ETL]))

    assert run("import", str(path), "--dry-run") == [
        "Pipeline 'fixture-etl': would be created (2 stages, 3 steps).",
        "1 created, 0 updated, 0 unchanged.",
        "Dry run: nothing was written.",
    ]
    assert Pipeline.objects.count() == 0


def test_import_reads_standard_input_in_the_format_given(monkeypatch):
    monkeypatch.setattr(sys, "stdin", StringIO(code.dump_document([ETL], "yaml")))

    assert run("import", "-", "--format", "yaml") == [
        "Pipeline 'fixture-etl': created (2 stages, 3 steps).",
        "1 created, 0 updated, 0 unchanged.",
    ]
    assert stored("fixture-etl") == canonical(ETL)


def _bad_weight() -> str:
    data = json.loads(code.dump_document([ETL, fixtures.wait_ok]))
    data["pipelines"][1]["stages"][0]["steps"][1]["weight"] = "heavy"
    data["pipelines"][1]["stages"][1]["colour"] = "red"
    return json.dumps(data)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "p.json",
            '{"pipelines": [}',
            "Nothing was imported from {path}; fix these problems first:\n"
            "File {path!r} is not valid JSON at line 1 column 16: Expecting value. "
            "Fix the file, or write it again with `geartrain export`.",
        ),
        (
            "p.yaml",
            "pipelines: [\n",
            "Nothing was imported from {path}; fix these problems first:\n"
            "File {path!r} is not valid YAML at line 2 column 1: expected the node "
            "content, but found '<stream end>'. Fix the file, or write it again with "
            "`geartrain export --format yaml`.",
        ),
        (
            "p.json",
            '[{"name": "x"}]',
            "Nothing was imported from {path}; fix these problems first:\n"
            "File {path!r} must hold a mapping with the single key 'pipelines', a "
            "list of pipelines, as `geartrain export` writes it.",
        ),
        (
            "p.json",
            _bad_weight(),
            "Nothing was imported from {path}; fix these problems first:\n"
            "In pipelines[1]: The value at stages[0].steps[1].weight is the string "
            "'heavy', but it must be a number. Change it to a number.\n"
            "In pipelines[1]: The mapping at stages[1] has unknown key 'colour'. "
            "Remove it, or use one of 'name', 'depends_on', 'steps'.",
        ),
        (
            "p.json",
            code.dump_document(
                [replace_stage(ETL, "load", depends_on=("extract", "nowhere"))]
            ),
            "Nothing was imported from {path}; fix these problems first:\n"
            "Pipeline 'fixture-etl': Stage 'load' depends on 'nowhere', which is not "
            "a stage of pipeline 'fixture-etl'. Depend only on stages of the same "
            "pipeline.",
        ),
    ],
)
def test_import_errors_name_the_file_and_the_path(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(CommandError) as info:
        run("import", str(path))

    assert str(info.value) == message.format(path=str(path))
    assert Pipeline.objects.count() == 0


def test_import_of_a_missing_file_is_an_error(tmp_path):
    path = str(tmp_path / "missing.json")

    with pytest.raises(CommandError) as info:
        run("import", path)

    assert str(info.value) == (
        f"Cannot read {path!r}: No such file or directory. Give the path of a file "
        f"written by `geartrain export`."
    )


def test_yaml_without_pyyaml_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("pipelines: []\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if PyYAML were not installed

    with pytest.raises(CommandError) as info:
        run("import", str(path))

    assert str(info.value) == (
        "PyYAML is not installed. Install django-geartrain[yaml] to read YAML."
    )
    with pytest.raises(CommandError) as info:
        run("export", "--format", "yaml")

    assert str(info.value) == (
        "PyYAML is not installed. Install django-geartrain[yaml] to write YAML."
    )


def test_a_cron_in_code_becomes_the_pipelines_schedule_and_leaves_with_it():
    timed = dataclasses.replace(ETL, cron="30 6 * * *", cron_timezone="Europe/Paris")
    sync([timed])
    pipeline = Pipeline.objects.get(name=ETL.name)
    schedule = pipeline.schedules.get()
    assert (schedule.cron, schedule.timezone, schedule.from_pipeline) == (
        "30 6 * * *",
        "Europe/Paris",
        True,
    )

    sync([ETL])  # the cron was removed from the code

    assert not pipeline.schedules.exists()
