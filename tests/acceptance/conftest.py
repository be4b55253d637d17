from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.workers import WorkerFactory


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


@pytest.fixture
def start_worker(marks: Path, transactional_db: None) -> Iterator[WorkerFactory]:
    """Start ``geartrain worker`` subprocesses; all are killed at the end."""
    factory = WorkerFactory(marks)
    try:
        yield factory
    finally:
        factory.stop_all()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/acceptance" in str(item.fspath):
            item.add_marker(pytest.mark.acceptance)
