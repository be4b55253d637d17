"""The server-availability plugin, with a real closed port and real pytest runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.servers import (
    MYSQL_START,
    POSTGRESQL_START,
    Server,
    accepts_connections,
    database_servers,
    unreachable_message,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_database_servers_reads_engine_host_and_port():
    databases = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "127.0.0.1",
            "PORT": "",
        },
        "other": {
            "ENGINE": "django.db.backends.mysql",
            "HOST": "127.0.0.1",
            "PORT": "3307",
        },
        "lite": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"},
        "socket": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": "/run/postgresql",
        },
    }
    assert database_servers(databases) == [
        Server("PostgreSQL", "127.0.0.1", 5432, POSTGRESQL_START),
        Server("MariaDB", "127.0.0.1", 3307, MYSQL_START),
    ]


def test_accepts_connections(listening_port, closed_port):
    assert accepts_connections(Server("X", "127.0.0.1", listening_port, "start x"))
    assert not accepts_connections(Server("X", "127.0.0.1", closed_port, "start x"))


def test_unreachable_message(monkeypatch):
    monkeypatch.setenv("GEARTRAIN_TEST_DB", "postgresql")
    server = Server("PostgreSQL", "127.0.0.1", 5999, POSTGRESQL_START)
    assert unreachable_message(server) == (
        "The PostgreSQL server at 127.0.0.1:5999 does not accept connections, and the "
        "tests with GEARTRAIN_TEST_DB=postgresql need it. Start it with: "
        "pg_ctlcluster --skip-systemctl-redirect 15 main start "
        "(./dev test starts it for you)."
    )


def run_pytest_against_closed_port(tmp_path: Path, port: int, ci: str | None):
    (tmp_path / "down_settings.py").write_text(
        'SECRET_KEY = "x"\nUSE_TZ = True\nINSTALLED_APPS = []\n'
        'DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql",'
        f' "NAME": "x", "HOST": "127.0.0.1", "PORT": "{port}"}}}}\n'
    )
    (tmp_path / "test_uses_db.py").write_text(
        "import pytest\n\n\n@pytest.mark.django_db\ndef test_db():\n    pass\n\n\n"
        "def test_pure():\n    pass\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update(
        PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}", GEARTRAIN_TEST_DB="postgresql"
    )
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-p", "tests.plugins.servers", "-rs"]
    command += ["-p", "no:cacheprovider", "--ds=down_settings", str(tmp_path)]
    return subprocess.run(
        command,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def expected_message(port: int) -> str:
    return unreachable_message(
        Server("PostgreSQL", "127.0.0.1", port, POSTGRESQL_START)
    )


def test_server_down_skips_database_tests_locally(tmp_path, closed_port, monkeypatch):
    monkeypatch.setenv("GEARTRAIN_TEST_DB", "postgresql")
    result = run_pytest_against_closed_port(tmp_path, closed_port, ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 skipped" in result.stdout
    assert expected_message(closed_port) in result.stdout


def test_server_down_fails_the_run_in_ci(tmp_path, closed_port, monkeypatch):
    monkeypatch.setenv("GEARTRAIN_TEST_DB", "postgresql")
    result = run_pytest_against_closed_port(tmp_path, closed_port, ci="true")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, (
        result.stdout + result.stderr
    )
    output = " ".join((result.stdout + result.stderr).split())
    assert (
        f"{expected_message(closed_port)} CI is set, so this fails the run instead of "
        "skipping the 1 test that uses the database."
    ) in output
