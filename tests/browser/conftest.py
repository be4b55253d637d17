"""Headless Chromium for the admin tests: the system chromium, never downloaded."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system Chromium; missing fails on CI and skips locally."""
    path = shutil.which("chromium")
    if path is None:
        reason = (
            "The browser tests need a 'chromium' executable on PATH (Debian: "
            "apt-get install chromium); none was found."
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture
def page(chromium_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh page in headless Chromium.

    Playwright's sync API runs an event loop in this thread, so Django would refuse
    ORM calls made by the test while the browser is open; allow them.
    """
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # Connections opened by the test while Playwright ran are not the ones
            # pytest-django closes; a leftover one keeps the test database in use.
            connections.close_all()
