"""Fixtures for the sandbox conformance tests: one real sandbox process per test module, reset per test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.sandbox_process import SandboxProcess
from tests.sandbox.receiver import WebhookReceiver

TODAY = "2026-11-10"  # pinned through the scenario, so EndDay may be at most 2026-11-08
SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "twilio_bulkexports_v1.json"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with SandboxProcess(log_path=log) as proc:
        yield proc


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    """Every test that uses the sandbox starts from a reset one with a pinned 'today'."""
    if "sb" in request.fixturenames:
        proc: SandboxProcess = request.getfixturevalue("sb")
        proc.reset()
        proc.set_scenario(today=TODAY)


@pytest.fixture
def api(sb: SandboxProcess) -> Iterator[requests.Session]:
    """A requests session with the account's Basic auth that does not follow redirects by default."""
    s = requests.Session()
    s.auth = sb.auth
    yield s
    s.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


@pytest.fixture(scope="session")
def spec() -> dict[str, Any] | None:
    """Twilio's OpenAPI file next to the repository, when present (cross-checks are skipped without it)."""
    if not SPEC_PATH.exists():
        return None
    return json.loads(SPEC_PATH.read_text())
