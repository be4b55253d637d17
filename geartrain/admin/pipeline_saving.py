"""Saving the pipeline admin's stage and step formsets, then checking the result.

Saving (:func:`save_stages`, :func:`save_steps`) happens in the admin's transaction;
:func:`definition_problems` then checks the whole saved definition, and the admin
rolls everything back (:class:`DefinitionRejected`) when it breaks a rule.
"""

from __future__ import annotations

from collections.abc import Collection

from geartrain.admin.base import SaveRejected
from geartrain.admin.pipeline_forms import PipelineStepFormSet, StageFormSet
from geartrain.conf import configured_queues
from geartrain.models import Pipeline, Stage
from geartrain.pipelines import launching
from geartrain.pipelines import spec as specs


class DefinitionRejected(SaveRejected):
    """The saved definition breaks rules; the admin rolls the save back."""


def save_stages(formset: StageFormSet, using: str) -> set[int]:
    """Save the stage formset, deletions first; returns the deleted stages' ids.

    A kept stage stops depending on a stage deleted by the same save.
    """
    formset.save(commit=False)
    gone = {obj.pk for obj in formset.deleted_objects}
    for obj in formset.deleted_objects:
        obj.delete(using=using)
    for form in formset.saved_forms:
        depends = form.cleaned_data.get("depends_on")
        if depends is not None:
            form.cleaned_data["depends_on"] = [s for s in depends if s.pk not in gone]
        form.instance.save(using=using)
    formset.save_m2m()
    return gone


def save_steps(
    formset: PipelineStepFormSet, gone: Collection[int], using: str
) -> list[str]:
    """Save the step formset; returns problems (steps left in deleted stages)."""
    formset.save(commit=False)
    problems = []
    for obj in formset.deleted_objects:
        if obj.stage_id not in gone:
            obj.delete(using=using)
    for form in formset.saved_forms:
        step = form.instance
        if step.stage_id in gone:
            problems.append(
                f"Step {step.name!r} is in stage {step.stage.name!r}, which this save "
                "deletes. Move the step to another stage, or delete it too."
            )
        else:
            step.save(using=using)
    return problems


def definition_problems(pipeline: Pipeline) -> list[str]:
    """Every rule the saved definition of ``pipeline`` breaks (empty when valid)."""
    through = Stage.depends_on.through.objects.using(pipeline._state.db)
    foreign = through.filter(from_stage__pipeline=pipeline).exclude(
        to_stage__pipeline=pipeline
    )
    problems = [
        f"Stage {edge.from_stage.name!r} depends on {edge.to_stage.name!r}, which "
        f"is not a stage of pipeline {pipeline.name!r}. Depend only on stages of the "
        "same pipeline."
        for edge in foreign.select_related("from_stage", "to_stage")
    ]
    try:
        specs.validate(
            pipeline.to_spec(),
            signatures=launching.signatures(),
            queues=configured_queues(),
        )
    except specs.InvalidPipeline as exc:
        problems += exc.problems
    return problems
