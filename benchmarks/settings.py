"""Settings of the benchmark: the test settings, on a database of its own.

The database comes from ``GEARTRAIN_BENCH_DB`` (``sqlite``, ``postgresql`` or
``mysql``). It is never a test database: PostgreSQL and MariaDB/MySQL use
``geartrain_bench`` (created by the benchmark when missing), SQLite the file
``/tmp/geartrain-bench.sqlite3``. geartrain runs with
its default settings (batch size 32, poll interval 0.5 s); only the task module is
added.

Experiment knobs (the default run leaves both alone, as a user's project would):

* ``GEARTRAIN_BENCH_CONN_MAX_AGE=none|<seconds>`` sets ``CONN_MAX_AGE`` (Django's
  default is 0);
* ``GEARTRAIN_BENCH_SYNC_COMMIT=off`` turns off PostgreSQL's ``synchronous_commit`` for
  the benchmark's connections, which takes the disk's fsync time out of every commit
  (a VM's disk is slow; a production server's is usually not).
"""

from __future__ import annotations

import os
from typing import Any

from tests.settings import (
    ALLOWED_HOSTS,
    DEBUG,
    DEFAULT_AUTO_FIELD,
    LOGGING,
    MIDDLEWARE,
    ROOT_URLCONF,
    SECRET_KEY,
    STATIC_URL,
    TEMPLATES,
    TIME_ZONE,
    USE_TZ,
)
from tests.settings import INSTALLED_APPS as TEST_APPS

BENCH_DB = os.environ.get("GEARTRAIN_BENCH_DB", "sqlite")
# GEARTRAIN_BENCH_NAME gives a run a database (or SQLite file) of its own, so that two
# benchmarks on one machine never empty each other's tables.
_NAME = os.environ.get("GEARTRAIN_BENCH_NAME", "")
SQLITE_FILE = f"/tmp/{_NAME or 'geartrain-bench'}.sqlite3"  # noqa: S108
DB_NAME = _NAME or "geartrain_bench"  # PostgreSQL and MariaDB/MySQL

_db: dict[str, Any]
if BENCH_DB == "postgresql":
    _db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DB_NAME,
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
    }
    if os.environ.get("GEARTRAIN_BENCH_SYNC_COMMIT") == "off":
        _db["OPTIONS"] = {"options": "-c synchronous_commit=off"}
elif BENCH_DB == "mysql":
    _db = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": DB_NAME,
        "USER": "root",
        "HOST": "127.0.0.1",
        "PORT": "3306",
        "OPTIONS": {"charset": "utf8mb4"},
    }
elif BENCH_DB == "sqlite":
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_FILE,
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
else:
    raise ValueError(
        f"GEARTRAIN_BENCH_DB is {BENCH_DB!r}; it must be 'sqlite', 'postgresql' "
        "or 'mysql'."
    )
_max_age = os.environ.get("GEARTRAIN_BENCH_CONN_MAX_AGE")
if _max_age:
    _db["CONN_MAX_AGE"] = None if _max_age == "none" else float(_max_age)
DATABASES = {"default": _db}

# The test suite's fixture tasks use queues the benchmark does not configure.
INSTALLED_APPS = [app for app in TEST_APPS if app != "tests.testapp"]
TASKS = {"default": {"BACKEND": "geartrain.backends.DatabaseBackend"}}
GEARTRAIN = {"TASK_MODULES": ["benchmarks.tasks"]}

__all__ = [
    "ALLOWED_HOSTS",
    "DATABASES",
    "DEBUG",
    "DEFAULT_AUTO_FIELD",
    "GEARTRAIN",
    "INSTALLED_APPS",
    "LOGGING",
    "MIDDLEWARE",
    "ROOT_URLCONF",
    "SECRET_KEY",
    "STATIC_URL",
    "TASKS",
    "TEMPLATES",
    "TIME_ZONE",
    "USE_TZ",
]
