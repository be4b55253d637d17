"""The layer rule of ARCHITECTURE.md, checked on the source: imports point downward.

::

    faces      admin/   management/   backends (django.tasks)   contrib/
    services   pipelines/   scheduler/   worker/
    core       queue/   models/   registry   retry   serialization   conf   exceptions

Pure logic (retry back-off, serialization, cron arithmetic, DAG validation) imports
nothing from the database layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

import geartrain

PACKAGE = Path(geartrain.__file__).resolve().parent
REPO = PACKAGE.parent

FACES = (
    "geartrain.admin",
    "geartrain.management",
    "geartrain.backends",
    "geartrain.contrib",
)
SERVICES = ("geartrain.worker", "geartrain.pipelines", "geartrain.scheduler")
CORE_FILES = (
    "registry.py",
    "retry.py",
    "serialization.py",
    "conf.py",
    "exceptions.py",
    "dag.py",
)
CORE_PACKAGES = ("queue", "models")
PURE_FILES = (
    "retry.py",
    "serialization.py",
    "scheduler/cron.py",
    "pipelines/spec.py",
    "dag.py",
)
PUBLIC = {"Postpone", "__version__", "bulk_enqueue", "task"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _eager_nodes(body: list[ast.stmt]) -> Iterable[ast.AST]:
    """Statements run at import time: no function bodies, no ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _eager_nodes(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _eager_nodes(
                    [c for c in children if isinstance(c, ast.stmt)]
                    + [
                        s
                        for h in children
                        if isinstance(h, ast.ExceptHandler)
                        for s in h.body
                    ]
                )


def imports_of(path: Path, *, eager_only: bool = False, name: str = "") -> set[str]:
    """Modules ``path`` imports (``from a import b`` yields ``a`` and ``a.b``).

    With ``eager_only``, only the imports that run when the module is imported.
    ``name`` is the module's dotted name (default: from its place in the repository).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    nodes = _eager_nodes(tree.body) if eager_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def offending(imports: Iterable[str], prefixes: Iterable[str]) -> list[str]:
    prefixes = tuple(prefixes)
    return sorted(
        i for i in imports if any(i == p or i.startswith(p + ".") for p in prefixes)
    )


def core_files() -> list[Path]:
    files = [PACKAGE / name for name in CORE_FILES]
    for package in CORE_PACKAGES:
        files.extend(sorted((PACKAGE / package).rglob("*.py")))
    return files


def test_the_source_tree_is_where_the_test_expects_it():
    assert (PACKAGE / "__init__.py").exists()
    assert module_name(PACKAGE / "queue" / "base.py") == "geartrain.queue.base"
    assert module_name(PACKAGE / "models" / "__init__.py") == "geartrain.models"
    assert all(path.exists() for path in core_files())


def test_import_parsing(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "import os.path\n"
        "from django.db import models\n"
        "if TYPE_CHECKING:\n"
        "    from geartrain.backends import bulk_enqueue\n"
        "try:\n"
        "    import json\n"
        "except ImportError:\n"
        "    import simplejson\n"
        "def later():\n"
        "    from geartrain.worker import child\n"
    )
    every = {
        "typing", "typing.TYPE_CHECKING", "os.path", "django.db", "django.db.models",
        "geartrain.backends", "geartrain.backends.bulk_enqueue", "json", "simplejson",
        "geartrain.worker", "geartrain.worker.child",
    }  # fmt: skip

    assert _imports_outside_repo(probe) == every
    assert _imports_outside_repo(probe, eager_only=True) == every - {
        "geartrain.backends",
        "geartrain.backends.bulk_enqueue",
        "geartrain.worker",
        "geartrain.worker.child",
    }


def _imports_outside_repo(path: Path, *, eager_only: bool = False) -> set[str]:
    return imports_of(path, eager_only=eager_only, name="geartrain.queue.probe")


def test_relative_imports_are_resolved(tmp_path):
    probe = tmp_path / "rel.py"
    probe.write_text(
        "from . import base\nfrom ..worker import child\nfrom .. import conf\n"
    )

    assert _imports_outside_repo(probe) == {
        "geartrain.queue",
        "geartrain.queue.base",
        "geartrain.worker",
        "geartrain.worker.child",
        "geartrain",
        "geartrain.conf",
    }


@pytest.mark.parametrize(
    "path", core_files(), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_core_never_imports_upper_layers(path):
    bad = offending(imports_of(path), (*FACES, "geartrain.worker"))

    assert bad == [], f"{path.relative_to(REPO)} imports {bad}"


@pytest.mark.parametrize(
    "path",
    [p for p in source_files() if module_name(p).startswith(SERVICES)],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_services_never_import_faces(path):
    bad = offending(imports_of(path), FACES)

    assert bad == [], f"{path.relative_to(REPO)} imports {bad}"


def _closure(start: Path) -> dict[str, set[str]]:
    """Imports of ``start`` and of every geartrain module importing it loads."""
    files = {module_name(p): p for p in source_files()}
    seen: dict[str, set[str]] = {}
    todo = [module_name(start)]
    while todo:
        name = todo.pop()
        if name in seen or name not in files:
            continue
        path = files[name]
        seen[name] = imports_of(path, eager_only=path != start)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(i for i in seen[name] if i.startswith("geartrain"))
    return seen


@pytest.mark.parametrize("relative", PURE_FILES)
def test_pure_modules_import_nothing_from_the_database_layer(relative):
    path = PACKAGE / relative
    if not path.exists():
        pytest.skip(f"geartrain/{relative} does not exist yet")

    reached = _closure(path)

    bad = {name: offending(imps, ("django.db",)) for name, imps in reached.items()}
    assert {name: found for name, found in bad.items() if found} == {}


def test_pure_modules_load_without_django_configured():
    present = [
        module_name(PACKAGE / relative)
        for relative in PURE_FILES
        if (PACKAGE / relative).exists()
    ]
    code = (
        "import sys\n"
        f"for name in {present!r}:\n"
        "    __import__(name)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('django.db'))\n"
        "print(','.join(loaded))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_importing_geartrain_imports_no_django():
    code = (
        "import sys, geartrain\n"
        "print(geartrain.__version__)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))\n"
    )

    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [geartrain.__version__, "[]"]


# The public API -----------------------------------------------------------------------


def _lazy_names() -> set[str]:
    """Names that ``geartrain.__getattr__`` answers (``if name == "…"`` branches)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            for test in ast.walk(node):
                if (
                    isinstance(test, ast.Compare)
                    and isinstance(test.left, ast.Name)
                    and test.left.id == "name"
                ):
                    names.update(
                        c.value
                        for c in test.comparators
                        if isinstance(c, ast.Constant) and isinstance(c.value, str)
                    )
    return names


def _type_checking_names() -> set[str]:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    names.update(a.asname or a.name for a in stmt.names)
    return names


def test_all_lists_exactly_the_public_names():
    assert set(geartrain.__all__) == PUBLIC
    assert len(geartrain.__all__) == len(PUBLIC)
    assert list(geartrain.__all__) == sorted(geartrain.__all__)
    assert _lazy_names() == PUBLIC - {"__version__"}
    assert _type_checking_names() == PUBLIC - {"__version__"}


def test_every_public_name_resolves_to_its_object():
    from geartrain.backends import bulk_enqueue
    from geartrain.exceptions import Postpone
    from geartrain.tasks import task

    assert geartrain.task is task
    assert geartrain.bulk_enqueue is bulk_enqueue
    assert geartrain.Postpone is Postpone
    assert isinstance(geartrain.__version__, str)

    namespace: dict[str, object] = {}
    exec("from geartrain import *", namespace)  # noqa: S102 - checks __all__ itself
    assert set(namespace) - {"__builtins__"} == PUBLIC


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError) as info:
        _ = geartrain.no_such_name

    assert str(info.value) == "module 'geartrain' has no attribute 'no_such_name'"
