"""One version, read from pyproject.toml by the code, shown by the CLI, and released with a changelog entry."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from click.testing import CliRunner

from app.cli.commands import relay_cli
from app.platform.metrics import render
from app.platform.version import version

ROOT = Path(__file__).resolve().parents[2]


def test_the_code_reads_the_version_of_pyproject() -> None:
    with (ROOT / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"]["version"]
    assert version() == declared


def test_relay_version_prints_it_without_any_configuration() -> None:
    result = CliRunner().invoke(relay_cli, ["--version"], env={})
    assert result.exit_code == 0
    assert result.output.strip() == f"relay {version()}"


def test_the_changelog_has_an_unreleased_section_and_one_for_a_release_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    if not re.search(r"(dev|a|b|rc)\d*$", version()):
        assert f"## [{version()}] - " in changelog


def test_the_licence_is_apache_2() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]


def test_the_scrape_carries_the_version_as_a_label() -> None:
    body, _ = render()
    assert f'relay_build_info{{version="{version()}"}} 1.0' in body.decode()


def test_the_committed_api_document_carries_the_version() -> None:
    assert json.loads((ROOT / "app" / "web" / "openapi.json").read_text())["info"]["version"] == version()
