"""A real moto S3 server in its own process, over plain HTTP or TLS, that counts writes per key.

Why a process and not ``mock_aws``: the relay's code must run exactly as in production (botocore's
HTTP stack, TLS, request checksums, connection pooling), and child processes (gunicorn, rq workers)
must reach the same S3 through the standard ``AWS_*`` variables that ``env()`` returns.

Why TLS matters: botocore sends its default request checksums as ``aws-chunked`` bodies with a
trailer only over HTTPS (``botocore.httpchecksum.resolve_request_checksum_algorithm``); over plain
HTTP it puts the checksum in a header instead. ``tls=True`` makes a throwaway CA with trustme, serves
with a leaf certificate for 127.0.0.1, and exposes the CA PEM as ``ca_bundle`` (``AWS_CA_BUNDLE``).

Counting: this module is also the server's entry point (``python -m devstack.s3_server``). It
serves moto's own WSGI app behind a tiny middleware that counts successful (2xx) S3 object operations
per ``bucket/key`` (put_object, copy_object, create/complete/abort_multipart_upload, upload_part,
upload_part_copy, delete_object, plus ``aws_chunked`` for bodies that came with a checksum trailer)
and answers ``GET /_harness/counts`` (JSON) and ``POST /_harness/reset``. ``writes(bucket, key)`` is
how many times an object became visible there. Requests must use path-style addressing, which
botocore picks by itself for an IP-address endpoint. moto reports every multipart upload as
initiated in 2010, so age-based janitor tests need a threshold of 0 (or a century).

State: moto keeps everything in memory, so ``restart()`` (stop, then start on the same port) loses
every bucket, object, multipart upload and count. Tests that restart must recreate their buckets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote

from devstack.procs import ManagedProcess, free_port, python_argv

HARNESS_PATH = "/_harness/"
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"  # noqa: S105 - a local test server's fixed key
REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Operations that make a new version of the object visible at a key.
WRITE_OPS = ("put_object", "copy_object", "complete_multipart_upload")


class MotoS3Server:
    """Context manager for one moto S3 server process on a free loopback port."""

    def __init__(self, tls: bool = False, log_dir: Path | None = None, port: int | None = None) -> None:
        self.tls = tls
        self.port = port or free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="moto-s3-"))
        self.log_dir = log_dir or self._tmp
        self._ca_path: Path | None = None
        self._cert_args: list[str] = []
        self._proc: ManagedProcess | None = None
        if tls:
            self._make_certificates()

    # -- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> MotoS3Server:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> MotoS3Server:
        """Start the process and poll the counting endpoint until it answers (or fail with its log)."""
        argv = python_argv(
            "-m", "devstack.s3_server", "--host", "127.0.0.1", "--port", str(self.port), *self._cert_args
        )
        self._proc = ManagedProcess(f"moto-s3-{self.port}", argv, self.log_dir, cwd=REPO_ROOT)
        self._proc.start()
        self._proc.wait_ready(self._ping)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port. moto keeps state in memory: everything is lost."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not started"
        return self._proc.pid

    # -- how to reach it ------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str | None:
        """Path of the CA PEM that signed the server certificate; None for plain HTTP."""
        return str(self._ca_path) if self._ca_path else None

    def env(self) -> dict[str, str]:
        """The standard AWS_* variables a child process (or make_s3_client) needs to use this server."""
        env = {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
        if self.ca_bundle:
            env["AWS_CA_BUNDLE"] = self.ca_bundle
        return env

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server, ignoring any AWS_* variables of the test process."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=DUMMY_ACCESS_KEY,
            aws_secret_access_key=DUMMY_SECRET_KEY,
            verify=self.ca_bundle if self.ca_bundle else True,
            config=Config(**config) if config else None,
        )

    # -- counts ---------------------------------------------------------------------------------------

    def counts(self) -> dict[str, dict[str, int]]:
        """Successful S3 operations per ``bucket/key`` since start (or the last reset)."""
        resp = self._http("GET", "counts")
        resp.raise_for_status()
        result: dict[str, dict[str, int]] = resp.json()
        return result

    def writes(self, bucket: str, key: str) -> int:
        """How many times an object was made visible at ``bucket/key`` (put, copy, completed upload)."""
        ops = self.counts().get(f"{bucket}/{key}", {})
        return sum(ops.get(op, 0) for op in WRITE_OPS)

    def reset_counts(self) -> None:
        self._http("POST", "reset").raise_for_status()

    # -- internals ------------------------------------------------------------------------------------

    def _http(self, method: str, name: str) -> Any:
        import requests

        return requests.request(
            method,
            f"{self.endpoint_url}{HARNESS_PATH}{name}",
            verify=self.ca_bundle if self.ca_bundle else True,
            timeout=5,
        )

    def _ping(self) -> bool:
        return bool(self._http("GET", "counts").status_code == 200)

    def _make_certificates(self) -> None:
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        self._ca_path = self._tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self._ca_path))
        cert_path, key_path = self._tmp / "server.pem", self._tmp / "server.key"
        with open(cert_path, "wb") as f:
            for blob in leaf.cert_chain_pems:
                f.write(blob.bytes())
        leaf.private_key_pem.write_to_path(str(key_path))
        self._cert_args = ["--cert", str(cert_path), "--key", str(key_path)]


# ---------------------------------------------------------------------------------------------------
# Server side: runs in the child process.


def classify(method: str, query: dict[str, list[str]], environ: dict[str, Any]) -> str | None:
    """Name the S3 object operation of a path-style request, or None for anything else."""
    copy_source = "HTTP_X_AMZ_COPY_SOURCE" in environ
    if method == "PUT":
        if "uploadId" in query and "partNumber" in query:
            return "upload_part_copy" if copy_source else "upload_part"
        if query.keys() - {"x-id"}:  # ?tagging, ?acl, ?retention, ...
            return None
        return "copy_object" if copy_source else "put_object"
    if method == "POST":
        if "uploads" in query:
            return "create_multipart_upload"
        if "uploadId" in query:
            return "complete_multipart_upload"
        return None
    if method == "DELETE":
        if "uploadId" in query:
            return "abort_multipart_upload"
        return None if query.keys() - {"x-id"} else "delete_object"
    return None


class CountingMiddleware:
    """WSGI middleware: count successful object operations per bucket/key, serve /_harness/."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts: dict[str, Counter[str]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(HARNESS_PATH):
            return self._harness(environ, start_response, path[len(HARNESS_PATH) :])
        op = classify(environ["REQUEST_METHOD"], parse_qs(environ.get("QUERY_STRING", ""), True), environ)
        object_key = self._object_key(environ) if op else None
        if op is None or object_key is None:
            return self.app(environ, start_response)

        def counting_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            if status[:1] == "2":
                with self.lock:
                    tally = self.counts.setdefault(object_key, Counter())
                    tally[op] += 1
                    if "aws-chunked" in environ.get("HTTP_CONTENT_ENCODING", ""):
                        tally["aws_chunked"] += 1  # body streamed with a checksum trailer
            return start_response(status, headers, exc_info)

        return self.app(environ, counting_start_response)

    @staticmethod
    def _object_key(environ: dict[str, Any]) -> str | None:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        path = unquote(raw.split("?", 1)[0])
        bucket, _, key = path.lstrip("/").partition("/")
        return f"{bucket}/{key}" if bucket and key else None

    def _harness(self, environ: dict[str, Any], start_response: Callable[..., Any], name: str) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        if name == "counts" and method == "GET":
            with self.lock:
                body = json.dumps({k: dict(v) for k, v in self.counts.items()}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        if name == "reset" and method == "POST":
            with self.lock:
                self.counts.clear()
            start_response("204 No Content", [])
            return []
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"unknown harness endpoint\n"]


def main(argv: list[str] | None = None) -> None:
    """Serve moto (all services, as moto_server does) behind the counting middleware."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args(argv)
    app = CountingMiddleware(DomainDispatcherApplication(create_backend_app))
    ssl_context = (args.cert, args.key) if args.cert and args.key else None
    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        ssl_context=ssl_context,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
