"""All measurements of one database, as JSON: ``python -m benchmarks.suite --out F``.

``benchmarks.run`` starts this module once per database, with ``GEARTRAIN_BENCH_DB``
set, so each database gets a fresh Django process configured for it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
from collections.abc import Sequence
from typing import Any

Result = dict[str, Any]


def _known(runs: list[Result], key: str) -> list[float] | None:
    """``key`` of every run, or None when any run could not measure it."""
    values = [r.get(key) for r in runs]
    if any(v is None for v in values):
        return None
    return [float(r[key]) for r in runs]


def _per_job(
    runs: list[Result], key: str, jobs: int, startup: float | None
) -> float | None:
    """Median of ``key`` over ``runs`` net of ``startup``, in ms per job, if known."""
    values = _known(runs, key)
    if startup is None or values is None:
        return None
    return (statistics.median(values) - startup) / jobs * 1000


def _ratio(runs: list[Result], key: str, jobs: int) -> float | None:
    values = _known(runs, key)
    return None if values is None else statistics.median(values) / jobs


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """Derived figures: rates, net of start-up, CPU per job, ratios to the reference."""
    start = result["startup"]
    drains, refs = result["drain_runs"], result["reference_runs"]
    jobs = drains[0]["jobs"]
    gross = statistics.median(r["seconds"] for r in drains)
    net = gross - start["seconds"]
    cpu = statistics.median(r["cpu_seconds"] for r in drains)
    machine = statistics.median(r["machine_cpu_seconds"] for r in drains)
    ref_seconds = statistics.median(r["seconds"] for r in refs)
    ref_cpu = statistics.median(r["cpu_seconds"] for r in refs)
    ref_machine = statistics.median(r["machine_cpu_seconds"] for r in refs)
    ref_rate = jobs / ref_seconds
    server = _per_job(
        drains, "server_cpu_seconds", jobs, start.get("server_cpu_seconds")
    )
    ref_server = _per_job(refs, "server_cpu_seconds", jobs, 0.0)
    return {
        "transactions_per_job": _ratio(drains, "transactions", jobs),
        "reference_transactions_per_job": _ratio(refs, "transactions", jobs),
        "server_cpu_ms_per_job": server,
        "reference_server_cpu_ms_per_job": ref_server,
        "drain_jobs": jobs,
        "drain_rate_gross": jobs / gross,
        "drain_rate_net": jobs / net,
        "startup_seconds": start["seconds"],
        "startup_cpu_seconds": start["cpu_seconds"],
        "cpu_ms_per_job_gross": cpu / jobs * 1000,
        "cpu_ms_per_job_net": (cpu - start["cpu_seconds"]) / jobs * 1000,
        "machine_cpu_ms_per_job": (machine - start["machine_cpu_seconds"])
        / jobs
        * 1000,
        "reference_rate": ref_rate,
        "reference_cpu_ms_per_job": ref_cpu / jobs * 1000,
        "reference_machine_cpu_ms_per_job": ref_machine / jobs * 1000,
        "ratio_gross": (jobs / gross) / ref_rate,
        "ratio_net": (jobs / net) / ref_rate,
    }


PHASES = ("enqueue", "drain", "latency", "pipeline")


def measure(db: str, jobs: int, repeat: int, phases: Sequence[str] = PHASES) -> Result:
    from benchmarks import database, pipelines
    from benchmarks import phases as run

    database.prepare()
    vendor = database.vendor()
    result: Result = {
        "database": db,
        "server_version": database.server_version(),
        "loadavg_before": os.getloadavg(),
    }
    if "enqueue" in phases:
        result["enqueue"] = run.enqueue_one_by_one(2000)
        result["bulk_enqueue"] = run.enqueue_bulk(20000)
    if "drain" in phases:
        result["startup"] = run.startup(db, repeat)
        result["drain_runs"], result["reference_runs"] = [], []
        for _ in range(repeat):  # interleaved, so drift hits both sides alike
            result["drain_runs"].append(run.drain_geartrain(db, jobs))
            result["reference_runs"].append(run.drain_reference(vendor, jobs))
        result["summary"] = _summary(result)
    if "latency" in phases:
        result["latency"] = run.latency(db)
    if "pipeline" in phases:
        result["pipeline"] = pipelines.measure(db, repeat, result.get("startup"))
    database.truncate()
    result["loadavg_after"] = os.getloadavg()
    return result


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", required=True)
    parser.add_argument("--phases", default=",".join(PHASES))
    args = parser.parse_args()
    # SIGTERM (from benchmarks.run) unwinds like Ctrl-C, so every worker is stopped.
    signal.signal(signal.SIGTERM, _raise_exit)
    db = os.environ["GEARTRAIN_BENCH_DB"]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    result = measure(db, args.jobs, args.repeat, args.phases.split(","))
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
