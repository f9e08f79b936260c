"""Import direction of the dev-only code: nothing outside tests/ imports ``tests``, and what ships in the image
(app/, workers/, sandbox/) never imports ``devstack`` (the image does not contain it: see .dockerignore)."""

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


def test_nothing_outside_tests_imports_tests() -> None:
    outside = [p for p in ROOT.rglob("*.py") if not SKIP & set(p.relative_to(ROOT).parts)]
    assert outside, "no Python files found outside tests/"
    offenders = [str(p.relative_to(ROOT)) for p in outside if "tests" in imported_packages(p)]
    assert offenders == []


@pytest.mark.parametrize("package", ["app", "workers", "sandbox"])
def test_shipped_code_never_imports_devstack(package: str) -> None:
    files = python_files(package)
    assert files
    offenders = [str(p.relative_to(ROOT)) for p in files if "devstack" in imported_packages(p)]
    assert offenders == []
