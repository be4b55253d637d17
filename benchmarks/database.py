"""The benchmark's own database: creation, migration, emptying and filling."""

from __future__ import annotations

from typing import Any

import MySQLdb
import psutil
import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connection, models
from django.db.models import Count

from benchmarks import tasks
from geartrain import bulk_enqueue
from geartrain.models import (
    Job,
    Schedule,
    ScheduleDependency,
    ScheduleFire,
    WorkerProcess,
)

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


def vendor() -> str:
    return str(connection.vendor)


def pg_conninfo() -> str:
    """Connection string of the benchmark database, for the plain psycopg reference."""
    db: dict[str, Any] = settings.DATABASES["default"]
    info = f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname={db['NAME']}"
    options = db.get("OPTIONS", {}).get("options")
    return f"{info} options='{options}'" if options else info


def sqlite_path() -> str:
    return str(settings.DATABASES["default"]["NAME"])


def ensure_postgres_database(name: str) -> None:
    """Create database ``name`` when it does not exist yet."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if found is None:
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_mysql_database(name: str) -> None:
    """Create database ``name`` on the MariaDB/MySQL server when it does not exist."""
    db: dict[str, Any] = settings.DATABASES["default"]
    conn = MySQLdb.connect(host=db["HOST"], port=int(db["PORT"]), user=db["USER"])
    try:
        conn.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4"
        )
    finally:
        conn.close()


def prepare() -> None:
    """Create (server databases) and migrate the benchmark database, then empty it."""
    name = str(settings.DATABASES["default"]["NAME"])
    if vendor() == "postgresql":
        ensure_postgres_database(name)
    elif vendor() == "mysql":
        ensure_mysql_database(name)
    call_command("migrate", verbosity=0, interactive=False)
    truncate()


def truncate() -> None:
    """Empty the job, worker and schedule tables between phases.

    Schedule fires refer to jobs, so they go too (first, for MariaDB's foreign keys).
    """
    owners = (ScheduleFire, ScheduleDependency, Schedule, Job, WorkerProcess)
    tables = [model._meta.db_table for model in owners]
    with connection.cursor() as cursor:
        if vendor() == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")
        if vendor() == "sqlite":
            marks = ", ".join(["%s"] * len(tables))
            sql = f"DELETE FROM sqlite_sequence WHERE name IN ({marks})"
            cursor.execute(sql, tables)
    connection.close()


def analyze(model: type[models.Model] = Job) -> None:
    """Refresh the planner statistics of ``model``'s table (default: jobs)."""
    keyword = "ANALYZE TABLE" if vendor() == "mysql" else "ANALYZE"
    with connection.cursor() as cursor:
        cursor.execute(f"{keyword} {model._meta.db_table}")
        if vendor() == "mysql":
            cursor.fetchall()  # ANALYZE TABLE returns a result set


def fill(count: int) -> None:
    """Empty the queue and enqueue ``count`` no-op jobs."""
    truncate()
    bulk_enqueue(tasks.noop, [((), {})] * count)
    analyze()
    connection.close()


def status_counts() -> dict[str, int]:
    rows = Job.objects.order_by().values_list("status").annotate(n=Count("id"))
    return {str(status): int(n) for status, n in rows}


def count(status: str) -> int:
    return Job.objects.filter(status=status).count()


def transactions() -> int | None:
    """Transactions of the benchmark database so far (PostgreSQL).

    Backends report their counts at exit or at most once a second, so read this a
    little after the processes being measured ended.
    """
    if vendor() != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        row: Any = cursor.fetchone()
    connection.close()
    return int(row[0])


def postmaster_pid() -> int | None:
    """Pid of the local PostgreSQL server; None for SQLite or a server out of sight."""
    if vendor() != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row: Any = cursor.fetchone()
    connection.close()
    try:
        return int(psutil.Process(int(row[0])).ppid())
    except psutil.Error:
        return None


def server_version() -> str:
    with connection.cursor() as cursor:
        if vendor() == "postgresql":
            cursor.execute("SHOW server_version")
        elif vendor() == "mysql":
            cursor.execute("SELECT VERSION()")
        else:
            cursor.execute("SELECT sqlite_version()")
        row: Any = cursor.fetchone()
    return str(row[0])
