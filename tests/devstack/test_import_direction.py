"""Import direction of the dev-only code: what ships in the image (app/, workers/, sandbox/) never imports
``devstack`` (the image does not contain it: see .dockerignore). That nothing outside tests/ imports ``tests`` is
checked with the rest of the code's shape, in tests/unit/test_architecture.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".git", "tests", ".demo", ".bench", "node_modules"}


def imported_packages(path: Path) -> set[str]:
    """Top-level package of every absolute import in the file (function-level imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts))


@pytest.mark.parametrize("package", ["app", "workers", "sandbox"])
def test_shipped_code_never_imports_devstack(package: str) -> None:
    files = python_files(package)
    assert files
    offenders = [str(p.relative_to(ROOT)) for p in files if "devstack" in imported_packages(p)]
    assert offenders == []
