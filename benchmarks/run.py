"""Run the benchmark: ``python -m benchmarks.run [--db sqlite|postgresql|all]``.

Each database is measured in its own subprocess (``benchmarks.suite``); this module
prints the table and writes ``benchmarks/results/latest.json``. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import django

from benchmarks.processes import ROOT, worker_env

RESULTS = ROOT / "benchmarks" / "results"
DATABASES = ("sqlite", "postgresql")

# (label, summary or section key, format, PostgreSQL target: (op, value) or None)
Row = tuple[str, tuple[str, str], str, tuple[str, float] | None]
_S, _MS, _X = "{:.2f}", "{:.3f}", "{:.2f}x"
PIPELINE_ROWS: list[Row] = [
    (label, ("pipeline", key), fmt, target)
    for label, key, fmt, target in [
        ("flat 1,000 jobs, gross (s)", "flat_seconds_gross", _S, None),
        ("pipeline 10x100 steps, gross (s)", "pipeline_seconds_gross", _S, None),
        ("flat, from 1st claim (s)", "flat_seconds_from_first_claim", _S, None),
        ("pipeline, from 1st claim (s)", "pipeline_seconds_from_first_claim", _S, None),
        ("pipeline / flat, from 1st claim", "ratio_from_first_claim", _X, ("<=", 1.3)),
        ("pipeline / flat, net of start-up", "ratio_net", _X, None),
        ("flat CPU per job, net (ms)", "flat_cpu_ms_per_job", _MS, None),
        ("pipeline CPU per step, net (ms)", "pipeline_cpu_ms_per_step", _MS, None),
        ("pipeline transactions per step", "pipeline_transactions_per_step", _MS, None),
        ("stage gap p50 (ms)", "stage_gap_p50_ms", "{:.1f}", ("<", 20.0)),
        ("stage gap p95 (ms)", "stage_gap_p95_ms", "{:.1f}", None),
    ]
]
ROWS: list[Row] = [
    ("enqueue, one by one (jobs/s)", ("enqueue", "rate"), "{:,.0f}", None),
    ("enqueue, bulk (jobs/s)", ("bulk_enqueue", "rate"), "{:,.0f}", (">", 20000)),
    ("worker start-up + exit (s)", ("summary", "startup_seconds"), "{:.2f}", None),
    ("drain, gross (jobs/s)", ("summary", "drain_rate_gross"), "{:,.0f}", None),
    ("drain, net of start-up (jobs/s)", ("summary", "drain_rate_net"), "{:,.0f}", None),
    ("reference drain (jobs/s)", ("summary", "reference_rate"), "{:,.0f}", None),
    ("drain / reference, net", ("summary", "ratio_net"), "{:.2f}x", (">=", 1.0)),
    ("drain / reference, gross", ("summary", "ratio_gross"), "{:.2f}x", None),
    ("worker CPU per job, net (ms)", ("summary", "cpu_ms_per_job_net"), "{:.3f}", None),
    (
        "reference CPU per job (ms)",
        ("summary", "reference_cpu_ms_per_job"),
        "{:.3f}",
        None,
    ),
    ("transactions per job", ("summary", "transactions_per_job"), "{:.3f}", None),
    (
        "reference transactions per job",
        ("summary", "reference_transactions_per_job"),
        "{:.3f}",
        None,
    ),
    (
        "PostgreSQL server CPU/job (ms)",
        ("summary", "server_cpu_ms_per_job"),
        "{:.3f}",
        None,
    ),
    (
        "reference server CPU/job (ms)",
        ("summary", "reference_server_cpu_ms_per_job"),
        "{:.3f}",
        None,
    ),
    ("latency p50 (ms)", ("latency", "p50_ms"), "{:.1f}", ("<", 10.0)),
    ("latency p95 (ms)", ("latency", "p95_ms"), "{:.1f}", None),
    (
        "  of which after enqueue returned, p50",
        ("latency", "after_commit_p50_ms"),
        "{:.1f}",
        None,
    ),
    ("supervisor RSS (MiB)", ("latency", "supervisor_rss_mib"), "{:.1f}", None),
    ("max child RSS (MiB)", ("latency", "max_child_rss_mib"), "{:.1f}", ("<", 60.0)),
    ("  of which unique to it (USS)", ("latency", "max_child_uss_mib"), "{:.1f}", None),
    *PIPELINE_ROWS,
]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--", "geartrain"))
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "django": django.get_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "geartrain_uncommitted_changes": dirty,
    }


def _suite(db: str, args: argparse.Namespace, out: Path) -> int:
    """Run ``benchmarks.suite`` for ``db`` in a fresh process; its exit code."""
    env = worker_env(db)
    if args.conn_max_age:
        env["GEARTRAIN_BENCH_CONN_MAX_AGE"] = args.conn_max_age
    if args.sync_commit_off:
        env["GEARTRAIN_BENCH_SYNC_COMMIT"] = "off"
    command = [sys.executable, "-m", "benchmarks.suite", "--out", str(out)]
    command += ["--jobs", str(args.jobs), "--repeat", str(args.repeat)]
    command += ["--phases", args.phases]
    proc = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        return proc.wait(timeout=1800)
    finally:
        if proc.poll() is None:  # timeout or Ctrl-C: let it stop its workers first
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def measure(db: str, args: argparse.Namespace) -> dict[str, Any]:
    """The suite's JSON result for ``db``; retried when a run fails (server restart)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, f"{db}.json")
        for attempt in range(1, args.attempts + 1):
            code = _suite(db, args, out)
            if code == 0:
                result: dict[str, Any] = json.loads(out.read_text())
                result["attempts"] = attempt
                return result
            print(f"Benchmark of {db} failed with exit code {code} (attempt {attempt})")
            if attempt < args.attempts:
                time.sleep(10)
    raise SystemExit(f"Benchmark of {db} failed {args.attempts} times; see above.")


