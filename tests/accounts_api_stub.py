"""A tiny Accounts API (2010-04-01) for paging attacks: every ``GET /2010-04-01/Accounts.json`` answers one page
listing the caller and one subaccount, with whatever next-page link a test sets (``next_page_uri`` as Twilio's 2010
API has it, or a ``meta.next_page_url`` the SDK prefers when present). It records every request (path and
Authorization header) so a test can show the parent's credentials went nowhere else."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SUB_SID = "AC" + "5b" * 16
SUB_TOKEN = "f" * 32


class AccountsApiStub:
    def __init__(self, parent_sid: str) -> None:
        self.parent_sid = parent_sid
        self.next_page_uri: str | None = None
        self.next_page_url: str | None = None  # sent as meta.next_page_url when set
        self.pages = 0  # > 0: the page numbered ``pages`` (from 1) is the last, it has no next page link
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stub._lock:
                    stub.requests.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
                    last = 0 < stub.pages <= len(stub.requests)
                body = json.dumps(stub.page(last)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name="accounts-api-stub", daemon=True).start()

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
        with self._lock:
            return [r for r in self.requests if r["path"].startswith("/2010-04-01/Accounts.json")]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
