"""The job admin's "retry" and "cancel": changelist actions and detail-page views.

Both call the same services as ``geartrain retry`` (:mod:`geartrain.operations`), and
both need their own permission (``geartrain.retry_job``, ``geartrain.cancel_job``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from geartrain import operations
from geartrain.models import Job

if TYPE_CHECKING:
    from geartrain.admin.jobs import JobAdmin

MAX_LISTED_IDS = 20


def _id_list(jobs: Sequence[Job]) -> str:
    shown = ", ".join(f"#{job.pk}" for job in jobs[:MAX_LISTED_IDS])
    hidden = len(jobs) - MAX_LISTED_IDS
    if hidden > 0:
        return _("%(ids)s and %(count)d more") % {"ids": shown, "count": hidden}
    return shown


def retry_message(new_jobs: Sequence[Job], left_alone: int) -> str:
    """E.g. ``"Retried 2 jobs as #15, #16."``; names the jobs that were not retried."""
    count = len(new_jobs)
    if count:
        text = ngettext(
            "Retried %(count)d job as %(ids)s",
            "Retried %(count)d jobs as %(ids)s",
            count,
        ) % {"count": count, "ids": _id_list(new_jobs)}
    else:
        text = _("Retried 0 jobs")
    if left_alone:
        text += "; " + ngettext(
            "%(count)d was still waiting or running and was left alone",
            "%(count)d were still waiting or running and were left alone",
            left_alone,
        ) % {"count": left_alone}
    text += "."
    if not count:
        text += " " + _(
            "Only finished jobs (succeeded, failed or cancelled) can be retried."
        )
    return text


def cancel_message(cancelled: int, left_alone: int) -> str:
    """E.g. ``"Cancelled 3 jobs; 1 was already running or finished and was left
    alone."``"""
    text = ngettext(
        "Cancelled %(count)d job", "Cancelled %(count)d jobs", cancelled
    ) % {"count": cancelled}
    if left_alone:
        text += "; " + ngettext(
            "%(count)d was already running or finished and was left alone",
            "%(count)d were already running or finished and were left alone",
            left_alone,
        ) % {"count": left_alone}
    text += "."
    if not cancelled:
        text += " " + _("Only scheduled or ready jobs can be cancelled.")
    return text


@admin.action(description=gettext_lazy("Retry selected jobs"), permissions=["retry"])
def retry_selected(
    modeladmin: JobAdmin, request: HttpRequest, queryset: QuerySet[Job]
) -> None:
    """Enqueue a fresh copy of each selected finished job."""
    # The changelist defers the big JSON columns; a retry copies args and kwargs.
    jobs = list(queryset.defer(None).order_by("id"))
    new_jobs = operations.retry_jobs(jobs)
    modeladmin.message_user(
        request,
        retry_message(new_jobs, len(jobs) - len(new_jobs)),
        messages.SUCCESS if new_jobs else messages.WARNING,
    )


@admin.action(description=gettext_lazy("Cancel selected jobs"), permissions=["cancel"])
def cancel_selected(
    modeladmin: JobAdmin, request: HttpRequest, queryset: QuerySet[Job]
) -> None:
    """Cancel the selected jobs that have not started yet."""
    jobs = list(queryset.only("pk"))
    cancelled = operations.cancel_jobs(jobs)
    modeladmin.message_user(
        request,
        cancel_message(cancelled, len(jobs) - cancelled),
        messages.SUCCESS if cancelled else messages.WARNING,
    )


def _job_or_404(
    modeladmin: JobAdmin, request: HttpRequest, object_id: str, allowed: bool
) -> Job:
    """The job, once the user may see jobs and do this (403 first, then 404)."""
    if not (allowed and modeladmin.has_view_or_change_permission(request)):
        raise PermissionDenied
    job = modeladmin.get_object(request, unquote(object_id))
    if job is None:
        raise Http404(
            _("There is no job with id %(id)r; it may have been pruned or deleted.")
            % {"id": object_id}
        )
    return job


def _change_url(modeladmin: JobAdmin, job: Job) -> str:
    return reverse(
        "admin:geartrain_job_change",
        args=[quote(job.pk)],
        current_app=modeladmin.admin_site.name,
    )


def retry_view(
    modeladmin: JobAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    """POST ``<id>/retry/``: retry one finished job, then show the new job."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    allowed = modeladmin.has_retry_permission(request)
    job = _job_or_404(modeladmin, request, object_id, allowed)
    new_jobs = operations.retry_jobs([job])
    if not new_jobs:
        modeladmin.message_user(
            request,
            _(
                "Job #%(id)s was not retried: it is %(status)s. Only finished jobs "
                "(succeeded, failed or cancelled) can be retried; wait until it ends."
            )
            % {"id": job.pk, "status": job.status},
            messages.WARNING,
        )
        return redirect(_change_url(modeladmin, job))
    modeladmin.message_user(request, retry_message(new_jobs, 0), messages.SUCCESS)
    return redirect(_change_url(modeladmin, new_jobs[0]))


def cancel_view(
    modeladmin: JobAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    """POST ``<id>/cancel/``: cancel one job that has not started yet."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    allowed = modeladmin.has_cancel_permission(request)
    job = _job_or_404(modeladmin, request, object_id, allowed)
    if operations.cancel_jobs([job]):
        modeladmin.message_user(request, cancel_message(1, 0), messages.SUCCESS)
    else:
        job.refresh_from_db(fields=["status"])
        modeladmin.message_user(
            request,
            _(
                "Job #%(id)s was not cancelled: it is %(status)s. Only scheduled or "
                "ready jobs can be cancelled; a running job finishes its attempt."
            )
            % {"id": job.pk, "status": job.status},
            messages.WARNING,
        )
    return redirect(_change_url(modeladmin, job))
