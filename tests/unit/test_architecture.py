"""The code's shape, checked: which package may import which, no import cycles in the core, small modules, classes
and functions (docs/architecture.md says why).

- ``app/`` is split into packages in one order, bottom to top (PACKAGE_ORDER): a package imports only those below
  it; ``app/__init__.py`` (create_app) and ``app/wsgi.py`` sit on top. The one exception: the composition root's
  type, ``app.services.Services``, imported under ``if TYPE_CHECKING:`` for annotations, anywhere.
- The core (``app/``) is shared by the web and the workers, so it never imports ``workers``.
- Nothing outside ``tests/`` imports ``tests`` (the local stack for tests, demo and bench lives in ``devstack/``).

Imports inside functions count like those at the top of a module: they are still a dependency, only a later one.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("app", "workers")
MAX_FUNCTION_LINES = {"app": 60, "workers": 60, "sandbox": 80}
MAX_MODULE_LINES = 500
MAX_CLASS_METHODS = 25
NOT_PROJECT_CODE = {".venv", ".git", "tests", ".demo", ".bench", "node_modules"}

# Bottom to top; a package may import those before it only. Packages in one tuple are peers: neither imports the
# other. "app" is app/__init__.py (create_app) and app/wsgi.py: the top, free to import any of them.
PACKAGE_ORDER: tuple[tuple[str, ...], ...] = (
    ("app.platform",),
    ("app.twilio",),
    ("app.jobs",),
    ("app.feeds",),
    ("app.bucket",),
    ("app.erasure", "app.lake"),
    ("app.services",),
    ("app.web", "app.cli"),
    ("app",),
)
RANK = {package: rank for rank, peers in enumerate(PACKAGE_ORDER) for package in peers}
TYPE_ONLY_ANYWHERE = ("app.services",)  # the composition root's type, for annotations (under TYPE_CHECKING)


@dataclass(frozen=True)
class Import:
    name: str  # the module, and for ``from m import x`` also ``m.x`` (x may be a module)
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``: never executed, annotations only


def python_files(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> list[Import]:
    """Every absolute import in the file, at any depth (functions, classes, branches)."""
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, type_only) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(Import(node.module, node.lineno, type_only))
            found.extend(Import(f"{node.module}.{alias.name}", node.lineno, type_only) for alias in node.names)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(path.read_text(), filename=str(path)), False)
    return found


def imported_modules(path: Path) -> set[str]:
    return {imp.name for imp in imports(path)}


def package_of(module: str) -> str | None:
    """The PACKAGE_ORDER entry a module of app/ belongs to (``app`` for app/__init__.py, app/wsgi.py and names
    imported from ``app`` itself); None outside app/."""
    parts = module.split(".")
    if parts[0] != "app":
        return None
    return f"app.{parts[1]}" if len(parts) > 1 and f"app.{parts[1]}" in RANK else "app"


def _may_import(importer: str, imported: str) -> bool:
    return importer == imported or RANK[imported] < RANK[importer]


def test_the_package_order_lists_every_package_of_app() -> None:
    packages = {p.name for p in (ROOT / "app").iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in (ROOT / "app").glob("*.py")} - {"__init__", "wsgi"}
    assert {f"app.{name}" for name in packages | modules} == set(RANK) - {"app"}


def test_packages_import_only_those_below_them() -> None:
    offenders = []
    for path in python_files("app"):
        importer = package_of(module_name(path))
        assert importer is not None
        for imp in imports(path):
            imported = package_of(imp.name)
            if imported is None or _may_import(importer, imported):
                continue
            if imp.type_only and imp.name.startswith(TYPE_ONLY_ANYWHERE):
                continue
            offenders.append(f"{path.relative_to(ROOT)}:{imp.line} ({importer}) imports {imported}")
    order = " -> ".join(" / ".join(peers) for peers in PACKAGE_ORDER)
    assert not offenders, f"package order, bottom to top: {order}\n" + "\n".join(sorted(set(offenders)))


def test_the_core_never_imports_the_workers() -> None:
    offenders = {
        module_name(path): sorted(n for n in imported_modules(path) if n == "workers" or n.startswith("workers."))
        for path in python_files("app")
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def test_nothing_outside_tests_imports_tests() -> None:
    outside = [p for p in ROOT.rglob("*.py") if not NOT_PROJECT_CODE & set(p.relative_to(ROOT).parts)]
    assert outside, "no Python files found outside tests/"
    offenders = {
        str(path.relative_to(ROOT)): sorted(n for n in imported_modules(path) if n == "tests" or n.startswith("tests."))
        for path in outside
    }
    assert {m: names for m, names in offenders.items() if names} == {}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for dep in sorted(graph[name]):
            if dep not in index:
                connect(dep)
                low[name] = min(low[name], low[dep])
            elif dep in stack:
                low[name] = min(low[name], index[dep])
        if low[name] == index[name]:
            component = []
            while (top := stack.pop()) != name:
                component.append(top)
            if component:
                found.append(sorted([name, *component]))

    for name in sorted(graph):
        if name not in index:
            connect(name)
    return found


def test_the_core_has_no_import_cycles() -> None:
    modules = {module_name(p): p for p in python_files("app")}
    graph = {
        name: {imp.name for imp in imports(path) if not imp.type_only and imp.name in modules and imp.name != name}
        for name, path in modules.items()
    }
    cycles = _cycles(graph)
    assert not cycles, "import cycles (modules importing each other, directly or not):\n" + "\n".join(
        " <-> ".join(cycle) for cycle in cycles
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


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


def test_modules_stay_small() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in python_files(*PRODUCTION)
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines"


def test_classes_stay_small() -> None:
    big = {}
    for path in python_files(*PRODUCTION):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) for item in node.body)
                if methods > MAX_CLASS_METHODS:
                    big[f"{path.relative_to(ROOT)}::{node.name}"] = methods
    assert big == {}, f"classes over {MAX_CLASS_METHODS} methods"


# The modules that hold a Redis client: each owns the keys its docstring lists (docs/architecture.md); everything
# else goes through their methods. app/services.py builds the clients; queueing.py hands RQ its connection.
REDIS_OWNERS = {
    "app/platform/guess_limit.py",
    "app/platform/locks.py",
    "app/platform/metrics.py",
    "app/platform/queueing.py",
    "app/platform/quota.py",
    "app/twilio/account_states.py",
    "app/jobs/days.py",
    "app/jobs/marks.py",
    "app/jobs/store.py",
    "app/jobs/tokens.py",
    "app/feeds/store.py",
    "app/bucket/probe.py",
    "app/services.py",
    "app/web/console/sessions.py",
}
REDIS_USE = re.compile(
    r"redis\.Redis\(|redis\.\w*ConnectionPool|\.register_script\(|\.pipeline\(|\bself\.r\b|"
    r"\.(?:hset|hget|hgetall|hmget|hdel|hincrby|zadd|zrange|zrangebyscore|zrem|zscore|zcard|sadd|srem|smembers|"
    r"sismember|expire|ttl|incr|incrby|evalsha|scan_iter|flushall|mget)\("
)
KEY_LITERAL = re.compile(r"""["']ber:[a-z]""")  # the relay's keys (RQ's own are RQ's business)


def test_only_the_stores_touch_redis() -> None:
    users = {str(p.relative_to(ROOT)) for p in python_files("app") if REDIS_USE.search(p.read_text())}
    assert users - REDIS_OWNERS == set(), "Redis commands outside the stores: add a method to the owning store"


def test_tests_use_public_names_and_no_redis_keys() -> None:
    private, keys = [], []
    for path in python_files("tests"):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("app", "workers"):
                private += [f"{path.relative_to(ROOT)}: {a.name}" for a in node.names if a.name.startswith("_")]
        if path.name != "test_architecture.py":
            keys += [f"{path.relative_to(ROOT)}: {m.group()}" for m in KEY_LITERAL.finditer(source)]
    assert private == [], "tests import private names: test through the public interface"
    assert keys == [], "tests spell Redis keys: use the owning store's methods or key functions"
