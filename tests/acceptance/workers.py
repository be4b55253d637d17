"""Start real ``geartrain worker`` processes against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import psutil
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def worker_env(
    marks: Path, settings: dict[str, Any] | None = None, log_level: str = ""
) -> dict[str, str]:
    """Environment that points a subprocess at the database the tests use.

    ``settings``: ``GEARTRAIN`` entries to override in the subprocess; ``log_level``:
    the level of its ``geartrain`` loggers (see ``subprocess_settings.py`` here, which
    also makes the process write its stacks on SIGUSR1).
    """
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.acceptance.subprocess_settings"
    env["GEARTRAIN_OVERRIDES"] = json.dumps(settings or {})
    env["GEARTRAIN_LOG_LEVEL"] = log_level or "WARNING"
    env["PYTHONPATH"] = str(ROOT)
    env["GEARTRAIN_MARKS"] = str(marks)
    name = str(connection.settings_dict["NAME"])
    env["GEARTRAIN_PG_NAME"] = name
    env["GEARTRAIN_MYSQL_NAME"] = name
    env["GEARTRAIN_SQLITE_FILE"] = name
    return env


class WorkerProcess:
    """A worker supervisor started as a subprocess in its own process group."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        log: Path,
        subcommand: str = "worker",
    ) -> None:
        cmd = [sys.executable, "-m", "django", "geartrain", subcommand, *args]
        # A file, not a pipe: a full pipe nobody reads would block the worker's logging.
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=ROOT, start_new_session=True, stderr=out
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> list[psutil.Process]:
        with suppress(psutil.NoSuchProcess):
            return psutil.Process(self.pid).children()
        return []

    def wait_for_children(
        self, count: int, timeout: float = 20.0
    ) -> list[psutil.Process]:
        wait_until(lambda: len(self.children()) >= count, timeout, "worker children")
        return self.children()

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def kill_group(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    def wait(self, timeout: float = 60.0) -> int:
        """The exit status; fails with the log and every process's stacks on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as late:
            with suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGUSR1)
            time.sleep(1.0)  # for the stacks to be written
            self.kill_group()
            raise AssertionError(
                f"The worker did not exit within {timeout} s. Its log:\n{self.stderr()}"
            ) from late

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-20000:]

    def log_text(self) -> str:
        """Everything the process logged so far."""
        return self.log.read_text(errors="replace")


def exited(processes: list[psutil.Process]) -> bool:
    """Whether every one of ``processes`` has exited (a zombie has: only unreaped)."""
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return False
    return True


def assert_exit(
    processes: list[psutil.Process], worker: WorkerProcess, timeout: float
) -> None:
    """Wait up to ``timeout`` s for ``processes`` to exit, else fail saying why."""
    try:
        wait_until(lambda: exited(processes), timeout, "the processes to exit")
    except AssertionError as late:
        raise AssertionError(describe(processes, worker)) from late


def describe(processes: list[psutil.Process], worker: WorkerProcess) -> str:
    """What became of ``processes``, for a failed assertion that they are gone.

    A live one writes its threads' stacks to the worker's log first (every worker
    subprocess does on SIGUSR1: ``subprocess_settings``), which ends the report.
    """
    states = []
    for process in processes:
        try:
            state = process.status()
            if state != psutil.STATUS_ZOMBIE:
                process.send_signal(signal.SIGUSR1)
        except psutil.NoSuchProcess:
            state = "gone"
        states.append(f"pid {process.pid}: {state}")
    time.sleep(1.0)  # for the stacks to be written
    return "\n".join([*states, worker.stderr()])


def wait_until(
    predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class WorkerFactory:
    """Starts workers and cleans them up at the end of the test."""

    def __init__(self, marks: Path) -> None:
        self.marks = marks
        self.started: list[WorkerProcess] = []

    def __call__(self, *args: str) -> WorkerProcess:
        return self.start("worker", *args)

    def start(
        self,
        subcommand: str,
        *args: str,
        settings: dict[str, Any] | None = None,
        log_level: str = "",
    ) -> WorkerProcess:
        """Start ``geartrain SUBCOMMAND ARGS…`` (``worker``, ``scheduler``…)."""
        # Make sure the subprocess sees everything this test committed.
        connection.close()
        log = self.marks.parent / f"{subcommand}-{len(self.started)}.log"
        env = worker_env(self.marks, settings, log_level)
        worker = WorkerProcess(list(args), env, log, subcommand)
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.kill_group()
            with suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=10)
