"""The registry of tasks that geartrain may run.

Only tasks found here ever run: a job stores a task *path*, and the worker looks the
path
up in this registry; it never imports a path read from the database. The registry is
filled at start-up (``AppConfig.ready``) by importing each installed app's ``tasks``
module and the modules in ``GEARTRAIN['TASK_MODULES']``, and collecting the ``Task``
objects they define.
"""

from __future__ import annotations

import importlib
import logging
import threading
from types import ModuleType

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from geartrain import compat
from geartrain.conf import get_settings
from geartrain.exceptions import UnknownTask

logger = logging.getLogger(__name__)


class Registry:
    """Map of task path (``module.function``) to its ``Task`` object."""

    def __init__(self) -> None:
        self._tasks: dict[str, compat.AnyTask] = {}
        self._lock = threading.Lock()
        self.discovered = False

    def register(self, task: compat.AnyTask) -> compat.AnyTask:
        """Add ``task``; a different function under the same path is an error."""
        path = task.module_path
        with self._lock:
            known = self._tasks.get(path)
            if known is not None and known.func is not task.func:
                raise ImproperlyConfigured(
                    f"Two different functions are registered as task {path!r}. "
                    f"Give one of them another name or module."
                )
            if known is None or known is not task:
                # Keep the most specific object: the one defined in its own module.
                self._tasks[path] = task
        return task

    def get(self, path: str) -> compat.AnyTask:
        """Return the task registered under ``path``.

        Raises:
            UnknownTask: when ``path`` is not registered.
        """
        try:
            return self._tasks[path]
        except KeyError:
            raise UnknownTask(path) from None

    def __contains__(self, path: object) -> bool:
        return path in self._tasks

    def paths(self) -> list[str]:
        """All registered task paths, sorted."""
        return sorted(self._tasks)

    def scan(self, module: ModuleType) -> int:
        """Register every ``Task`` defined at the top level of ``module``."""
        found = 0
        for value in list(vars(module).values()):
            if isinstance(value, compat.Task):
                self.register(value)
                found += 1
        return found

    def autodiscover(self) -> None:
        """Import every installed app's ``tasks`` module and the configured modules."""
        names = [f"{config.name}.tasks" for config in apps.get_app_configs()]
        for name in names:
            module = import_if_present(name)
            if module is not None:
                self.scan(module)
        modules = get_settings().TASK_MODULES
        if isinstance(modules, list | tuple):
            for name in modules:
                if isinstance(name, str) and name:
                    self.scan(importlib.import_module(name))
        self.discovered = True
        logger.debug("Registered tasks count=%s", len(self._tasks))


def import_if_present(name: str) -> ModuleType | None:
    """Import ``name``; only a missing module *itself* is ignored.

    An ImportError raised from inside an existing module (a missing dependency)
    propagates, so it is not silently hidden.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


registry = Registry()
