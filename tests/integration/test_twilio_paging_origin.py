"""Paging never sends Twilio credentials to another host (issue 12: twilio-python follows ``meta.next_page_url``
anywhere, with Basic auth).

Two real-HTTP set-ups: the project's sandbox whose paging links name another host than the relay's
TWILIO_BULKEXPORTS_BASE_URL, and a tiny local API server whose ``next_page_url`` points at a tripwire listener on
127.0.0.2 (which must never see a connection, let alone an Authorization header).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.platform.config import load_settings
from app.twilio import client as twilio_api
from app.twilio.client import BulkExportsClient, TwilioError, origin_of
from devstack.procs import free_port
from devstack.sandbox_process import SandboxProcess
from tests.json_stub import JsonStub
from tests.tripwire import Tripwire


def _client(base_url: str, account_sid: str, auth_token: str) -> BulkExportsClient:
    env = {
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": auth_token,
        "TWILIO_BULKEXPORTS_BASE_URL": base_url,
        "PUBLIC_BASE_URL": "https://relay.example.com",
        "S3_BUCKET": "b",
    }
    return BulkExportsClient(load_settings(env))


def _days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


# -- origin comparison ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "same"),
    [
        ("https://bulkexports.twilio.com/v1/Exports/Calls/Days?Page=1", True),
        ("https://BulkExports.Twilio.com.:443/v1/x", True),
        ("http://bulkexports.twilio.com/v1/x", False),
        ("https://bulkexports.twilio.com:8443/v1/x", False),
        ("https://bulkexports.twilio.com.evil.example/v1/x", False),
        ("https://evil.example/v1/x", False),
        ("//evil.example/v1/x", False),
        ("/v1/x", False),
        ("https://bulkexports.twilio.com:99999/", False),
    ],
)
def test_origin_comparison(url: str, same: bool) -> None:
    assert (origin_of(url) == origin_of("https://bulkexports.twilio.com")) is same


# -- the sandbox ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_named_localhost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox bound on 127.0.0.1 whose links (paging included) name the host "localhost"."""
    log = tmp_path_factory.mktemp("sandbox-localhost") / "sandbox.log"
    with SandboxProcess(log_path=log, extra_args=["--public-host", "localhost"]) as sb:
        yield sb


def _completed_job(sandbox: SandboxProcess, client: BulkExportsClient) -> None:
    job = client.create_job(
        "Calls", _days_ago(12), _days_ago(10), "paging", f"http://127.0.0.1:{free_port()}/h", "POST"
    )
    sandbox.complete(job.job_sid)


def _list_day_requests(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests() if r.get("path") == "/v1/Exports/Calls/Days"]


def test_sandbox_paging_on_the_configured_host_is_followed(sandbox: SandboxProcess, monkeypatch) -> None:
    monkeypatch.setattr(twilio_api, "LIST_DAYS_PAGE_SIZE", 2)
    client = _client(sandbox.api_url, sandbox.account_sid, sandbox.auth_token)
    _completed_job(sandbox, client)
    days = [f.day for f in client.list_days("Calls")]
    assert sorted(days) == [_days_ago(12), _days_ago(11), _days_ago(10)]
    assert len(_list_day_requests(sandbox)) == 2, "two pages of two"


def test_sandbox_paging_to_another_host_is_refused_before_any_request(
    sandbox_named_localhost: SandboxProcess, monkeypatch
) -> None:
    sandbox = sandbox_named_localhost
    sandbox.reset()
    monkeypatch.setattr(twilio_api, "LIST_DAYS_PAGE_SIZE", 2)
    port = origin_of(sandbox.api_url)[2]  # type: ignore[index]
    client = _client(f"http://127.0.0.1:{port}", sandbox.account_sid, sandbox.auth_token)
    _completed_job(sandbox, client)
    pages = client.list_days("Calls")
    first_page = [next(pages).day, next(pages).day]
    with pytest.raises(TwilioError, match=r"next_page_url points at localhost.*not followed"):
        next(pages)
    assert len(first_page) == 2
    assert len(_list_day_requests(sandbox)) == 1, "the second page (at 'localhost') was never requested"


# -- a tiny API server pointing at a tripwire -----------------------------------------------------------------


class _PagingApi:
    """Answers every ListDay with one day and ``next_page_url`` = whatever the test sets; records each request."""

    def __init__(self) -> None:
        self.next_page_url: str | None = None
        self._server = JsonStub(self._answer, name="paging-api")
        self.base = self._server.base
        self.requests = self._server.requests

    def _answer(self, path: str) -> dict[str, Any]:
        return {
            "days": [{"day": _days_ago(10), "size": 10, "create_date": _days_ago(9), "resource_type": "Calls"}],
            "meta": {"page": 0, "page_size": 1, "key": "days", "next_page_url": self.next_page_url},
        }

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def paging_api() -> Iterator[_PagingApi]:
    api = _PagingApi()
    yield api
    api.close()


ACCOUNT = "AC" + "ab" * 16


@pytest.mark.parametrize("where", ["other-address", "other-port", "https-same-host"])
def test_a_foreign_next_page_url_is_never_contacted_and_never_gets_credentials(
    paging_api: _PagingApi, where: str
) -> None:
    port = int(paging_api.base.rsplit(":", 1)[1])
    with Tripwire("127.0.0.2") if where != "other-port" else Tripwire("127.0.0.1") as wire:
        target = {
            "other-address": f"{wire.url}/v1/Exports/Calls/Days?Page=1",
            "other-port": f"{wire.url}/v1/Exports/Calls/Days?Page=1",
            "https-same-host": f"https://127.0.0.1:{port}/v1/Exports/Calls/Days?Page=1",
        }[where]
        paging_api.next_page_url = target
        client = _client(paging_api.base, ACCOUNT, "secret-auth-token-0123456789")
        with pytest.raises(TwilioError, match="not followed"):
            list(client.list_days("Calls"))
        assert wire.connections == 0, wire.received
    assert len(paging_api.requests) == 1 and paging_api.requests[0]["authorization"].startswith("Basic ")


def test_a_next_page_url_on_the_configured_origin_is_followed(paging_api: _PagingApi) -> None:
    paging_api.next_page_url = f"{paging_api.base}/v1/Exports/Calls/Days?Page=1&PageToken=PT1"
    client = _client(paging_api.base, ACCOUNT, "secret-auth-token-0123456789")
    pages = client.list_days("Calls")
    assert [next(pages).day for _ in range(3)] == [_days_ago(10)] * 3  # the server pages forever: take three
    assert len(paging_api.requests) == 3
