"""Dependencies between schedules: may a depender's due slot fire now?

B depends on A: B's slot is held until A has a *successful* run that finished after
B's last start (or ever, if B never started). When A's latest such run failed, the
dependency's ``on_failure`` decides: ``wait`` (hold until a success), ``run`` (fire
anyway) or ``skip`` (drop this slot). A ``future`` dependency is ignored for B's first
start after the dependency was created or edited; on itself it means "never overlap
my own previous run".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from geartrain.conf import get_settings
from geartrain.models import (
    FireStatus,
    OnFailure,
    Schedule,
    ScheduleDependency,
    ScheduleFire,
)
from geartrain.models.schedule import FIRE_FINISHED

FIRE = "fire"
HOLD = "hold"
SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Verdict:
    """``fire``, ``hold`` (until ``recheck_at``) or ``skip``, and why.

    ``after``: for ``fire``, the latest finish of a dependee run it relied on. That run
    may have finished after the tick read its clock; the start is stamped no earlier
    (:meth:`start_time`), or the same run would release the next slot too.
    """

    action: str
    reason: str = ""
    recheck_at: datetime | None = None
    after: datetime | None = None

    def start_time(self, now: datetime) -> datetime:
        """When a slot fired on this verdict at ``now`` counts as started."""
        return now if self.after is None else max(now, self.after)


def check(schedule: Schedule, now: datetime) -> Verdict:
    """The verdict of every dependency of ``schedule`` for a slot due ``now``."""
    db = get_settings().DATABASE
    since = schedule.last_fired_at
    deps = (
        ScheduleDependency.objects.using(db)
        .filter(depender=schedule)
        .select_related("dependee")
        .order_by("dependee__name")
    )
    after: datetime | None = None
    for dep in deps:
        if dep.future and (since is None or since < dep.changed_at):
            continue
        verdict = _one(dep, since, now)
        if verdict.action != FIRE:
            return verdict
        if verdict.after is not None and (after is None or verdict.after > after):
            after = verdict.after
    return Verdict(FIRE, after=after)


def _one(dep: ScheduleDependency, since: datetime | None, now: datetime) -> Verdict:
    db = get_settings().DATABASE
    dependee = dep.dependee
    finished = ScheduleFire.objects.using(db).filter(
        schedule=dependee, status__in=FIRE_FINISHED
    )
    if since is not None:
        finished = finished.filter(finished_at__gt=since)
    latest = finished.order_by("-finished_at", "-id").first()
    seen = None if latest is None else latest.finished_at
    if latest is not None and latest.status == FireStatus.SUCCEEDED:
        return Verdict(FIRE, after=seen)
    if latest is not None and dep.on_failure == OnFailure.WAIT and _on_itself(dep):
        # Only a new run of this schedule could succeed, and it is the one waiting:
        # on itself, "wait" means "wait until the previous run finished", however.
        return Verdict(FIRE, after=seen)
    name = dependee.name
    if latest is not None and dep.on_failure == OnFailure.RUN:
        return Verdict(FIRE, after=seen)
    if latest is not None and dep.on_failure == OnFailure.SKIP:
        return Verdict(
            SKIP,
            f"schedule {name!r} depended on did not succeed ({latest.status} at "
            f"{latest.finished_at:%Y-%m-%d %H:%M:%S}) and the dependency skips then",
        )
    return _hold(dependee, latest, now)


def _on_itself(dep: ScheduleDependency) -> bool:
    return dep.depender_id == dep.dependee_id


def _hold(dependee: Schedule, latest: ScheduleFire | None, now: datetime) -> Verdict:
    conf = get_settings()
    recheck = timedelta(seconds=conf.DEPENDENCY_RECHECK)
    name = dependee.name
    running = (
        ScheduleFire.objects.using(conf.DATABASE)
        .filter(schedule=dependee, status=FireStatus.FIRED)
        .exists()
    )
    if running:
        return Verdict(HOLD, f"waiting for the run of schedule {name!r}", now + recheck)
    if not dependee.enabled or dependee.due_at is None:
        state = "is disabled" if not dependee.enabled else "has no slot left"
        return Verdict(
            HOLD,
            f"waiting for schedule {name!r}, which {state}",
            now + timedelta(seconds=conf.SCHEDULER_INTERVAL),
        )
    if latest is not None:
        reason = f"waiting for a successful run of schedule {name!r} (its last failed)"
    else:
        reason = f"waiting for a run of schedule {name!r}"
    if dependee.due_at is not None and dependee.due_at > now:
        return Verdict(HOLD, reason, dependee.due_at + recheck)
    return Verdict(HOLD, reason, now + recheck)
