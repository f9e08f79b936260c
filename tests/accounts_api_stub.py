"""A tiny Accounts API (2010-04-01) for paging attacks: every ``GET /2010-04-01/Accounts.json`` answers one page
listing the caller and one subaccount, with whatever next-page link a test sets (``next_page_uri`` as Twilio's 2010
API has it, or a ``meta.next_page_url`` the SDK prefers when present). It records every request (path and
Authorization header) so a test can show the parent's credentials went nowhere else."""

from __future__ import annotations

from typing import Any

from tests.json_stub import JsonStub

SUB_SID = "AC" + "5b" * 16
SUB_TOKEN = "f" * 32


class AccountsApiStub:
    def __init__(self, parent_sid: str) -> None:
        self.parent_sid = parent_sid
        self.next_page_uri: str | None = None
        self.next_page_url: str | None = None  # sent as meta.next_page_url when set
        self.pages = 0  # > 0: the page numbered ``pages`` (from 1) is the last, it has no next page link
        self._server = JsonStub(self._answer, name="accounts-api-stub")
        self.base = self._server.base

    @property
    def requests(self) -> list[dict[str, str]]:
        """Every request so far: path and Authorization header."""
        return self._server.requests

    def _answer(self, path: str) -> dict[str, Any]:
        return self.page(last=0 < self.pages <= len(self._server.requests))

    def page(self, last: bool = False) -> dict[str, Any]:
        accounts = [self._account(self.parent_sid, self.parent_sid, "Parent"), self._account(SUB_SID, None, "sub")]
        page: dict[str, Any] = {
            "accounts": accounts,
            "end": 1,
            "first_page_uri": "/2010-04-01/Accounts.json?PageSize=100&Page=0",
            "next_page_uri": None if last else self.next_page_uri,
            "page": 0,
            "page_size": 100,
            "previous_page_uri": None,
            "start": 0,
            "uri": "/2010-04-01/Accounts.json?PageSize=100&Page=0",
        }
        if self.next_page_url is not None and not last:
            page["meta"] = {"next_page_url": self.next_page_url, "key": "accounts"}
        return page

    def _account(self, sid: str, owner: str | None, name: str) -> dict[str, Any]:
        return {
            "auth_token": SUB_TOKEN if sid == SUB_SID else "0" * 32,
            "friendly_name": name,
            "owner_account_sid": owner or self.parent_sid,
            "sid": sid,
            "status": "active",
            "type": "Full",
            "uri": f"/2010-04-01/Accounts/{sid}.json",
        }

    @property
    def list_requests(self) -> list[dict[str, str]]:
        with self._server.lock:
            return [r for r in self.requests if r["path"].startswith("/2010-04-01/Accounts.json")]

    def close(self) -> None:
        self._server.close()
