"""Django app configuration: wires checks, signal receivers and task discovery."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.utils.translation import gettext_lazy as _


class GeartrainConfig(AppConfig):
    """``geartrain``: background work for Django."""

    name = "geartrain"
    verbose_name = _("Background work")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from geartrain import backends, checks, conf, tasks
        from geartrain.registry import registry

        setting_changed.connect(conf.clear_cache, dispatch_uid="geartrain.conf")
        setting_changed.connect(
            tasks.clear_policy_cache, dispatch_uid="geartrain.tasks"
        )
        setting_changed.connect(
            backends.clear_policy_checks, dispatch_uid="geartrain.backends"
        )
        checks.register()
        registry.autodiscover()
