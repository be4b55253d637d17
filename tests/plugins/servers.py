"""Database servers the test run needs: skipped locally when down, a failure in CI.

``GEARTRAIN_TEST_DB=postgresql`` or ``mysql`` points ``tests/settings.py`` at a server
on loopback. When that server does not accept connections, every test that uses the
database is skipped with the reason below, so a laptop without MariaDB can still run
the rest; with the environment variable ``CI`` set, the run stops at once and fails
instead, because a CI run that skipped its database tests would prove nothing.

Tests that need another server (Redis for Celery, say) call ``require(REDIS)`` first.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass(frozen=True)
class Server:
    name: str
    host: str
    port: int
    start_command: str


POSTGRESQL_START = "pg_ctlcluster --skip-systemctl-redirect 15 main start"
MYSQL_START = (
    "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
)
REDIS = Server(
    "Redis",
    "127.0.0.1",
    6379,
    "redis-server --daemonize yes --bind 127.0.0.1 --port 6379"
    ' --save "" --appendonly no',
)
# Django ENGINE -> (server name, default port, start command on our machines).
ENGINES = {
    "django.db.backends.postgresql": ("PostgreSQL", 5432, POSTGRESQL_START),
    "django.db.backends.mysql": ("MariaDB", 3306, MYSQL_START),
}
DATABASE_FIXTURES = frozenset({"django_db_setup", "live_server"})


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def database_servers(databases: Mapping[str, Mapping[str, Any]]) -> list[Server]:
    """The TCP servers behind DATABASES (SQLite and socket paths have none)."""
    servers: list[Server] = []
    for config in databases.values():
        engine = ENGINES.get(str(config.get("ENGINE", "")))
        host = str(config.get("HOST") or "localhost")
        if engine is None or host.startswith("/"):
            continue
        name, default_port, start_command = engine
        server = Server(
            name, host, int(config.get("PORT") or default_port), start_command
        )
        if server not in servers:
            servers.append(server)
    return servers


def accepts_connections(server: Server, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((server.host, server.port), timeout=timeout):
            return True
    except OSError:
        return False


def unreachable_message(server: Server) -> str:
    test_db = os.environ.get("GEARTRAIN_TEST_DB", "sqlite")
    return (
        f"The {server.name} server at {server.host}:{server.port} does not accept "
        f"connections, and the tests with GEARTRAIN_TEST_DB={test_db} need it. "
        f"Start it with: {server.start_command} (./dev test starts it for you)."
    )


def ci_message(messages: Iterable[str], tests: int) -> str:
    counted = "1 test that uses" if tests == 1 else f"{tests} tests that use"
    return (
        f"{' '.join(messages)} CI is set, so this fails the run instead of skipping "
        f"the {counted} the database."
    )


def require(server: Server) -> None:
    """Skip the calling test (fail it in CI) unless ``server`` accepts connections."""
    if accepts_connections(server):
        return
    if in_ci():
        pytest.fail(ci_message([unreachable_message(server)], 1), pytrace=False)
    pytest.skip(unreachable_message(server))


def needs_database(item: pytest.Item) -> bool:
    if item.get_closest_marker("django_db") is not None:
        return True
    if DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    from django.test import TransactionTestCase

    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, TransactionTestCase)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from django.conf import settings

    if not settings.configured:
        return
    needing = [item for item in items if needs_database(item)]
    if not needing:
        return
    down = [
        s for s in database_servers(settings.DATABASES) if not accepts_connections(s)
    ]
    if not down:
        return
    messages = [unreachable_message(server) for server in down]
    if in_ci():
        pytest.exit(
            ci_message(messages, len(needing)), returncode=pytest.ExitCode.TESTS_FAILED
        )
    skip = pytest.mark.skip(reason=" ".join(messages))
    for item in needing:
        item.add_marker(skip)
