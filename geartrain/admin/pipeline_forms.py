"""Forms of the pipeline admin: stages and steps edited on the pipeline's own page.

Django has no nested inlines, so steps get their own formset on the pipeline page
(:class:`PipelineStepFormSet`), each step with a ``stage`` select limited to the
pipeline's saved stages. Saving them, and checking the saved definition, is
:mod:`geartrain.admin.pipeline_saving`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django import forms
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from geartrain.admin.schedule_forms import TimeZoneInput
from geartrain.conf import configured_queues
from geartrain.models import Pipeline, Stage, Step
from geartrain.models.schedule_rules import default_time_zone
from geartrain.pipelines import errors
from geartrain.pipelines import spec as specs
from geartrain.registry import registry

if TYPE_CHECKING:  # generic only in django-stubs
    _PipelineFormBase = forms.ModelForm[Pipeline]
    _StepFormBase = forms.ModelForm[Step]
    _StagesBase = forms.ModelMultipleChoiceField[Stage]
    _StageBase = forms.ModelChoiceField[Stage]
    _StageFormSetBase = forms.BaseInlineFormSet[Stage, Pipeline, forms.ModelForm[Stage]]
    _StepFormSetBase = forms.BaseModelFormSet[Step, forms.ModelForm[Step]]
else:
    _PipelineFormBase = _StepFormBase = forms.ModelForm
    _StagesBase = forms.ModelMultipleChoiceField
    _StageBase = forms.ModelChoiceField
    _StageFormSetBase = forms.BaseInlineFormSet
    _StepFormSetBase = forms.BaseModelFormSet

JSON_OBJECT_HINT = 'Write a JSON object such as {"day": "2024-01-31"}'


def json_kind(value: Any) -> str:
    """A word for the JSON type of ``value``, for error messages."""
    kinds = (
        (bool, "a boolean"),
        (str, "a string"),
        (list, "a list"),
        (dict, "an object"),
    )
    for kind, word in kinds:
        if isinstance(value, kind):
            return word
    return "null" if value is None else "a number"


def check_json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object, else a ``ValidationError`` naming its type."""
    if not isinstance(value, dict):
        raise forms.ValidationError(
            _("%(what)s must be a JSON object; got %(kind)s. %(hint)s.")
            % {"what": what, "kind": json_kind(value), "hint": JSON_OBJECT_HINT}
        )
    return value


