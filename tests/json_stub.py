"""A loopback HTTP server that answers every GET with JSON: the base of the tests' tiny stand-ins for Twilio's APIs
(tests/accounts_api_stub.py, the paging API of tests/integration/test_twilio_paging_origin.py). It records every
request's path and Authorization header, so a test can show where credentials were sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class JsonStub:
    """``answer(path)`` gives the document for one GET; it runs under ``lock`` right after the request is added to
    ``requests``, so it may count them (a page numbered by its request)."""

    def __init__(self, answer: Callable[[str], Any], name: str = "json-stub") -> None:
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with stub.lock:
                    stub.requests.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
                    body = json.dumps(answer(self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, name=name, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
