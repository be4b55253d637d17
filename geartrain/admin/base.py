"""What geartrain's read-only admin pages share: no add, no change form edits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

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
