"""Shared pytest configuration for the whole suite.

Database-server availability (skip locally, fail in CI) lives in
``tests/plugins/servers.py``.
"""

pytest_plugins = ["tests.plugins.servers"]
