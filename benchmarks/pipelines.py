"""The pipeline phase: 10 stages x 100 no-op steps against 1,000 flat no-op jobs.

Both sides are drained by the same command, a normal (not ``--burst``) worker with 2
children: a burst worker could exit between two stages. Each drain is timed from the
worker's spawn until the benchmark sees the work done (the run's status final, or no
ready or running job left), polling every 10 ms. *From first claim* subtracts the
drain's own start-up (spawn to the first ``Job.started_at``); *net* subtracts the
start-up of a burst worker on an empty queue, as the drain phase does, which at 1,000
jobs is as long as the flat drain itself, so the target is judged on the first. Flat and
pipeline drains alternate, so drift hits both sides alike.

The stage gap is, for each pair of consecutive stages, the first start of a step of the
next stage (``StepRun.started_at``, set as its job starts running) minus the last finish
of a step of the previous one (``StepRun.finished_at``, the job's). See the pipelines
section of docs/performance.md. Imported only after ``django.setup()``.
"""

from __future__ import annotations

import itertools
import signal
import statistics
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Max, Min, QuerySet

from benchmarks import database, tasks
from benchmarks.phases import _server_cpu, _server_delta, startup
from benchmarks.processes import busy_cpu, kill_group, start_worker, wait_exit
from geartrain.models import (
    Job,
    JobStatus,
    Pipeline,
    PipelineRun,
    RunStatus,
    Stage,
    StageRun,
    Step,
    StepError,
    StepRun,
    WorkerProcess,
)
from geartrain.models.run import RUN_FINAL
from geartrain.pipelines.launching import launch

Result = dict[str, Any]

NAME = "benchmark"
STAGES = 10
STEPS = 100
POLL = 0.01  # seconds between two looks at the database while a drain runs


def _tables() -> list[str]:
    """Tables emptied between drains, children first (the definition is kept)."""
    models = (Job, WorkerProcess, StepError, StepRun, StageRun, PipelineRun)
    return [m._meta.db_table for m in models]


def clear_runs() -> None:
    """Empty the job, worker and run tables; keep pipeline definitions."""
    with connection.cursor() as cursor:
        if database.vendor() == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(_tables())} RESTART IDENTITY CASCADE")
        else:
            for table in _tables():
                cursor.execute(f"DELETE FROM {table}")
    connection.close()


def analyze() -> None:
    """Refresh the planner statistics of the job and run tables."""
    with connection.cursor() as cursor:
        for table in _tables():
            cursor.execute(f"ANALYZE {table}")


def build(stages: int = STAGES, steps: int = STEPS) -> Pipeline:
    """(Re)create pipeline ``NAME``: a chain of ``stages`` stages of no-op steps."""
    clear_runs()
    Pipeline.objects.filter(name=NAME).delete()
    pipeline = Pipeline.objects.create(name=NAME)
    chain = Stage.objects.bulk_create(
        [Stage(pipeline=pipeline, name=f"stage-{i:02d}") for i in range(stages)]
    )
    edges = Stage.depends_on.through
    edges.objects.bulk_create(
        [
            edges(from_stage_id=later.pk, to_stage_id=earlier.pk)
            for earlier, later in itertools.pairwise(chain)
        ]
    )
    task_path = tasks.noop.module_path
    Step.objects.bulk_create(
        [
            Step(stage=stage, name=f"step-{i:03d}", task_path=task_path)
            for stage in chain
            for i in range(steps)
        ]
    )
    return pipeline


def _drain(db: str, done: Callable[[], bool], timeout: float) -> Result:
    """Spawn a normal worker, wait until ``done()``, stop it; seconds and CPU."""
    server_before = _server_cpu()
    busy_before = busy_cpu()
    spawned = time.time()
    started = time.perf_counter()
    proc = start_worker(db, burst=False)
    polls = 1
    try:
        deadline = time.monotonic() + timeout
        while not done():
            polls += 1
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the worker exited early with code {proc.returncode}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up after {timeout}s waiting for the drain")
            time.sleep(POLL)
        seconds = time.perf_counter() - started
        connection.close()  # its statistics reach pg_stat_database at exit
        machine = busy_cpu() - busy_before
        server = _server_delta(server_before)
        proc.send_signal(signal.SIGTERM)
        ended = wait_exit(proc, 30)
    finally:
        kill_group(proc)
    if ended.code != 0:
        raise RuntimeError(f"the worker exited with code {ended.code}")
    return {
        "seconds": seconds,
        "spawned_at": spawned,
        "cpu_seconds": ended.cpu,
        "machine_cpu_seconds": machine,
        "server_cpu_seconds": server,
        "polls": polls,
    }


