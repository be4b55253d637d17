"""Cancel, Resume and Dismiss on a pipeline run's page.

Each is a POST-only view (405 on GET) behind its own permission (403 without it):
``geartrain.cancel_pipelinerun`` for Cancel, ``geartrain.resume_pipelinerun`` for Resume
and Dismiss. They call the same services as code and commands do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from geartrain.conf import get_settings
from geartrain.models import PipelineRun, RunStatus
from geartrain.pipelines import api, engine, launching
from geartrain.pipelines import spec as specs

if TYPE_CHECKING:
    from geartrain.admin.runs import PipelineRunAdmin

ACTIONS = ("cancel", "resume", "dismiss")
CANCELLABLE = (RunStatus.PENDING, RunStatus.RUNNING)
RESUMABLE = (RunStatus.FAILED, RunStatus.CANCELLED)

View = Callable[[HttpRequest, str], HttpResponse]


def _db() -> str:
    return get_settings().DATABASE


def can_cancel(run: PipelineRun) -> bool:
    return run.status in CANCELLABLE and not run.cancel_requested


def can_resume(run: PipelineRun) -> bool:
    return run.status in RESUMABLE


def can_dismiss(run: PipelineRun) -> bool:
    return run.status == RunStatus.FAILED and not run.dismissed


def buttons(
    modeladmin: PipelineRunAdmin, request: HttpRequest, run: PipelineRun
) -> dict[str, Any]:
    """Which buttons the run page shows, and where they post."""
    site = modeladmin.admin_site.name
    urls = {
        f"{name}_url": reverse(
            f"admin:geartrain_pipelinerun_{name}",
            args=[quote(run.pk)],
            current_app=site,
        )
        for name in ACTIONS
    }
    may_resume = modeladmin.has_resume_permission(request)
    return {
        **urls,
        "show_cancel": can_cancel(run) and modeladmin.has_cancel_permission(request),
        "show_resume": can_resume(run) and may_resume,
        "show_dismiss": can_dismiss(run) and may_resume,
    }


def _run_or_404(
    modeladmin: PipelineRunAdmin, request: HttpRequest, object_id: str, allowed: bool
) -> PipelineRun:
    """The run, once the user may see runs and do this (403 first, then 404)."""
    if not (allowed and modeladmin.has_view_permission(request)):
        raise PermissionDenied
    run = modeladmin.get_object(request, unquote(object_id))
    if run is None:
        raise Http404(
            _("There is no pipeline run with id %(id)r; it may have been deleted.")
            % {"id": object_id}
        )
    return run


def _run_page(modeladmin: PipelineRunAdmin, pk: Any) -> HttpResponse:
    return redirect(
        reverse(
            "admin:geartrain_pipelinerun_change",
            args=[quote(pk)],
            current_app=modeladmin.admin_site.name,
        )
    )


def _refuse(
    modeladmin: PipelineRunAdmin, request: HttpRequest, run: PipelineRun, text: str
) -> HttpResponse:
    modeladmin.message_user(request, text, messages.WARNING)
    return _run_page(modeladmin, run.pk)


def cancel_view(modeladmin: PipelineRunAdmin) -> View:
    """POST ``<id>/cancel/``: waiting steps are cancelled, running ones finish."""

    def view(request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        allowed = modeladmin.has_cancel_permission(request)
        run = _run_or_404(modeladmin, request, object_id, allowed)
        if not can_cancel(run):
            return _refuse(
                modeladmin,
                request,
                run,
                _(
                    "Run %(id)s was not cancelled: it is %(status)s. Only pending or "
                    "running runs can be cancelled, once."
                )
                % {"id": run.pk, "status": _status_words(run)},
            )
        with transaction.atomic(using=_db()):
            run = engine.cancel(run.pk)
        if run.status == RunStatus.CANCELLED:
            text = _("Run %(id)s was cancelled; no step was running.")
        else:
            text = _("Run %(id)s will stop after its running steps finish.")
        modeladmin.message_user(request, text % {"id": run.pk}, messages.SUCCESS)
        return _run_page(modeladmin, run.pk)

    return view


def resume_view(modeladmin: PipelineRunAdmin) -> View:
    """POST ``<id>/resume/``: a new run repeats the steps that did not succeed."""

    def view(request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        allowed = modeladmin.has_resume_permission(request)
        run = _run_or_404(modeladmin, request, object_id, allowed)
        if not can_resume(run):
            return _refuse(
                modeladmin,
                request,
                run,
                _(
                    "Run %(id)s was not resumed: it is %(status)s. Only failed or "
                    "cancelled runs can be resumed."
                )
                % {"id": run.pk, "status": _status_words(run)},
            )
        try:
            new = launching.resume(run.pk, launched_by=request.user.get_username())
        except (launching.LaunchRefused, specs.InvalidPipeline) as exc:
            # InvalidPipeline: a task or queue of the run's definition is gone since.
            for problem in getattr(exc, "problems", None) or [str(exc)]:
                text = _("Run %(id)s was not resumed: %(problem)s")
                modeladmin.message_user(
                    request, text % {"id": run.pk, "problem": problem}, messages.ERROR
                )
            return _run_page(modeladmin, run.pk)
        modeladmin.message_user(
            request,
            _(
                "Run %(id)s resumed as run %(new)s: only the steps that did not "
                "succeed run again."
            )
            % {"id": run.pk, "new": new.pk},
            messages.SUCCESS,
        )
        return _run_page(modeladmin, new.pk)

    return view


def dismiss_view(modeladmin: PipelineRunAdmin) -> View:
    """POST ``<id>/dismiss/``: a failed run stops holding the pipeline's launches."""

    def view(request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        allowed = modeladmin.has_resume_permission(request)
        run = _run_or_404(modeladmin, request, object_id, allowed)
        try:
            dismissed = api.dismiss(run.pk)
        except api.WrongRunState as exc:
            return _refuse(modeladmin, request, run, str(exc))
        if not dismissed:
            return _refuse(
                modeladmin,
                request,
                run,
                _("Run %(id)s was already dismissed; nothing changed.")
                % {"id": run.pk},
            )
        modeladmin.message_user(
            request,
            _(
                "Run %(id)s dismissed: it no longer holds the scheduled launches of "
                "pipeline %(name)s."
            )
            % {"id": run.pk, "name": repr(run.pipeline_name)},
            messages.SUCCESS,
        )
        return _run_page(modeladmin, run.pk)

    return view


def _status_words(run: PipelineRun) -> str:
    words = run.outcome
    if run.cancel_requested and run.status in CANCELLABLE:
        words += _(" (cancel requested)")
    if run.dismissed:
        words += _(" (dismissed)")
    return words