def parse_arguments(text: str) -> dict[str, Any]:
    """Runtime arguments typed in the launch form: empty, or a JSON object."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise forms.ValidationError(
            _(
                "Runtime arguments are not valid JSON (%(error)s). %(hint)s, "
                "or leave the field empty."
            )
            % {"error": exc, "hint": JSON_OBJECT_HINT}
        ) from None
    return check_json_object(value, "Runtime arguments")


def _choices(
    values: Iterable[str], current: str, missing: str
) -> list[tuple[str, str]]:
    """Choices for ``values``; a stored value no longer offered stays selectable."""
    choices = [(v, v) for v in values]
    if current and current not in dict(choices):
        choices.insert(0, (current, f"{current} ({missing})"))
    return choices


class PipelineForm(_PipelineFormBase):
    """The pipeline's own fields; default arguments must be a JSON object."""

    class Meta:
        model = Pipeline
        fields = (
            "name",
            "description",
            "enabled",
            "overlap",
            "defaults",
            "cron",
            "cron_timezone",
        )
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "defaults": forms.Textarea(attrs={"rows": 3, "cols": 60}),
            "cron": forms.TextInput(attrs={"size": 30, "autocomplete": "off"}),
            "cron_timezone": TimeZoneInput(),
        }
        help_texts = {
            "defaults": _(
                "A JSON object of keyword arguments shared by the steps; runtime "
                "arguments given at launch override them."
            ),
            "cron_timezone": _(
                "The IANA zone the cron expression is read in (blank: TIME_ZONE)."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "cron_timezone" in self.fields:
            self.fields["cron_timezone"].required = False

    def clean_defaults(self) -> dict[str, Any]:
        return check_json_object(
            self.cleaned_data.get("defaults"), "Default runtime arguments"
        )

    def clean_cron_timezone(self) -> str:
        return str(self.cleaned_data.get("cron_timezone") or default_time_zone())


class StageChoiceField(_StagesBase):
    """Stages listed by name (they all belong to the pipeline being edited)."""

    def label_from_instance(self, obj: Stage) -> str:
        return obj.name


class StepStageField(_StageBase):
    """A step's stage, by name."""

    def label_from_instance(self, obj: Stage) -> str:
        return obj.name


def pipeline_stages(pipeline: Pipeline | None) -> QuerySet[Stage]:
    """The saved stages of ``pipeline`` (none for a pipeline not saved yet)."""
    if pipeline is None or pipeline.pk is None:
        return Stage.objects.none()
    return Stage.objects.using(pipeline._state.db).filter(pipeline=pipeline)


def depends_on_field() -> StageChoiceField:
    """The "runs after" checkboxes of a stage."""
    return StageChoiceField(
        queryset=Stage.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("runs after"),
        help_text=_("Stages of this pipeline; save a new stage before picking it."),
        error_messages={
            "invalid_choice": _(
                "Stage id %(value)s is not a stage of this pipeline. A stage can "
                "only run after stages of the same pipeline; pick one of them."
            )
        },
    )


def repeated_names(
    forms_: Iterable[forms.BaseForm], owner: Any, kind: str, owner_kind: str
) -> list[str]:
    """Problems for names given twice to the kept forms of one owner."""
    counts: Counter[tuple[str, str]] = Counter()
    for form in forms_:
        data = getattr(form, "cleaned_data", None) or {}
        if data.get("name") and not data.get("DELETE"):
            counts[(str(owner(data)), str(data["name"]))] += 1
    return [
        f"{kind.capitalize()} name {name!r} is used {count} times in {owner_kind} "
        f"{where!r}. Give each {kind} of a {owner_kind} its own name."
        for (where, name), count in counts.items()
        if count > 1
    ]


class StageFormSet(_StageFormSetBase):
    """Stages of a pipeline; "runs after" offers the pipeline's other stages."""

    def clean(self) -> None:
        problems = repeated_names(
            self.forms, lambda _data: self.instance.name, "stage", "pipeline"
        )
        if problems:
            raise forms.ValidationError(problems)
        super().clean()

    def add_fields(self, form: forms.ModelForm[Stage], index: int | None) -> None:
        super().add_fields(form, index)
        field = form.fields.get("depends_on")
        if isinstance(field, StageChoiceField):
            stages = pipeline_stages(self.instance).order_by("name")
            if form.instance.pk is not None:
                stages = stages.exclude(pk=form.instance.pk)
            field.queryset = stages


class StepForm(_StepFormBase):
    """A step: its task and queue are picked from what is configured."""

    stage = StepStageField(
        queryset=Stage.objects.none(),
        label=_("stage"),
        error_messages={
            "invalid_choice": _(
                "Stage id %(value)s is not a stage of this pipeline. Pick one of "
                "its stages (save a new stage first)."
            )
        },
    )
    task_path = forms.ChoiceField(
        label=_("task"),
        error_messages={
            "invalid_choice": _(
                "Task %(value)r is not registered. Pick one of the registered tasks."
            )
        },
    )
    priority = forms.IntegerField(
        label=_("priority"),
        initial=0,
        min_value=specs.PRIORITY_MIN,
        max_value=specs.PRIORITY_MAX,
    )
    weight = forms.DecimalField(
        label=_("weight"), initial=1, min_value=0, max_digits=12, decimal_places=5
    )

    class Meta:
        model = Step
        fields = (
            "stage",
            "name",
            "task_path",
            "kwargs",
            "queue",
            "priority",
            "weight",
            "critical",
            "enabled",
            "error_handler",
            "max_attempts",
            "timeout",
        )
        widgets = {
            "name": forms.TextInput(attrs={"size": 10}),
            "kwargs": forms.Textarea(attrs={"rows": 2, "cols": 20}),
            "max_attempts": forms.NumberInput(attrs={"style": "width: 4em"}),
            "timeout": forms.NumberInput(attrs={"style": "width: 5em"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields, step = self.fields, self.instance
        task = fields["task_path"]
        assert isinstance(task, forms.ChoiceField)  # noqa: S101 (declared above)
        task.choices = [
            ("", "---------"),
            *_choices(registry.paths(), step.task_path, "not registered"),
        ]
        queues = configured_queues()
        if queues is not None:
            fields["queue"] = forms.ChoiceField(
                label=_("queue"),
                initial="default",
                choices=_choices(queues, step.queue, "not configured"),
            )
        fields["error_handler"] = forms.ChoiceField(
            label=_("error handler"),
            required=False,
            choices=[
                ("", _("record the error")),
                *_choices(errors.registered(), step.error_handler, "not registered"),
            ],
        )
        fields["priority"].widget.attrs["style"] = "width: 4em"
        fields["weight"].widget.attrs["style"] = "width: 6em"

    def clean_kwargs(self) -> dict[str, Any]:
        return check_json_object(self.cleaned_data.get("kwargs"), "Keyword arguments")


class PipelineStepFormSet(_StepFormSetBase):
    """The steps of every stage of one pipeline, as the admin's inlines expect.

    Takes the inline formset's arguments (``instance``, ``save_as_new``) so the
    admin can treat it as one; the queryset is cut to the pipeline's steps.
    """

    def __init__(
        self,
        data: Any = None,
        files: Any = None,
        instance: Pipeline | None = None,
        save_as_new: bool = False,
        prefix: str | None = None,
        queryset: QuerySet[Step] | None = None,
        **kwargs: Any,
    ) -> None:
        self.instance = instance if instance is not None else Pipeline()
        self.save_as_new = save_as_new
        steps = queryset if queryset is not None else Step.objects.all()
        if self.instance.pk is None:
            steps = steps.none()
        else:
            steps = steps.filter(stage__pipeline=self.instance)
        steps = steps.select_related("stage").order_by("stage__name", "name", "pk")
        super().__init__(data, files, prefix=prefix, queryset=steps, **kwargs)

    @classmethod
    def get_default_prefix(cls) -> str:
        return "steps"

    def clean(self) -> None:
        # A read-only form's cleaned data is its initial data: the stage's id.
        problems = repeated_names(
            self.forms,
            lambda data: getattr(data.get("stage"), "name", data.get("stage")),
            "step",
            "stage",
        )
        if problems:
            raise forms.ValidationError(problems)
        super().clean()

    def add_fields(self, form: forms.ModelForm[Step], index: int | None) -> None:
        super().add_fields(form, index)
        field = form.fields.get("stage")
        if isinstance(field, StepStageField):
            field.queryset = pipeline_stages(self.instance).order_by("name")