def _transactions(before: int | None, polls: int) -> int | None:
    """Transactions since ``before``, less the benchmark's own polls (PostgreSQL)."""
    if before is None:
        return None
    time.sleep(1.2)  # backends report to pg_stat_database within a second
    after = database.transactions()
    return None if after is None else after - before - polls


def _job_times(jobs: QuerySet[Job], drained: Result) -> Result:
    """When the worker claimed the first of ``jobs``, and how long they took.

    ``own_startup_seconds`` runs from the worker's spawn to its first claim (this
    drain's own start-up); ``from_first_claim_seconds`` is the drain's time less it;
    ``span_seconds`` runs from the first claim to the last job's finish.
    """
    row = jobs.aggregate(first=Min("started_at"), last=Max("finished_at"))
    own = row["first"].timestamp() - drained["spawned_at"]
    return {
        "own_startup_seconds": own,
        "from_first_claim_seconds": drained["seconds"] - own,
        "span_seconds": (row["last"] - row["first"]).total_seconds(),
    }


def flat(db: str, count: int) -> Result:
    """``count`` no-op jobs from one ``bulk_enqueue``, drained by the worker."""
    database.fill(count)
    before = database.transactions()
    waiting = Job.objects.filter(status__in=[JobStatus.READY, JobStatus.RUNNING])
    run = _drain(db, lambda: not waiting.exists(), timeout=max(60.0, count / 20))
    run["transactions"] = _transactions(before, run["polls"])
    counts = database.status_counts()
    if counts.get(JobStatus.SUCCEEDED, 0) != count:
        raise RuntimeError(f"the flat drain left {counts}")
    return {**run, "jobs": count, **_job_times(Job.objects.all(), run)}


def _stages(run_id: int) -> list[Result]:
    """Per stage run, in order: its own times and its steps' first start, last end."""
    steps = (
        StepRun.objects.filter(run_id=run_id)
        .values("stage_run_id")
        .annotate(first=Min("started_at"), last=Max("finished_at"))
    )
    times = {r["stage_run_id"]: r for r in steps}
    stages = StageRun.objects.filter(run_id=run_id).values(
        "id", "started_at", "finished_at"
    )
    rows = [{**times[s["id"]], **s} for s in stages]
    return sorted(rows, key=lambda r: r["first"])