def _verdict(value: float, target: tuple[str, float] | None) -> str:
    if target is None:
        return ""
    op, limit = target
    ok = {
        ">": value > limit,
        ">=": value >= limit,
        "<": value < limit,
        "<=": value <= limit,
    }[op]
    return f"{op} {limit:g}: {'met' if ok else 'MISSED'}"


def table(results: dict[str, dict[str, Any]]) -> str:
    dbs = list(results)
    lines = [f"{'':34}" + "".join(f"{db:>14}" for db in dbs) + "   target (PostgreSQL)"]
    for label, (section, key), fmt, target in ROWS:
        values = [results[db].get(section, {}).get(key) for db in dbs]
        if all(v is None for v in values):
            continue
        cells = "".join(f"{'n/a' if v is None else fmt.format(v):>14}" for v in values)
        verdict = ""
        pg = results.get("postgresql", {}).get(section, {}).get(key)
        if pg is not None:
            verdict = _verdict(pg, target)
        lines.append(f"{label:34}{cells}   {verdict}")
    loads = [
        (results[db]["loadavg_before"][0], results[db]["loadavg_after"][0])
        for db in dbs
    ]
    cells = "".join(f"{f'{a:.1f} → {b:.1f}':>14}" for a, b in loads)
    lines.append(f"{'load average (1 min), start → end':34}{cells}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=[*DATABASES, "all"], default="all")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per drain")
    parser.add_argument("--repeat", type=int, default=3, help="drains per side")
    parser.add_argument(
        "--phases",
        default="enqueue,drain,latency,pipeline",
        help="comma-separated subset",
    )
    parser.add_argument(
        "--conn-max-age", help="experiment: CONN_MAX_AGE for every process (none|secs)"
    )
    parser.add_argument(
        "--sync-commit-off",
        action="store_true",
        help="experiment: PostgreSQL synchronous_commit=off (takes fsync out)",
    )
    parser.add_argument(
        "--attempts", type=int, default=2, help="runs per database before giving up"
    )
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = parser.parse_args()
    dbs = DATABASES if args.db == "all" else (args.db,)
    options = {k: v for k, v in vars(args).items() if k != "out"}
    report: dict[str, Any] = {"machine": machine(), "options": options, "results": {}}
    for db in dbs:
        print(f"Measuring {db} ...", flush=True)
        report["results"][db] = measure(db, args)
    print()
    print(table(report["results"]))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nWritten to {path}")


if __name__ == "__main__":
    main()
