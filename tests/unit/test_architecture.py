"""The code's shape, checked: which layer may import which, no import cycles in the core, short functions.

The core (``app/``) is shared by the web and the workers, so it never imports ``workers``; nothing outside
``tests/`` imports ``tests`` (the local stack for tests, demo and bench lives in ``devstack/``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("app", "workers")
MAX_FUNCTION_LINES = {"app": 60, "workers": 60, "sandbox": 80}


def python_files(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def imported_modules(path: Path, module_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_the_core_never_imports_the_workers() -> None:
    offenders = {
        module_name(path): sorted(n for n in imported_modules(path) if n == "workers" or n.startswith("workers."))
        for path in python_files("app")
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_nothing_outside_tests_imports_tests() -> None:
    top_level = [p for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists() and p.name != "tests"]
    offenders = {
        module_name(path): sorted(n for n in imported_modules(path) if n == "tests" or n.startswith("tests."))
        for package in top_level
        for path in python_files(package.name)
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_the_core_has_no_import_cycles() -> None:
    modules = {module_name(p): p for p in python_files("app")}
    graph = {
        name: {m for m in imported_modules(path, module_level_only=True) if m in modules and m != name}
        for name, path in modules.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, f"import cycle: {' -> '.join([*visiting[visiting.index(name) :], name])}"
        visiting.append(name)
        for dep in graph[name]:
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


@pytest.mark.parametrize("package", sorted(MAX_FUNCTION_LINES))
def test_functions_fit_on_a_screen(package: str) -> None:
    limit = MAX_FUNCTION_LINES[package]
    long = []
    for path in python_files(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert long == [], f"functions over {limit} lines"
