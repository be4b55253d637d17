"""Worker subprocesses: start, wait with CPU accounting, sample memory, always kill."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024


def worker_env(db: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    env["GEARTRAIN_BENCH_DB"] = db
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_worker(
    db: str, *, burst: bool, concurrency: int = 2
) -> subprocess.Popen[bytes]:
    """Start ``python -m django geartrain worker`` in its own process group."""
    command = [sys.executable, "-m", "django", "geartrain", "worker"]
    command += ["--concurrency", str(concurrency)]
    if burst:
        command.append("--burst")
    return subprocess.Popen(
        command, cwd=ROOT, env=worker_env(db), start_new_session=True
    )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker's process group (which this benchmark started) if alive."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
            proc.wait(timeout=10)


@dataclasses.dataclass(slots=True)
class Exit:
    """How a worker process tree ended."""

    code: int
    cpu: float  # user + sys seconds of the whole tree (children waited for)


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> Exit:
    """Wait for ``proc`` with ``wait4`` to get the CPU time of its whole tree.

    Raises:
        TimeoutError: when the process is still running after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return Exit(proc.returncode, usage.ru_utime + usage.ru_stime)
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker pid={proc.pid} still running after {timeout}s")
        time.sleep(0.002)


def busy_cpu() -> float:
    """Machine-wide busy CPU seconds so far (all processes, all cores)."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of ``pid``: its own, its reaped children's, its live children's.

    For the PostgreSQL postmaster this is the whole server's CPU: exited backends are
    in its children's times, running ones are read one by one.
    """
    try:
        proc = psutil.Process(pid)
        t = proc.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in proc.children():
            with contextlib.suppress(psutil.Error):
                c = child.cpu_times()
                total += c.user + c.system
    except psutil.Error:
        return None
    return float(total)


class RssSampler:
    """Samples the RSS of a worker's supervisor and of each child in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.supervisor_max = 0
        self.children_max: dict[int, int] = {}
        self.children_uss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(self.pid)
            self.supervisor_max = max(self.supervisor_max, proc.memory_info().rss)
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    rss = child.memory_info().rss
                    old = self.children_max.get(child.pid, 0)
                    self.children_max[child.pid] = max(old, rss)

    def sample_uss(self) -> None:
        """Memory unique to each child (shared with nobody), sampled once."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.children_uss[child.pid] = child.memory_full_info().uss

    @contextlib.contextmanager
    def running(self) -> Iterator[RssSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)

    def summary(self) -> dict[str, float]:
        children = list(self.children_max.values()) or [0]
        return {
            "supervisor_rss_mib": self.supervisor_max / MIB,
            "max_child_rss_mib": max(children) / MIB,
            "max_child_uss_mib": max(self.children_uss.values(), default=0) / MIB,
            "children_seen": len(self.children_max),
        }
