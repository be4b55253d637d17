"""The pipeline admin: a pipeline, its stages and their steps edited on one page.

Saving checks the whole saved definition (cycles, unknown tasks, arguments, queues)
inside the save's transaction; a definition that breaks a rule is rolled back and the
form is shown again with each problem. "Launch now" starts a run by hand.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.checks import InlineModelAdminChecks
from django.contrib.admin.utils import quote, unquote
from django.core.checks import CheckMessage
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Model, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from geartrain.admin import pipeline_forms as pforms
from geartrain.admin import pipeline_saving as saving
from geartrain.admin.base import RollbackAdmin
from geartrain.admin.pages import pipeline_picture, run_badge
from geartrain.admin.schedule_pages import pipeline_schedule_text
from geartrain.conf import get_settings
from geartrain.exceptions import InvalidArguments
from geartrain.models import Pipeline, PipelineRun, Stage, Step, Trigger
from geartrain.pipelines import launching
from geartrain.pipelines import spec as specs

if TYPE_CHECKING:  # generic only in django-stubs
    _StageInlineBase = admin.TabularInline[Stage, Pipeline]
    _StepInlineBase = admin.TabularInline[Step, Pipeline]
else:
    _StageInlineBase = _StepInlineBase = admin.TabularInline

# What a launch raises for bad input: each is shown as an error message.
LAUNCH_ERRORS = (launching.LaunchRefused, specs.InvalidPipeline, InvalidArguments)
RECENT_RUNS = 5


def _db() -> str:
    return get_settings().DATABASE


class StageInline(_StageInlineBase):
    """A pipeline's stages and what each runs after."""

    model = Stage
    formset = pforms.StageFormSet
    fields = ("name", "depends_on")
    extra = 1
    classes = ("geartrain-inline",)
    verbose_name_plural = gettext_lazy("stages")

    def formfield_for_manytomany(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelMultipleChoiceField[Any] | None:
        if db_field.name == "depends_on":
            return pforms.depends_on_field()
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class _StepInlineChecks(InlineModelAdminChecks):
    """Steps point to a stage, not to the pipeline: skip the foreign-key check."""

    def _check_relation(
        self, obj: Any, parent_model: type[Model]
    ) -> list[CheckMessage]:
        return []

    def _check_exclude_of_parent_model(
        self, obj: Any, parent_model: type[Model]
    ) -> list[CheckMessage]:
        return []


class StepInline(_StepInlineBase):
    """Every step of every stage, with a stage select (Django has no nested inlines)."""

    model = Step
    form = pforms.StepForm
    fields = pforms.StepForm.Meta.fields
    extra = 1
    checks_class = _StepInlineChecks
    classes = ("geartrain-inline",)
    verbose_name_plural = gettext_lazy("steps")

    def get_formset(
        self, request: HttpRequest, obj: Pipeline | None = None, **kwargs: Any
    ) -> Any:
        kwargs.pop("fields", None)
        can_change = self.has_change_permission(request, obj)
        can_add = self.has_add_permission(request, obj)

        class GuardedStepForm(pforms.StepForm):
            def has_changed(self) -> bool:
                # As Django's inlines do: no edits without the permission for them.
                adding = self.instance._state.adding
                if (adding and not can_add) or (not adding and not can_change):
                    return False
                return super().has_changed()

        return forms.modelformset_factory(
            Step,
            form=GuardedStepForm,
            formset=pforms.PipelineStepFormSet,
            fields=self.fields,
            formfield_callback=partial(self.formfield_for_dbfield, request=request),
            extra=self.get_extra(request, obj),
            can_delete=self.can_delete and self.has_delete_permission(request, obj),
            **kwargs,
        )


class PipelineAdmin(RollbackAdmin[Pipeline]):
    """Pipelines: definition, DAG picture, recent runs and "Launch now"."""

    form = pforms.PipelineForm
    list_display = (
        "name",
        "enabled",
        "overlap",
        "stage_count",
        "last_run",
        "updated_at",
    )
    list_filter = ("enabled", "overlap")
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": ("name", "description", "enabled", "overlap")}),
        (gettext_lazy("Runtime"), {"fields": ("defaults",)}),
        (
            gettext_lazy("Schedule"),
            {"fields": ("cron", "cron_timezone", "cron_schedule")},
        ),
        (
            gettext_lazy("History"),
            {"fields": ("created_at", "updated_at"), "classes": ("collapse",)},
        ),
    )
    readonly_fields = ("created_at", "updated_at", "cron_schedule")
    inlines = (StageInline, StepInline)
    change_form_template = "admin/geartrain/pipeline/change_form.html"

    class Media:
        css: ClassVar[dict[str, tuple[str, ...]]] = {
            "all": ("geartrain/admin.css", "geartrain/pipelines.css")
        }

    # Permissions and queries ---------------------------------------------------------

    def has_launch_permission(self, request: HttpRequest) -> bool:
        """``geartrain.launch_pipeline``: the "Launch now" button."""
        return request.user.has_perm(f"{self.opts.app_label}.launch_pipeline")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Pipeline]:
        runs = PipelineRun.objects.filter(pipeline=OuterRef("pk")).order_by(
            "-created_at", "-id"
        )
        return (
            super()
            .get_queryset(request)
            .using(_db())
            .annotate(
                stages_count=Count("stages", distinct=True),
                last_run_id=Subquery(runs.values("id")[:1]),
                last_run_status=Subquery(runs.values("status")[:1]),
                last_run_failures=Subquery(runs.values("has_failures")[:1]),
            )
        )

    def get_inlines(
        self, request: HttpRequest, obj: Pipeline | None
    ) -> tuple[type[admin.options.InlineModelAdmin[Any, Any]], ...]:
        # Steps need saved stages, so a new pipeline gets its stages first.
        return (StageInline,) if obj is None else (StageInline, StepInline)

    # Saving: one transaction, rolled back when the definition breaks a rule ----------

    def save_model(
        self, request: HttpRequest, obj: Pipeline, form: Any, change: bool
    ) -> None:
        obj.save(using=_db())

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        gone: set[int] = set()
        problems: list[str] = []
        for formset in formsets:
            if isinstance(formset, pforms.StageFormSet):
                gone |= saving.save_stages(formset, _db())
            elif isinstance(formset, pforms.PipelineStepFormSet):
                problems += saving.save_steps(formset, gone, _db())
            else:  # pragma: no cover (no other inlines)
                self.save_formset(request, form, formset, change)
        problems += saving.definition_problems(form.instance)
        if problems:
            raise saving.DefinitionRejected(problems)

    def response_change(self, request: HttpRequest, obj: Pipeline) -> HttpResponse:
        if "_saveandlaunch" not in request.POST:
            return super().response_change(request, obj)
        if not self.has_launch_permission(request):
            raise PermissionDenied  # rolls the save back too
        self.message_user(
            request,
            _("The pipeline \u201c%(name)s\u201d was changed successfully.")
            % {"name": obj.name},
            messages.SUCCESS,
        )
        return self._launch(request, obj, {})

    # Launch ------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        launch = path(
            "<path:object_id>/launch/",
            self.admin_site.admin_view(self.launch_view),
            name="geartrain_pipeline_launch",
        )
        return [launch, *super().get_urls()]

    def launch_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST ``<id>/launch/``: start a run now (``geartrain.launch_pipeline``)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        allowed = self.has_launch_permission(request)
        if not (allowed and self.has_view_or_change_permission(request)):
            raise PermissionDenied
        pipeline = self.get_object(request, unquote(object_id))
        if pipeline is None:
            raise Http404(
                _("There is no pipeline with id %(id)r; it may have been deleted.")
                % {"id": object_id}
            )
        try:
            arguments = pforms.parse_arguments(request.POST.get("arguments", ""))
        except forms.ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return redirect(self._change_url(pipeline))
        return self._launch(request, pipeline, arguments)

    def _launch(
        self, request: HttpRequest, pipeline: Pipeline, arguments: dict[str, Any]
    ) -> HttpResponse:
        try:
            run = launching.launch(
                pipeline.name,
                arguments,
                trigger=Trigger.MANUAL,
                launched_by=request.user.get_username(),
            )
        except LAUNCH_ERRORS as exc:
            problems = getattr(exc, "problems", None) or [str(exc)]
            for problem in problems:
                self.message_user(request, problem, messages.ERROR)
            return redirect(self._change_url(pipeline))
        self.message_user(
            request,
            _("Pipeline %(name)s launched as run %(run)s.")
            % {"name": repr(pipeline.name), "run": run.pk},
            messages.SUCCESS,
        )
        if not request.user.has_perm(f"{self.opts.app_label}.view_pipelinerun"):
            return redirect(self._change_url(pipeline))
        return redirect(
            reverse(
                "admin:geartrain_pipelinerun_change",
                args=[quote(run.pk)],
                current_app=self.admin_site.name,
            )
        )

    def _change_url(self, pipeline: Pipeline) -> str:
        return reverse(
            "admin:geartrain_pipeline_change",
            args=[quote(pipeline.pk)],
            current_app=self.admin_site.name,
        )

    # The change page ---------------------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Pipeline | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            site = self.admin_site.name
            runs = reverse("admin:geartrain_pipelinerun_changelist", current_app=site)
            context.update(
                dag=pipeline_picture(obj),
                recent_runs=list(obj.runs.order_by("-created_at", "-id")[:RECENT_RUNS]),
                runs_url=f"{runs}?{urlencode({'pipeline_name': obj.name})}",
                show_launch=self.has_launch_permission(request),
                launch_url=reverse(
                    "admin:geartrain_pipeline_launch",
                    args=[quote(obj.pk)],
                    current_app=site,
                ),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # Columns -----------------------------------------------------------------------

    @admin.display(description=gettext_lazy("stages"), ordering="stages_count")
    def stage_count(self, obj: Pipeline) -> int:
        return int(getattr(obj, "stages_count", 0) or 0)

    @admin.display(description=gettext_lazy("schedule"))
    def cron_schedule(self, obj: Pipeline) -> SafeString | str:
        """The schedule kept from the cron field, with its next slot."""
        return pipeline_schedule_text(obj, self.admin_site.name)

    @admin.display(description=gettext_lazy("last run"))
    def last_run(self, obj: Pipeline) -> SafeString | str:
        pk = getattr(obj, "last_run_id", None)
        if pk is None:
            return "-"
        run = PipelineRun(
            pk=pk,
            status=getattr(obj, "last_run_status", ""),
            has_failures=bool(getattr(obj, "last_run_failures", False)),
        )
        url = reverse(
            "admin:geartrain_pipelinerun_change",
            args=[quote(pk)],
            current_app=self.admin_site.name,
        )
        return format_html('<a href="{}">#{}</a> {}', url, pk, run_badge(run))


__all__ = ["PipelineAdmin", "StageInline", "StepInline"]
