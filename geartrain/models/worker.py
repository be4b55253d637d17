"""Worker registrations, for operators and the admin."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class WorkerProcess(models.Model):
    """A running (or recently seen) ``geartrain worker`` supervisor."""

    id = models.CharField(_("worker id"), max_length=64, primary_key=True)
    hostname = models.CharField(_("host"), max_length=255)
    pid = models.PositiveIntegerField(_("process id"))
    queues = models.JSONField(_("queues"), default=list)
    concurrency = models.PositiveIntegerField(_("concurrency"), default=1)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    last_heartbeat_at = models.DateTimeField(_("last heartbeat"), default=timezone.now)
    stopping = models.BooleanField(_("stopping"), default=False)

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        ordering = ("-last_heartbeat_at",)
        indexes = [
            models.Index(fields=["last_heartbeat_at"], name="geartrain_worker_seen_v1"),
        ]

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid}"

    def is_alive(self, now: datetime | None = None, grace: float = 30.0) -> bool:
        """Whether the last heartbeat is recent (within ``grace`` seconds)."""
        now = now or timezone.now()
        return self.last_heartbeat_at >= now - timedelta(seconds=grace)
