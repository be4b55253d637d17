"""Write pipeline definitions (specs) to the database, and report what changed.

:func:`sync` makes the ``Pipeline``, ``Stage`` and ``Step`` rows of each spec equal
to it, in one transaction, after validating every spec: an invalid spec writes
nothing at all. Pipelines that exist only in the database are left alone.

Each synced pipeline stores the SHA-256 of its canonical definition in
``Pipeline.synced_hash``. When the rows no longer match that hash, someone edited
the pipeline (in the admin, say) since the last sync; the report says so and lists
how the rows differ from the spec, because the sync replaces those edits.

Learnt weights: while ``GEARTRAIN["AUTO_WEIGHT"]`` is true (the default) the engine
owns step weights. A spec's weight is then only the starting weight of a new step;
the sync neither overwrites an existing step's weight nor reports it as an edit.
With ``AUTO_WEIGHT`` off, the weight is synced like any other field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction

from geartrain.conf import get_settings
from geartrain.models import Pipeline, Stage, Step
from geartrain.pipelines import spec_io
from geartrain.pipelines.code import validate_all
from geartrain.pipelines.spec import PipelineSpec

PLACES = Decimal("0.00001")
_PIPELINE_FIELDS = (
    "description",
    "enabled",
    "overlap",
    "defaults",
    "cron",
    "cron_timezone",
)
_STEP_FIELDS = {  # spec key -> Step field
    "task": "task_path",
    "kwargs": "kwargs",
    "queue": "queue",
    "priority": "priority",
    "weight": "weight",
    "critical": "critical",
    "enabled": "enabled",
    "error_handler": "error_handler",
    "max_attempts": "max_attempts",
    "timeout": "timeout",
    "prevent_overlap": "prevent_overlap",
}


# Canonical form and hash --------------------------------------------------------------


def _weight(value: float) -> float:
    return float(Decimal(repr(float(value))).quantize(PLACES)) + 0.0


def canonical(spec: PipelineSpec, *, weights: bool = True) -> dict[str, Any]:
    """``spec`` as plain data, as the database stores it, in a stable order.

    Stages and steps are sorted by name, dependencies sorted, weights rounded to 5
    places (left out when ``weights`` is false), an empty error handler is null.
    """
    data = spec_io.to_dict(spec)
    stages = []
    for stage in sorted(data["stages"], key=lambda s: s["name"]):
        steps = []
        for step in sorted(stage["steps"], key=lambda s: s["name"]):
            step["error_handler"] = step["error_handler"] or None
            step["timeout"] = (
                None if step["timeout"] is None else float(step["timeout"])
            )
            if weights:
                step["weight"] = _weight(step["weight"])
            else:
                del step["weight"]
            steps.append(step)
        stage["depends_on"] = sorted(set(stage["depends_on"]))
        stage["steps"] = steps
        stages.append(stage)
    data["stages"] = stages
    return data


def digest(data: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``data`` (sorted keys, no spaces)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# Differences --------------------------------------------------------------------------


def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _step_differences(
    stage: str, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> list[str]:
    before = {step["name"]: step for step in old}
    after = {step["name"]: step for step in new}
    lines = []
    for name in sorted(before.keys() | after.keys()):
        label = f"step {name!r} of stage {stage!r}"
        if name not in before:
            lines.append(f"{label} added")
        elif name not in after:
            lines.append(f"{label} removed")
        else:
            lines += [
                f"{label}: {key} {_show(before[name][key])} -> {_show(value)}"
                for key, value in after[name].items()
                if _show(before[name].get(key)) != _show(value)
            ]
    return lines


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """How canonical definition ``new`` differs from ``old``, one line per change."""
    lines = [
        f"{key}: {_show(old[key])} -> {_show(new[key])}"
        for key in _PIPELINE_FIELDS
        if _show(old[key]) != _show(new[key])
    ]
    before = {stage["name"]: stage for stage in old["stages"]}
    after = {stage["name"]: stage for stage in new["stages"]}
    for name in sorted(before.keys() | after.keys()):
        if name not in before:
            lines.append(
                f"stage {name!r} added ({_plural(len(after[name]['steps']), 'step')})"
            )
        elif name not in after:
            lines.append(f"stage {name!r} removed")
        else:
            old_deps, new_deps = before[name]["depends_on"], after[name]["depends_on"]
            if old_deps != new_deps:
                lines.append(
                    f"stage {name!r}: depends_on {_show(old_deps)} -> {_show(new_deps)}"
                )
            lines += _step_differences(
                name, before[name]["steps"], after[name]["steps"]
            )
    return lines


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# Writing ------------------------------------------------------------------------------


def _step_values(data: Mapping[str, Any]) -> dict[str, Any]:
    values = {field: data[key] for key, field in _STEP_FIELDS.items() if key in data}
    values["error_handler"] = values["error_handler"] or ""
    if "weight" in values:
        values["weight"] = Decimal(repr(values["weight"])).quantize(PLACES)
    return values


def _write_steps(
    stage: Stage, wanted: Sequence[Mapping[str, Any]], keep_weights: bool, db: str
) -> None:
    existing = {step.name: step for step in stage.steps.all()}
    names = {data["name"] for data in wanted}
    gone = [step.pk for name, step in existing.items() if name not in names]
    if gone:
        Step.objects.using(db).filter(pk__in=gone).delete()
    for data in wanted:
        values = _step_values(data)
        step = existing.get(data["name"])
        if step is None:
            Step.objects.using(db).create(stage=stage, name=data["name"], **values)
            continue
        if keep_weights:
            del values["weight"]
        changed = [f for f, v in values.items() if _show(getattr(step, f)) != _show(v)]
        for field in changed:
            setattr(step, field, values[field])
        if changed:
            step.save(using=db, update_fields=changed)


def _write(
    row: Pipeline | None,
    data: Mapping[str, Any],
    synced_hash: str,
    *,
    keep_weights: bool,
    db: str,
) -> None:
    """Make the rows of ``row`` (or a new pipeline) equal canonical ``data``."""
    pipeline = row or Pipeline(name=data["name"])
    for field in _PIPELINE_FIELDS:
        setattr(pipeline, field, data[field])
    pipeline.synced_hash = synced_hash
    if row is None:
        pipeline.save(using=db)
    else:  # leave columns the spec does not own as they are
        fields = [*_PIPELINE_FIELDS, "synced_hash", "updated_at"]
        pipeline.save(using=db, update_fields=fields)
    existing = {stage.name: stage for stage in pipeline.stages.all()} if row else {}
    wanted = {stage["name"]: stage for stage in data["stages"]}
    gone = [stage.pk for name, stage in existing.items() if name not in wanted]
    if gone:
        Stage.objects.using(db).filter(pk__in=gone).delete()
    stages: dict[str, Stage] = {}
    for name, stage_data in wanted.items():
        stage = existing.get(name)
        if stage is None:
            stage = Stage.objects.using(db).create(pipeline=pipeline, name=name)
        stages[name] = stage
        _write_steps(stage, stage_data["steps"], keep_weights, db)
    for name, stage_data in wanted.items():
        stage = stages[name]
        current = sorted(stage.depends_on.values_list("name", flat=True))
        if current != stage_data["depends_on"]:
            stage.depends_on.set([stages[dep] for dep in stage_data["depends_on"]])


# Sync and its report ------------------------------------------------------------------

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


@dataclass(frozen=True, slots=True)
class PipelineSync:
    """What the sync did (or would do) to one pipeline.

    ``changes`` lists how the rows differed from the spec; ``edited_since_sync``
    is true when the rows had been changed (in the admin) since the last sync.
    """

    name: str
    outcome: str
    changes: tuple[str, ...] = ()
    edited_since_sync: bool = False
    summary: str = ""


@dataclass(frozen=True, slots=True)
class SyncReport:
    """The outcome of :func:`sync`, pipeline by pipeline."""

    pipelines: tuple[PipelineSync, ...]
    not_in_code: tuple[str, ...]
    dry_run: bool

    def count(self, outcome: str) -> int:
        """How many pipelines had ``outcome`` (created, updated or unchanged)."""
        return sum(1 for p in self.pipelines if p.outcome == outcome)

    def lines(self, *, not_in_code: bool = True) -> list[str]:
        """The report for people, one line per fact."""
        would = "would be " if self.dry_run else ""
        replaced = "would be replaced" if self.dry_run else "were replaced"
        lines = []
        for item in self.pipelines:
            if item.edited_since_sync:
                lines.append(
                    f"Warning: pipeline {item.name!r} was changed in the admin since "
                    f"the last sync; those edits {replaced} by the definition "
                    f"given (changes below)."
                )
            if item.outcome == UNCHANGED:
                lines.append(f"Pipeline {item.name!r}: unchanged.")
                continue
            detail = f" ({item.summary})" if item.summary else ""
            lines.append(f"Pipeline {item.name!r}: {would}{item.outcome}{detail}.")
            lines += [f"  {change}" for change in item.changes]
        if not_in_code:
            lines += [
                f"Pipeline {name!r}: not in code, left alone."
                for name in self.not_in_code
            ]
        summary = (
            f"{self.count(CREATED)} created, {self.count(UPDATED)} updated, "
            f"{self.count(UNCHANGED)} unchanged"
        )
        if not_in_code:
            summary += f", {len(self.not_in_code)} not in code"
        lines.append(summary + ".")
        if self.dry_run:
            lines.append("Dry run: nothing was written.")
        return lines


def _sync_one(
    row: Pipeline | None, spec: PipelineSpec, *, auto: bool, dry_run: bool, db: str
) -> PipelineSync:
    wanted = canonical(spec, weights=not auto)
    synced_hash = digest(wanted)
    if row is None:
        if not dry_run:
            _write(None, canonical(spec), synced_hash, keep_weights=False, db=db)
        steps = sum(len(stage.steps) for stage in spec.stages)
        summary = f"{_plural(len(spec.stages), 'stage')}, {_plural(steps, 'step')}"
        return PipelineSync(spec.name, CREATED, summary=summary)
    current = row.to_spec()
    edited = bool(row.synced_hash) and row.synced_hash not in {
        digest(canonical(current)),
        digest(canonical(current, weights=False)),
    }
    have = canonical(current, weights=not auto)
    if digest(have) == synced_hash:
        if row.synced_hash != synced_hash and not dry_run:
            Pipeline.objects.using(db).filter(pk=row.pk).update(synced_hash=synced_hash)
        return PipelineSync(spec.name, UNCHANGED)
    if not dry_run:
        _write(row, canonical(spec), synced_hash, keep_weights=auto, db=db)
    changes = differences(have, wanted) or ["values differ only in how they are stored"]
    return PipelineSync(spec.name, UPDATED, tuple(changes), edited)


def sync(given: Sequence[PipelineSpec], *, dry_run: bool = False) -> SyncReport:
    """Make the database rows equal each spec of ``given``, in one transaction.

    Every spec is validated first (names, graph, registered tasks and their
    arguments, configured queues, column limits): any problem raises
    :class:`InvalidPipeline` listing all of them, and nothing is written. With
    ``dry_run``, the report says what would change and nothing is written.
    """
    given = sorted(given, key=lambda spec: spec.name)
    validate_all(given)
    conf = get_settings()
    db = conf.DATABASE
    names = [spec.name for spec in given]
    with transaction.atomic(using=db):
        rows = Pipeline.objects.using(db).filter(name__in=names).order_by("name")
        if not dry_run:
            rows = rows.select_for_update()
        existing = {row.name: row for row in rows}
        results = tuple(
            _sync_one(
                existing.get(spec.name),
                spec,
                auto=conf.AUTO_WEIGHT,
                dry_run=dry_run,
                db=db,
            )
            for spec in given
        )
        others = Pipeline.objects.using(db).exclude(name__in=names).order_by("name")
        missing = tuple(others.values_list("name", flat=True))
    return SyncReport(pipelines=results, not_in_code=missing, dry_run=dry_run)
