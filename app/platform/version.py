"""The relay's one version: ``[project] version`` in pyproject.toml, read here and nowhere else.

Why read the file rather than ``importlib.metadata``: the service runs from a source tree (the image copies
``app/`` and pyproject.toml, and nothing is pip-installed there), where no distribution metadata exists; an
installed copy (``pip install .``) reads its own metadata instead. Where both are missing, the version is
``0+unknown`` rather than an error: a version string must never stop the service.

Who shows it: ``relay --version``, the OpenAPI document's ``info.version`` (served to the admin token only) and
the ``relay_build_info`` metric. Anonymous answers (``/livez``, ``/readyz``, ``/health``, error pages) never
carry it: it would tell an attacker which advisories apply.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "bulkexport-relay"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
UNKNOWN = "0+unknown"


@cache
def version() -> str:
    """The running code's version (see the module docstring for where it comes from)."""
    try:
        with PYPROJECT.open("rb") as f:
            project = tomllib.load(f).get("project", {})
        if project.get("name") == DISTRIBUTION and isinstance(project.get("version"), str):
            return str(project["version"])
    except (OSError, tomllib.TOMLDecodeError):
        pass
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