def _ms(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def stage_gaps(run_id: int) -> Result:
    """The gaps between consecutive stages of run ``run_id``, in milliseconds.

    ``gaps_ms``: from the last step finish of a stage to the first step start of the
    next. It splits into ``to_stage_end_ms``, until the stage run is recorded finished
    (the last outcome waiting to be written, then written), and
    ``after_stage_start_ms``, from the next stage run's start (its jobs are enqueued in
    that same transaction) to its first step start (commit, claim, start).
    """
    rows = _stages(run_id)
    pairs = list(itertools.pairwise(rows))
    return {
        "gaps_ms": [_ms(b["first"], a["last"]) for a, b in pairs],
        "to_stage_end_ms": [_ms(a["finished_at"], a["last"]) for a, _ in pairs],
        "after_stage_start_ms": [_ms(b["first"], b["started_at"]) for _, b in pairs],
        "stage_seconds": [_ms(r["last"], r["first"]) / 1000 for r in rows],
    }


def pipeline(db: str) -> Result:
    """Launch pipeline ``NAME`` and drain it with the worker until the run is final."""
    clear_runs()
    run = launch(NAME)
    analyze()
    steps = StepRun.objects.filter(run=run).count()
    final = PipelineRun.objects.filter(pk=run.pk, status__in=RUN_FINAL)
    before = database.transactions()
    drained = _drain(db, final.exists, timeout=max(120.0, steps / 10))
    drained["transactions"] = _transactions(before, drained["polls"])
    run.refresh_from_db()
    if run.status != RunStatus.SUCCEEDED:
        raise RuntimeError(f"the pipeline run ended {run.status}")
    if run.finished_at is None:
        raise RuntimeError(f"the pipeline run {run.pk} has no finish time")
    return {
        **drained,
        "jobs": steps,
        **_job_times(Job.objects.filter(step_run__run=run), drained),
        "run_final_after_spawn_seconds": run.finished_at.timestamp()
        - drained["spawned_at"],
        **stage_gaps(run.pk),
    }


def _median(runs: list[Result], key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def _per_job(
    runs: list[Result], key: str, base: float | None, jobs: int, scale: float = 1000
) -> float | None:
    """Median of ``key`` less ``base``, per job, times ``scale`` (ms), if known."""
    values = [r.get(key) for r in runs]
    if base is None or any(v is None for v in values):
        return None
    return (statistics.median(float(r[key]) for r in runs) - base) / jobs * scale


def _percentile(values: list[float], cut: int) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[cut - 1]


def summary(start: Result, flats: list[Result], pipes: list[Result]) -> Result:
    """Derived figures: times net of start-up, ratios, CPU per job, stage gaps."""
    jobs, steps = flats[0]["jobs"], pipes[0]["jobs"]
    flat_gross, pipe_gross = _median(flats, "seconds"), _median(pipes, "seconds")
    flat_net, pipe_net = flat_gross - start["seconds"], pipe_gross - start["seconds"]
    flat_claimed = _median(flats, "from_first_claim_seconds")
    pipe_claimed = _median(pipes, "from_first_claim_seconds")
    gaps = [g for r in pipes for g in r["gaps_ms"]]
    cpu = start["cpu_seconds"]
    server = start.get("server_cpu_seconds")
    return {
        "flat_jobs": jobs,
        "pipeline_steps": steps,
        "startup_seconds": start["seconds"],
        "flat_seconds_gross": flat_gross,
        "pipeline_seconds_gross": pipe_gross,
        "flat_seconds_net": flat_net,
        "pipeline_seconds_net": pipe_net,
        "ratio_net": pipe_net / flat_net if flat_net > 0 else None,
        "ratio_gross": pipe_gross / flat_gross,
        "flat_seconds_from_first_claim": flat_claimed,
        "pipeline_seconds_from_first_claim": pipe_claimed,
        "ratio_from_first_claim": pipe_claimed / flat_claimed,
        "own_startup_seconds": _median(flats + pipes, "own_startup_seconds"),
        "flat_cpu_ms_per_job": _per_job(flats, "cpu_seconds", cpu, jobs),
        "pipeline_cpu_ms_per_step": _per_job(pipes, "cpu_seconds", cpu, steps),
        "flat_server_cpu_ms_per_job": _per_job(
            flats, "server_cpu_seconds", server, jobs
        ),
        "pipeline_server_cpu_ms_per_step": _per_job(
            pipes, "server_cpu_seconds", server, steps
        ),
        "flat_transactions_per_job": _per_job(flats, "transactions", 0, jobs, 1),
        "pipeline_transactions_per_step": _per_job(pipes, "transactions", 0, steps, 1),
        "stage_gap_samples": len(gaps),
        "stage_gap_p50_ms": _percentile(gaps, 50),
        "stage_gap_p95_ms": _percentile(gaps, 95),
        "stage_gap_max_ms": max(gaps),
        "stage_gap_to_stage_end_p50_ms": statistics.median(
            g for r in pipes for g in r["to_stage_end_ms"]
        ),
        "stage_gap_after_stage_start_p50_ms": statistics.median(
            g for r in pipes for g in r["after_stage_start_ms"]
        ),
        "stage_seconds_median": statistics.median(
            s for r in pipes for s in r["stage_seconds"]
        ),
    }


def measure(db: str, repeat: int, start: Result | None = None) -> Result:
    """Flat and pipeline drains, ``repeat`` times each, interleaved."""
    if start is None:
        start = startup(db, repeat)
    build()
    flats: list[Result] = []
    pipes: list[Result] = []
    for _ in range(repeat):
        flats.append(flat(db, STAGES * STEPS))
        pipes.append(pipeline(db))
    clear_runs()
    Pipeline.objects.filter(name=NAME).delete()
    result = summary(start, flats, pipes)
    result.update(startup=start, flat_runs=flats, pipeline_runs=pipes)
    return result
