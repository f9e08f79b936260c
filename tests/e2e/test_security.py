"""Attacks from issue 12 against the real processes (Procfile gunicorn and rq worker, Redis, S3, the sandbox).

- A day whose download link points at a forbidden address: the day fails with a clear, permanent error and the
  address (a tripwire listener on 127.0.0.2) never sees a connection.
- Ids with a trailing newline (``$`` matched before it): the API process refuses them and nothing reaches Twilio.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
import requests

from devstack.sandbox_process import SandboxProcess
from tests.tripwire import Tripwire

pytestmark = pytest.mark.e2e

FORBIDDEN_HOST = "127.0.0.2"


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def sandbox_with_foreign_links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox on 127.0.0.1 whose day-file links name 127.0.0.2, where only a tripwire listens.

    ``--public-host`` renames every URL the sandbox hands out; its API is still reached on 127.0.0.1, so the
    control URL is pointed back there (the relay's TWILIO_BULKEXPORTS_BASE_URL comes from it too)."""
    log = tmp_path_factory.mktemp("sandbox-foreign-links") / "sandbox.log"
    with SandboxProcess(log_path=log, extra_args=["--public-host", FORBIDDEN_HOST]) as sb:
        sb.api_url = sb.api_url.replace(FORBIDDEN_HOST, "127.0.0.1")
        assert urlsplit(sb.files_url).hostname == FORBIDDEN_HOST
        yield sb


@pytest.fixture
def sandbox(sandbox_with_foreign_links: SandboxProcess) -> SandboxProcess:
    """Overrides tests/conftest.py's sandbox for this module (make_stack wires the relay to it)."""
    sandbox_with_foreign_links.reset()
    return sandbox_with_foreign_links


def test_a_day_link_to_a_forbidden_address_fails_the_day_and_is_never_contacted(make_stack, sandbox) -> None:
    files_port = urlsplit(sandbox.files_url).port
    assert files_port
    with Tripwire(FORBIDDEN_HOST, files_port) as wire:
        stack = make_stack(workers=1, DOWNLOAD_HOST_ALLOWLIST="127.0.0.1", COPY_RETRY_INTERVALS="1,1,1")
        r = stack.api("POST", "/api/jobs", json={"resource_type": "Calls", "start_day": day(3), "end_day": day(3)})
        assert r.status_code == 201, r.text
        view = stack.wait_job(r.json()["job_sid"], timeout=90)
        (failed,) = view["days"]
        assert view["state"] == "failed" and failed["state"] == "failed"
        assert failed["attempts"] == 1, "a refused link is permanent: no retries"
        assert "LinkRejectedError" in failed["error"]
        assert f"host {FORBIDDEN_HOST} is not in DOWNLOAD_HOST_ALLOWLIST" in failed["error"]
        assert "X-Amz-" not in failed["error"] and "?<redacted>" in failed["error"], "no presigned query"
        assert sandbox.downloads() == [], "nothing reached the sandbox's file server either"
        assert wire.connections == 0, wire.received


NEWLINE_SID = "JS" + "ab" * 16 + "\n"


def test_ids_with_a_trailing_newline_are_refused_by_the_api_process(make_stack, sandbox) -> None:
    stack = make_stack(workers=0)
    sid = quote(NEWLINE_SID, safe="")
    answers = {
        "show": stack.api("GET", f"/api/jobs/{sid}"),
        "cancel": stack.api("DELETE", f"/api/jobs/{sid}"),
        "requeue": stack.api("POST", f"/api/jobs/{sid}/requeue"),
        "track": stack.api("POST", "/api/jobs/track", json={"job_sid": NEWLINE_SID}),
        "submit": stack.api(
            "POST", "/api/jobs", json={"resource_type": "Calls", "start_day": day(3) + "\n", "end_day": day(3)}
        ),
    }
    for name, answer in answers.items():
        assert answer.status_code == 400, (name, answer.status_code, answer.text)
        assert answer.json()["error"] == "invalid request", name
    hook = requests.post(f"{stack.url}/hooks/bulkexport?token={quote('a' * 43 + chr(10))}", data={}, timeout=10)
    assert hook.status_code == 404
    assert sandbox.requests() == [], "nothing reached Twilio"
