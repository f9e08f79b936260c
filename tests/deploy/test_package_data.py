"""`pip install .` must ship every file the code reads besides its modules (the API document, the console's
templates and static files): pyproject.toml's package-data globs match them all, and each glob matches something
(a glob left behind by a move ships nothing, and an installed relay then answers 500)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_data_covers_every_data_file_of_app() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["app"]
    matched = {path for pattern in globs for path in (ROOT / "app").glob(pattern)}
    assert all(any((ROOT / "app").glob(pattern)) for pattern in globs), globs
    data = {
        p
        for p in (ROOT / "app").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }
    assert sorted(str(p.relative_to(ROOT)) for p in data - matched) == []
