"""A proxy between the relay and a real S3 server that alters an object right after one chosen request to it.

What issue 19 found ``rclone serve s3`` doing by itself (its PutObjectTagging replaced the object with the tagging
XML), made to happen on any store and after any request: once per key, after the backend answered 2xx to
``operation`` on a day file's key, the proxy overwrites that object behind the relay's back (with its own client,
straight at the backend) and only then returns the answer. Requests are forwarded unchanged, Host header
included, so the backend checks the relay's own signatures. Plain HTTP towards the relay, the backend's TLS
behind. ``env()``, ``client()``, ``writes()`` make it usable wherever an ``S3Server`` is (``make_env``).
"""

from __future__ import annotations

import http.client
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from devstack.s3_server import S3Server

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
JUNK = b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet></TagSet></Tagging>'


def operation_of(method: str, query: str) -> str | None:
    """The S3 operations the proxy can alter after (path-style requests)."""
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    if method == "PUT" and "tagging" in params:
        return "PutObjectTagging"
    if method == "PUT" and not params - {"x-id"}:
        return "PutObject"
    if method == "POST" and "uploadId" in params:
        return "CompleteMultipartUpload"
    return None


class AlteringProxy:
    """Context manager: a threaded HTTP proxy on a free loopback port in front of ``backend``."""

    def __init__(
        self, backend: S3Server, operation: str, key_contains: str = "/day=", every_time: bool = False
    ) -> None:
        self.backend = backend
        self.operation = operation
        self.every_time = every_time  # alter after every such request, not once per key
        self.key_contains = key_contains
        self.altered: list[str] = []  # bucket/key, in order
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="altering-proxy", daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        return {**self.backend.env(), "AWS_ENDPOINT_URL_S3": self.endpoint_url}

    def client(self, **config: Any) -> Any:
        return self.backend.client(**config)  # the test's own look at the bucket goes straight to the backend

    def writes(self, bucket: str, key: str) -> int:
        return self.backend.writes(bucket, key)

    def __enter__(self) -> AlteringProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _alter_once(self, operation: str | None, path: str) -> None:
        bucket, _, key = unquote(path).lstrip("/").partition("/")
        if operation != self.operation or self.key_contains not in key:
            return
        with self._lock:
            if f"{bucket}/{key}" in self.altered and not self.every_time:
                return
            self.altered.append(f"{bucket}/{key}")
        self.backend.client().put_object(Bucket=bucket, Key=key, Body=JUNK)

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Any:
        backend = urlsplit(self.backend.endpoint_url)
        if backend.scheme == "https":
            context = ssl.create_default_context(cafile=self.backend.ca_bundle)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                backend.hostname or "127.0.0.1", backend.port, context=context, timeout=60
            )
        else:
            conn = http.client.HTTPConnection(backend.hostname or "127.0.0.1", backend.port, timeout=60)
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"expect"}]
                resp, data = proxy._forward(self.command, self.path, headers, body)
                path, _, query = self.path.partition("?")
                if 200 <= resp.status < 300:
                    proxy._alter_once(operation_of(self.command, query), path)
                self.send_response(resp.status, resp.reason)
                for name, value in resp.getheaders():
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                length = resp.getheader("Content-Length") or "0" if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        return Handler
