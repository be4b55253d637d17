"""What geartrain's admin pages share.

:class:`ReadOnlyAdmin`: no add, no change form edits. :class:`RollbackAdmin`: a change
form saved in one transaction, rolled back and shown again with the problems when a
rule that needs the saved rows (a pipeline's DAG, schedule dependency cycles) fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

from geartrain.conf import get_settings

if TYPE_CHECKING:  # ModelAdmin is generic only in django-stubs

    class _ModelAdmin[M: Model](admin.ModelAdmin[M]): ...

else:

    class _ModelAdmin[M: Model](admin.ModelAdmin):
        pass


class ReadOnlyAdmin[M: Model](_ModelAdmin[M]):
    """Rows that record what happened (jobs, workers, runs, errors): view only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: M | None = None) -> bool:
        return False


PROBLEMS = "_geartrain_save_problems"


class SaveRejected(Exception):
    """The saved rows break rules; the admin rolls the save back."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class RollbackAdmin[M: Model](_ModelAdmin[M]):
    """Saves a change form in one transaction; :class:`SaveRejected` undoes it all.

    Raise :class:`SaveRejected` from ``save_model``/``save_related``: everything is
    rolled back and the same form is shown again, its problems above the fields.
    """

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        try:
            with transaction.atomic(using=get_settings().DATABASE):
                return super().changeform_view(
                    request, object_id, form_url, extra_context
                )
        except SaveRejected as rejected:
            setattr(request, PROBLEMS, rejected.problems)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(
        self,
        request: HttpRequest,
        obj: M | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm[M]]:
        base = super().get_form(request, obj, change, **kwargs)
        problems: list[str] = getattr(request, PROBLEMS, [])
        if not problems:
            return base

        class RejectedForm(base):  # type: ignore[valid-type,misc]
            def clean(self) -> dict[str, Any]:
                data: dict[str, Any] = super().clean()
                for problem in problems:
                    self.add_error(None, problem)
                return data

        return RejectedForm
