"""``manage.py demo``: migrate, start worker, scheduler and admin, show work flowing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count
from django.utils import timezone

from geartrain import bulk_enqueue
from geartrain.models import Job, JobStatus, PipelineRun, Schedule, Trigger
from geartrain.pipelines import launching, sync

ADMIN = ("admin", "admin")
STOCK_CHECK = "stock-check"


class Command(BaseCommand):
    help = "Run the geartrain demo: worker + admin + example work."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--once", action="store_true", help="Exit when the example work is done."
        )
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        self._admin_user()
        manage = [sys.executable, sys.argv[0]]
        processes = [
            subprocess.Popen(
                [
                    *manage,
                    "geartrain",
                    "worker",
                    "--concurrency",
                    str(options["concurrency"]),
                    "--with-scheduler",
                ]
            )
        ]
        if not options["once"]:
            processes.append(
                subprocess.Popen(
                    [
                        *manage,
                        "runserver",
                        "--noreload",
                        f"127.0.0.1:{options['port']}",
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
            self.stdout.write(
                f"Admin: http://127.0.0.1:{options['port']}/admin/geartrain/job/ "
                f"(user {ADMIN[0]}, password {ADMIN[1]})"
            )
        try:
            started = timezone.now()
            run = self._launch_pipeline()
            self._schedule()
            self._enqueue()
            self._watch(started, run, once=options["once"])
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(timeout=60)

    def _admin_user(self) -> None:
        users = get_user_model()
        if not users.objects.filter(username=ADMIN[0]).exists():
            users.objects.create_superuser(ADMIN[0], "admin@example.com", ADMIN[1])

    def _enqueue(self) -> None:
        from example.shop import tasks

        orders = range(1, 41)
        bulk_enqueue(tasks.charge_order, [((n, 1000 + n), {}) for n in orders])
        for n in orders:
            tasks.send_receipt.enqueue(n, f"customer{n}@example.com")
        for sku in ("mug", "shirt", "poster"):
            tasks.wait_for_stock.enqueue(sku)
        yesterday = (date.today() - timedelta(days=1)).isoformat()
        tasks.nightly_report.enqueue(yesterday)
        later = timezone.now() + timedelta(seconds=5)
        tasks.nightly_report.using(run_after=later).enqueue(date.today().isoformat())
        tasks.broken_export.enqueue("warehouse")
        self.stdout.write("Enqueued 86 jobs: charges, receipts, stock checks, reports.")

    def _launch_pipeline(self) -> PipelineRun:
        from example.shop.pipelines import nightly

        for line in sync.sync([nightly]).lines(not_in_code=False):
            self.stdout.write(line)
        PipelineRun.objects.filter(
            pipeline_name=nightly.name, status__in=["pending", "running"]
        ).update(status="cancelled")
        PipelineRun.objects.filter(pipeline_name=nightly.name).update(dismissed=True)
        run = launching.launch(nightly.name, trigger=Trigger.MANUAL, launched_by="demo")
        self.stdout.write(
            f"Launched pipeline {nightly.name!r} as run {run.pk}: extract -> transform "
            f"-> load + notify -> report."
        )
        return run

    def _schedule(self) -> None:
        """A schedule every minute that starts 3 minutes ago: the scheduler catches
        up the 3 missed slots at once, then fires once a minute."""
        Schedule.objects.filter(name=STOCK_CHECK).delete()
        Schedule.objects.create(
            name=STOCK_CHECK,
            cron="* * * * *",
            timezone="Europe/Paris",
            task_path="example.shop.tasks.wait_for_stock",
            kwargs={"sku": "mug"},
            cron_base=timezone.now() - timedelta(minutes=3),
            catch_up_limit=3,
        )
        self.stdout.write(
            f"Created schedule {STOCK_CHECK!r} (* * * * *, Europe/Paris), started 3 "
            "minutes ago: the scheduler catches up 3 slots, then fires every minute."
        )

    def _schedule_line(self) -> str:
        schedule = Schedule.objects.get(name=STOCK_CHECK)
        fires = schedule.fires.count()
        upcoming = (
            timezone.localtime(schedule.next_slot) if schedule.next_slot else None
        )
        return f"  schedule {STOCK_CHECK}: {fires} slots fired, next {upcoming:%H:%M}"

    def _pipeline_line(self, run: PipelineRun) -> str:
        run.refresh_from_db()
        stages = ", ".join(
            f"{s.stage_name}={s.status}" for s in run.stage_runs.order_by("id")
        )
        return f"  pipeline run {run.pk}: {run.outcome} [{stages}]"

    def _watch(self, started: Any, run: PipelineRun, *, once: bool) -> None:
        waiting = (JobStatus.SCHEDULED, JobStatus.READY, JobStatus.RUNNING)
        while True:
            counts = dict(
                Job.objects.filter(enqueued_at__gte=started)
                .values_list("status")
                .annotate(n=Count("id"))
            )
            line = "  ".join(f"{s}={counts.get(s, 0)}" for s in JobStatus.values)
            self.stdout.write(f"[{timezone.now():%H:%M:%S}] {line}")
            self.stdout.write(self._pipeline_line(run))
            self.stdout.write(self._schedule_line())
            caught_up = Schedule.objects.get(name=STOCK_CHECK).fires.count() >= 3
            if (
                not any(counts.get(s) for s in waiting)
                and run.finished_at
                and caught_up
            ):
                break
            time.sleep(1)
        self.stdout.write(self.style.SUCCESS("All example jobs finished."))
        if once:
            return
        self.stdout.write(
            "Worker, scheduler and admin keep running; press Ctrl-C to stop."
        )
        try:
            signal.pause() if hasattr(signal, "pause") else time.sleep(10**9)
        except KeyboardInterrupt:
            os.write(1, b"\nStopping...\n")
