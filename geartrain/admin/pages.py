"""What the pipeline and run pages show: badges, pictures, stages with their steps."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from geartrain.admin.display import format_seconds
from geartrain.admin.graphs import dag_svg, timeline_svg
from geartrain.conf import get_settings
from geartrain.models import (
    Job,
    Pipeline,
    PipelineRun,
    RunStatus,
    StageRun,
    StepError,
    StepRun,
)
from geartrain.models.run import RUN_FINAL
from geartrain.pipelines import spec as specs

RUN_CODES = frozenset(RunStatus.values)
UNFINISHED = (RunStatus.PENDING, RunStatus.RUNNING)


def run_badge(run: PipelineRun | StageRun | StepRun) -> SafeString:
    """A coloured badge: the status, or "succeeded with failures" for a run."""
    text = run.outcome if isinstance(run, PipelineRun) else str(run.status)
    css = run.status if run.status in RUN_CODES else "unknown"
    if text != run.status:
        css = "partial"
    return format_html(
        '<span class="geartrain-status geartrain-status--{}">{}</span>', css, text
    )


def admin_link(view: str, pk: Any, text: str, site: str) -> SafeString:
    """A link to the admin change page of ``geartrain.<view>`` ``pk``."""
    url = reverse(f"admin:geartrain_{view}_change", args=[quote(pk)], current_app=site)
    return format_html('<a href="{}">{}</a>', url, text)


def short_time(value: datetime | None) -> str:
    """``"Nov 21, 06:18:04"`` in the active time zone, or ``"-"``."""
    if value is None:
        return "-"
    return formats.date_format(timezone.localtime(value), "M j, H:i:s")


def duration_text(obj: PipelineRun | StageRun | StepRun) -> str:
    """``"12.5 s"``, or ``"-"`` while unfinished."""
    took = obj.duration
    return "-" if took is None else format_seconds(took.total_seconds(), precise=True)


def stage_caption(stage: StageRun, steps: list[StepRun]) -> str:
    """The second line of a stage's box: ``"running · 3/5 steps done"``."""
    total = len(steps)
    if stage.status in UNFINISHED:
        done = sum(1 for step in steps if step.status in RUN_FINAL)
        return _("%(status)s · %(done)d/%(total)d steps done") % {
            "status": stage.status,
            "done": done,
            "total": total,
        }
    text = ngettext(
        "%(status)s · %(total)d step", "%(status)s · %(total)d steps", total
    ) % {"status": stage.status, "total": total}
    failed = sum(1 for step in steps if step.status == RunStatus.FAILED)
    if failed:
        text += _(", %(failed)d failed") % {"failed": failed}
    return text


def pipeline_picture(pipeline: Pipeline) -> SafeString:
    """The DAG of the saved definition, with each stage's step count."""
    spec = pipeline.to_spec()
    try:
        layers = specs.topological_stages(spec)
    except specs.InvalidPipeline as exc:
        return format_html(
            '<p class="geartrain-graph-problem">{}</p>',
            _("The stages cannot be drawn: %(problems)s") % {"problems": exc},
        )
    captions = {}
    for stage in spec.stages:
        enabled = sum(1 for step in stage.steps if step.enabled)
        total = len(stage.steps)
        text = _("%(count)d steps") % {"count": total}
        if total == 1:
            text = _("1 step")
        if enabled < total:
            text += _(" (%(off)d disabled)") % {"off": total - enabled}
        captions[stage.name] = text
    depends = {stage.name: stage.depends_on for stage in spec.stages}
    return dag_svg(
        layers,
        depends,
        captions=captions,
        label=_("Stages of pipeline %(name)s") % {"name": pipeline.name},
    )


def _stage_order(stage_runs: list[StageRun]) -> tuple[list[list[str]], list[StageRun]]:
    """The DAG's layers and the stage runs in layer order (stored order if cyclic)."""
    spec = specs.PipelineSpec(
        name="run",
        stages=tuple(
            specs.StageSpec(name=s.stage_name, depends_on=tuple(s.depends_on or ()))
            for s in stage_runs
        ),
    )
    try:
        layers = specs.topological_stages(spec)
    except specs.InvalidPipeline:
        return [[s.stage_name] for s in stage_runs], stage_runs
    rank = {name: i for i, name in enumerate(n for layer in layers for n in layer)}
    return layers, sorted(stage_runs, key=lambda s: rank.get(s.stage_name, 0))


def _job_links(run: PipelineRun, site: str) -> dict[int, list[SafeString]]:
    jobs: dict[int, list[SafeString]] = defaultdict(list)
    rows = (
        Job.objects.using(get_settings().DATABASE)
        .filter(step_run__run=run)
        .order_by("id")
        .values_list("id", "step_run_id", "status")
    )
    for pk, step_run_id, status in rows:
        jobs[step_run_id].append(admin_link("job", pk, f"#{pk} {status}", site))
    return jobs


def run_details(run: PipelineRun, site: str) -> dict[str, Any]:
    """Context of the run page: pictures, and stages with their steps, jobs, errors."""
    db = get_settings().DATABASE
    layers, stage_runs = _stage_order(list(run.stage_runs.using(db).order_by("id")))
    steps: dict[int, list[StepRun]] = defaultdict(list)
    for step in StepRun.objects.using(db).filter(run=run):
        steps[step.stage_run_id].append(step)
    jobs = _job_links(run, site)
    step_errors: dict[int, list[StepError]] = defaultdict(list)
    for error in StepError.objects.using(db).filter(step_run__run=run).order_by("id"):
        step_errors[error.step_run_id].append(error)
    stages = []
    for stage in stage_runs:
        mine = steps[stage.pk]
        rows = [
            {
                "step": step,
                "badge": run_badge(step),
                "duration": duration_text(step),
                "jobs": format_html_join(", ", "{}", ((j,) for j in jobs[step.pk])),
                "errors": step_errors[step.pk],
            }
            for step in mine
        ]
        done = sum(1 for step in mine if step.status in RUN_FINAL)
        stages.append(
            {
                "run": stage,
                "badge": run_badge(stage),
                "duration": duration_text(stage),
                "rows": rows,
                "progress": f"{done}/{len(rows)}",
                "caption": stage_caption(stage, mine),
            }
        )
    return {"stages": stages, **_pictures(run, layers, stages)}


def _pictures(
    run: PipelineRun, layers: list[list[str]], stages: list[dict[str, Any]]
) -> dict[str, SafeString]:
    runs: list[StageRun] = [s["run"] for s in stages]
    dag = dag_svg(
        layers,
        {s.stage_name: list(s.depends_on or ()) for s in runs},
        captions={s["run"].stage_name: s["caption"] for s in stages},
        statuses={s.stage_name: s.status for s in runs},
        links={s.stage_name: f"#stage-{i}" for i, s in enumerate(runs)},
        label=_("Stages of run %(id)s") % {"id": run.pk},
    )
    groups = [
        (
            s["run"].stage_name,
            [
                {
                    "name": row["step"].step_name,
                    "status": row["step"].status,
                    "started_at": row["step"].started_at,
                    "finished_at": row["step"].finished_at,
                }
                for row in s["rows"]
            ],
        )
        for s in stages
    ]
    timeline = timeline_svg(
        groups,
        now=timezone.now(),
        label=_("Timeline of run %(id)s") % {"id": run.pk},
    )
    return {"dag": dag, "timeline": timeline}
