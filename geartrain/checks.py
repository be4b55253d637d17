"""System checks. Ids are listed in docs/reference/checks.md and never reused.

* ``geartrain.E001`` unknown key in ``GEARTRAIN``
* ``geartrain.E002`` bad value in ``GEARTRAIN``
* ``geartrain.E003`` bad queue name in a geartrain task backend (see backends.py)
* ``geartrain.E004`` ``GEARTRAIN['DATABASE']`` names no configured database
* ``geartrain.E005`` the database vendor is not supported
* ``geartrain.W001`` SQLite without ``"transaction_mode": "IMMEDIATE"``
* ``geartrain.W002`` SQLite without WAL journal mode in ``init_command``
* ``geartrain.W003`` no ``TASKS`` backend is geartrain's
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from geartrain import conf
from geartrain.conf import BACKEND_PATH


def register() -> None:
    """Register geartrain's checks (called from ``AppConfig.ready``)."""
    checks.register(check_settings, "geartrain")
    # Reads settings only (no query), so it runs with every `check`, not --database.
    checks.register(check_database, "geartrain")
    checks.register(check_backend_configured, "geartrain")


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``GEARTRAIN`` has only known keys with valid values."""
    raw = getattr(settings, "GEARTRAIN", {})
    if not isinstance(raw, dict):
        return [
            checks.Error(
                f"GEARTRAIN is a {type(raw).__name__}; it must be a dict.",
                hint="Set GEARTRAIN = {...} in your settings, or remove it.",
                id="geartrain.E002",
            )
        ]
    errors: list[checks.CheckMessage] = [
        checks.Error(
            f"GEARTRAIN has the unknown key {key!r}.",
            hint="Remove it, or fix its spelling; docs/reference/settings.md lists "
            "the keys.",
            id="geartrain.E001",
        )
        for key in conf.unknown_keys(raw)
    ]
    errors.extend(
        checks.Error(problem, hint="Fix the value in GEARTRAIN.", id="geartrain.E002")
        for problem in conf.value_problems(raw)
    )
    return errors


def check_database(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """geartrain's database exists, is supported, and SQLite is set up for workers."""
    alias = conf.get_settings_from(conf.raw_settings()).DATABASE
    databases = settings.DATABASES
    if alias not in databases:
        return [
            checks.Error(
                f"GEARTRAIN['DATABASE'] is {alias!r}, which is not in DATABASES.",
                hint=f"Add {alias!r} to DATABASES or point GEARTRAIN['DATABASE'] at a "
                "configured alias.",
                id="geartrain.E004",
            )
        ]
    engine = str(databases[alias].get("ENGINE", ""))
    vendor = _vendor(engine)
    if vendor not in ("sqlite", "postgresql", "mysql"):
        return [
            checks.Error(
                f"Database {alias!r} uses the engine {engine!r}, which geartrain does "
                "not support.",
                hint="Use PostgreSQL, MariaDB/MySQL or SQLite.",
                id="geartrain.E005",
            )
        ]
    if vendor == "sqlite":
        options = databases[alias].get("OPTIONS", {})
        return _sqlite_warnings(
            alias, dict(options) if isinstance(options, dict) else {}
        )
    return []


def _vendor(engine: str) -> str:
    """The vendor of a database engine (PostGIS is "postgresql"), without connecting."""
    try:
        return str(import_module(f"{engine}.base").DatabaseWrapper.vendor)
    except (ImportError, AttributeError, ImproperlyConfigured):
        return engine.rsplit(".", 1)[-1]


def _sqlite_warnings(alias: str, options: dict[str, Any]) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        found.append(
            checks.Warning(
                f"SQLite database {alias!r} does not use "
                '"transaction_mode": "IMMEDIATE".',
                hint="Add it to DATABASES[...]['OPTIONS'] so that concurrent workers "
                "wait for the write lock instead of failing with 'database is locked'.",
                id="geartrain.W001",
            )
        )
    if "journal_mode=wal" not in str(options.get("init_command", "")).lower().replace(
        " ", ""
    ):
        found.append(
            checks.Warning(
                f"SQLite database {alias!r} does not switch to WAL journal mode.",
                hint='Add "init_command": "PRAGMA journal_mode=WAL;" to '
                "DATABASES[...]['OPTIONS'] so that readers never block the worker.",
                id="geartrain.W002",
            )
        )
    return found


def check_backend_configured(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """At least one ``TASKS`` backend is geartrain's."""
    tasks = getattr(settings, "TASKS", {})
    if any(v.get("BACKEND") == BACKEND_PATH for v in tasks.values()):
        return []
    return [
        checks.Warning(
            "No TASKS backend uses geartrain, so tasks will not be stored or run by "
            "geartrain workers.",
            hint=f"Set TASKS = {{'default': {{'BACKEND': '{BACKEND_PATH}'}}}}.",
            id="geartrain.W003",
        )
    ]
