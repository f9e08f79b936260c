"""Subaccount discovery never sends the parent's credentials to another host (issue 20, item 5): twilio-python
follows a list page's ``meta.next_page_url`` (or ``next_page_uri`` appended to the base URL) with the parent's
Basic auth, so discovery pages like BulkExports do: TWILIO_API_BASE_URL's origin and the list's own path only.

Real HTTP: the project's sandbox (paging followed), and a tiny Accounts API (tests/accounts_api_stub.py) whose next
page link names a tripwire listener on 127.0.0.2, which must never see a connection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.platform.config import load_settings
from app.twilio import client as twilio_api
from app.twilio.client import TwilioError, discover_subaccounts
from devstack.sandbox_process import SandboxProcess
from tests.accounts_api_stub import SUB_SID, AccountsApiStub
from tests.tripwire import Tripwire

PARENT = "AC" + "ab" * 16
PARENT_TOKEN = "secret-auth-token-0123456789"


def _settings(api_base_url: str, sid: str, token: str):
    env = {
        "TWILIO_ACCOUNT_SID": sid,
        "TWILIO_AUTH_TOKEN": token,
        "TWILIO_BULKEXPORTS_BASE_URL": api_base_url,
        "TWILIO_API_BASE_URL": api_base_url,
        "TWILIO_DISCOVER_SUBACCOUNTS": "true",
        "S3_KEY_TEMPLATE": "{prefix}{account_sid}/{resource_type}/{day}.json.gz",
        "PUBLIC_BASE_URL": "https://relay.example.com",
        "S3_BUCKET": "b",
    }
    return load_settings(env)


def test_the_sandboxs_pages_are_followed_on_the_configured_host(sandbox: SandboxProcess, monkeypatch) -> None:
    monkeypatch.setattr(twilio_api, "ACCOUNTS_PAGE_SIZE", 2)
    subs = {sandbox.add_subaccount(sandbox.account_sid, friendly_name=f"s{n}")["sid"] for n in range(3)}
    settings = _settings(sandbox.api_url, sandbox.account_sid, sandbox.auth_token)
    found = discover_subaccounts(settings, sandbox.account_sid, sandbox.account_sid, sandbox.auth_token)
    assert {a["sid"] for a in found} == subs
    pages = [r for r in sandbox.requests() if r.get("path") == "/2010-04-01/Accounts.json"]
    assert len(pages) == 2, "the parent and three subaccounts, two a page"


@pytest.fixture
def stub() -> Iterator[AccountsApiStub]:
    api = AccountsApiStub(PARENT)
    yield api
    api.close()


@pytest.mark.parametrize(
    ("field", "where"),
    [
        ("next_page_url", "tripwire"),  # meta.next_page_url: the SDK requests it as it is
        ("next_page_url", "https-same-host"),
        ("next_page_uri", "tripwire"),  # an absolute URL where Twilio puts a path
        ("next_page_uri", "scheme-relative"),
        ("next_page_uri", "other-path"),
    ],
)
def test_a_next_page_elsewhere_is_never_requested_and_discovery_fails_clearly(
    stub: AccountsApiStub, field: str, where: str
) -> None:
    port = stub.base.rsplit(":", 1)[1]
    with Tripwire("127.0.0.2") as wire:
        link = {
            "tripwire": f"{wire.url}/2010-04-01/Accounts.json?Page=1",
            "https-same-host": f"https://127.0.0.1:{port}/2010-04-01/Accounts.json?Page=1",
            "scheme-relative": f"//127.0.0.2:{wire.port}/2010-04-01/Accounts.json?Page=1",
            "other-path": "/2010-04-01/Accounts/AC00000000000000000000000000000000/Calls.json?Page=1",
        }[where]
        setattr(stub, field, link)
        settings = _settings(stub.base, PARENT, PARENT_TOKEN)
        with pytest.raises(TwilioError, match=r"list subaccounts: Twilio's next_page_url .*not followed"):
            discover_subaccounts(settings, PARENT, PARENT, PARENT_TOKEN)
        assert wire.connections == 0, wire.received
    assert len(stub.requests) == 1 and stub.requests[0]["authorization"].startswith("Basic ")


def test_a_next_page_on_the_configured_host_and_list_is_followed(stub: AccountsApiStub) -> None:
    stub.next_page_uri = "/2010-04-01/Accounts.json?PageSize=100&Page=1&PageToken=PT100"
    stub.pages = 3
    found = discover_subaccounts(_settings(stub.base, PARENT, PARENT_TOKEN), PARENT, PARENT, PARENT_TOKEN)
    assert [a["sid"] for a in found] == [SUB_SID] * 3  # the stub lists the same subaccount on every page
    assert [r["path"].split("?")[0] for r in stub.requests] == ["/2010-04-01/Accounts.json"] * 3
