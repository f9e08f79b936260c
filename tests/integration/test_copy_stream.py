"""copy_link_to_s3 end to end: a local HTTP server plays the presigned link; the bucket is on SeaweedFS and on moto
(both over TLS), every test on each."""

from __future__ import annotations

import gzip
import hashlib
import random
import ssl
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import trustme

from app.platform.url_policy import UrlPolicy
from devstack.procs import free_port
from devstack.s3_server import S3Server
from tests.integration import s3_calls
from tests.integration.s3_calls import S3Calls, keeps_tags, open_uploads, path_settings, publish_manifest
from workers.copy import copy_link_to_s3, open_link
from workers.copy_errors import (
    CopyIntegrityError,
    LinkExpiredError,
    LinkNotFoundError,
    LinkRejectedError,
    RetryableCopyError,
    TransientDownloadError,
)
from workers.sink import S3Sink, SinkSettings

# Fixtures: a new bucket per test on the module's ``server``, and the workers' sink on it.
bucket, sink = s3_calls.server_bucket, s3_calls.server_sink

MiB = 1024 * 1024
# The link server is plain http on 127.0.0.1: the local-stack download policy (app/platform/url_policy.py).
LOCAL = UrlPolicy(("127.0.0.1",), allow_loopback=True)
SIGNED = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=s3cr3tsig&X-Amz-Security-Token=t0ken&X-Amz-Expires=240"
META = {
    "job_sid": "JS0123",
    "day": "2024-05-01",
    "resource_type": "Messages",
    "twilio_create_date": "2024-05-03",
}


# -- the link server ---------------------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    cut_at: int | None = None  # announce the full length, send this many bytes, hang up
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


class LinkServer:
    """A threaded HTTP server in this process standing in for S3's presigned GET; over TLS when given
    ``ca_dir`` (its CA's PEM is then ``ca_bundle``, for open_link's ``verify``)."""

    def __init__(self, ca_dir: Path | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[Seen] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.httpd.daemon_threads = True
        self.ca_bundle: str | None = None
        if ca_dir is not None:
            ca = trustme.CA()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert("127.0.0.1").configure_cert(context)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.ca_bundle = str(ca_dir / "link-ca.pem")
            ca.cert_pem.write_to_path(self.ca_bundle)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="link-server", daemon=True)

    @property
    def base(self) -> str:
        scheme = "https" if self.ca_bundle else "http"
        return f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, route: Route) -> str:
        path = f"/daily/{uuid.uuid4().hex}/part-0.json.gz"
        self.routes[path] = route
        return f"{self.base}{path}{SIGNED}"

    def hits(self, url: str) -> list[Seen]:
        path = urlsplit(url).path
        return [s for s in self.seen if urlsplit(s.path).path == path]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.seen.append(Seen(self.path, dict(self.headers.items())))
                route = server.routes.get(urlsplit(self.path).path)
                try:
                    if route is None:
                        self._xml(404, "NoSuchKey")
                    elif route.location:
                        self.send_response(route.status)
                        self.send_header("Location", route.location)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif route.status != 200:
                        self._xml(route.status, {403: "AccessDenied", 500: "InternalError"}.get(route.status, "X"))
                    else:
                        self._body(route)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _xml(self, status: int, code: str) -> None:
                body = f"<Error><Code>{code}</Code><Message>Request has expired</Message></Error>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self, route: Route) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(route.body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                end = len(route.body) if route.cut_at is None else route.cut_at
                view = memoryview(route.body)
                for start in range(0, end, MiB):
                    self.wfile.write(view[start : min(start + MiB, end)])
                if route.cut_at is not None:
                    self.wfile.flush()
                    self.close_connection = True

        return Handler

    def __enter__(self) -> LinkServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def links() -> Iterator[LinkServer]:
    with LinkServer() as link_server:
        yield link_server


@pytest.fixture(scope="module")
def tls_links(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinkServer]:
    with LinkServer(ca_dir=tmp_path_factory.mktemp("link-tls")) as link_server:
        yield link_server


def day_file(size: int, seed: int = 7) -> bytes:
    """Gzip JSON lines of about ``size`` bytes; random text so it barely compresses."""
    rng = random.Random(seed)
    line = rng.randbytes(int(size / 1.15)).hex().encode()  # hex gzips to ~0.58 of its size
    return gzip.compress(b"\n".join(line[i : i + 200] for i in range(0, len(line), 200)) + b"\n", 1, mtime=0)


def records_of(data: bytes) -> int:
    return gzip.decompress(data).count(b"\n")


def key_for(sink: S3Sink) -> str:
    return sink.day_key("Messages", f"2024-05-{random.randint(1, 28):02d}", "JS0123") + uuid.uuid4().hex[:6]


def assert_nothing_left(client: Any, bucket: str, key: str) -> None:
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=key)
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)  # no staging key, nothing else either
    assert not open_uploads(client, bucket)


def tags_of(client: Any, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def assert_digest_tags(client: Any, bucket: str, key: str, sha256: str, records: int) -> None:
    """The digest in the tags where the relay keeps it there; a store without safe tags has it in the job manifest
    only (tests/integration/test_s3_sink.py covers that path), and no tagging request was sent."""
    if keeps_tags(client):
        assert tags_of(client, bucket, key) == {"sha256": sha256, "records": str(records)}


def meta_of(obj: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in obj["Metadata"].items()}


WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload", "CopyObject", "UploadPartCopy"}


# -- copies that succeed -----------------------------------------------------------------------------


def test_small_copy_is_byte_exact_with_metadata_and_tags(
    server: S3Server, client: Any, bucket: str, sink: S3Sink, links: LinkServer
) -> None:
    calls = S3Calls.record(client)
    data = day_file(50_000)
    url = links.add(Route(body=data))
    key = key_for(sink)
    result = copy_link_to_s3(url, len(data), sink, key, META, policy=LOCAL)
    # one PutObject straight to the final key, tags included; then one HeadObject: it still holds what was verified
    assert calls.ops() == {"PutObject": 1, "HeadObject": 1}

    sha = hashlib.sha256(data).hexdigest()
    assert (result.key, result.size, result.sha256, result.records) == (key, len(data), sha, records_of(data))
    obj = client.get_object(Bucket=bucket, Key=key)
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == sha
    assert meta_of(obj) == {**META, "size": str(len(data))}
    assert_digest_tags(client, bucket, key, sha, result.records)
    assert obj["ContentType"] == "application/gzip" and "ContentEncoding" not in obj
    assert server.writes_by_key(bucket) == {key: 1}


@pytest.mark.parametrize("single_put_max", [16 * MiB, 0], ids=["single-put", "multipart"])
def test_the_copy_asks_s3_nothing_before_writing_and_one_head_after(
    client: Any, bucket: str, links: LinkServer, single_put_max: int
) -> None:
    """ "Already stored?" is decided once, by the day task under its lock (S3Sink.stored_day): the streaming copy
    itself never heads the key before writing (a replaced file costs no extra request), nor reads it back after:
    one HeadObject per copy checks the key still holds the verified object."""
    calls = S3Calls.record(client)
    sink = S3Sink(
        client, SinkSettings(bucket=bucket, prefix="twilio/", **path_settings(client), single_put_max=single_put_max)
    )
    data = day_file(50_000)
    key = key_for(sink)
    copy_link_to_s3(links.add(Route(body=data)), len(data), sink, key, META, policy=LOCAL)
    again = day_file(60_000, seed=9)
    copy_link_to_s3(links.add(Route(body=again)), len(again), sink, key, META, policy=LOCAL)
    assert set(calls.ops()) <= WRITES | {"PutObjectTagging", "HeadObject"}  # no GetObject, tagging read, listing
    assert calls.ops()["HeadObject"] == 2  # one per copy
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == again


def test_large_copy_streams_one_multipart_upload_to_the_final_key(
    server: S3Server, client: Any, bucket: str, links: LinkServer
) -> None:
    calls = S3Calls.record(client)
    data = day_file(20 * MiB)
    assert len(data) > 16 * MiB
    sink = S3Sink(
        client, SinkSettings(bucket=bucket, prefix="twilio/", **path_settings(client), single_put_max=16 * MiB)
    )
    url = links.add(Route(body=data))
    key = key_for(sink)
    result = copy_link_to_s3(url, len(data), sink, key, META, policy=LOCAL)

    ops = calls.ops()
    assert ops["CreateMultipartUpload"] == ops["CompleteMultipartUpload"] == ops["HeadObject"] == 1
    assert ops["PutObjectTagging"] == (1 if keeps_tags(client) else 0)
    parts = calls.of("UploadPart")
    assert len(parts) == 3 and sum(p.size for p in parts) == len(data)  # 8 + 8 + rest MiB, each byte once
    assert all(p.checksum == p.body_sha256 for p in parts)  # every part with the SHA-256 of its bytes
    assert not {"CopyObject", "UploadPartCopy", "PutObject"} & set(ops)  # no staging key, no server-side copy
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.records == records_of(data)
    assert_digest_tags(client, bucket, key, result.sha256, result.records)
    assert server.writes_by_key(bucket) == {key: 1}  # the server's own count: written once, at the final key
    assert not open_uploads(client, bucket)


def test_content_encoding_gzip_on_the_link_is_not_inflated(
    client: Any, bucket: str, sink: S3Sink, links: LinkServer
) -> None:
    data = day_file(10_000)
    url = links.add(Route(body=data, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}))
    key = key_for(sink)
    copy_link_to_s3(url, len(data), sink, key, META, policy=LOCAL)
    obj = client.get_object(Bucket=bucket, Key=key)
    assert obj["Body"].read() == data and "ContentEncoding" not in obj


def test_size_unknown_falls_back_to_content_length(client: Any, bucket: str, sink: S3Sink, links: LinkServer) -> None:
    data = day_file(10_000)
    result = copy_link_to_s3(links.add(Route(body=data)), None, sink, key_for(sink), META, policy=LOCAL)
    assert result.size == len(data)


def test_redirect_is_followed_without_carrying_anything(sink: S3Sink, links: LinkServer) -> None:
    data = day_file(10_000)
    target = links.add(Route(body=data))
    hop = links.add(Route(status=307, location=target))
    result = copy_link_to_s3(hop, len(data), sink, key_for(sink), META, policy=LOCAL)
    assert result.size == len(data)
    assert len(links.hits(target)) == 1


# -- idempotence -------------------------------------------------------------------------------------


def test_a_stored_file_is_found_before_any_download(
    server: S3Server, bucket: str, sink: S3Sink, links: LinkServer
) -> None:
    """The day task's one check: once copied, the same Twilio file (size, create_date) is found in S3 with its
    digest, so the day task records it without fetching a link (tests/integration/test_sync_edges.py runs the
    day task itself)."""
    data = day_file(30_000)
    key = key_for(sink)
    first = copy_link_to_s3(links.add(Route(body=data)), len(data), sink, key, META, policy=LOCAL)
    publish_manifest(sink, META, first)  # what the job's end writes: where a store without safe tags keeps it
    second = sink.stored_day(key, len(data), META["twilio_create_date"])

    assert second is not None
    assert (second.sha256, second.size, second.records) == (first.sha256, first.size, first.records)
    assert server.writes(bucket, key) == 1
    assert sink.stored_day(key, len(data), "") is None  # without a create_date nothing can be matched


# -- copies that fail --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [200_000, 20 * MiB], ids=["put", "multipart"])
def test_cut_connection_leaves_nothing(
    server: S3Server, client: Any, bucket: str, sink: S3Sink, links: LinkServer, size: int
) -> None:
    data = day_file(size)
    url = links.add(Route(body=data, cut_at=len(data) * 2 // 3))
    key = key_for(sink)
    with pytest.raises(TransientDownloadError) as info:
        copy_link_to_s3(url, len(data), sink, key, META, policy=LOCAL)
    assert isinstance(info.value, RetryableCopyError)
    assert "s3cr3tsig" not in str(info.value)
    assert_nothing_left(client, bucket, key)
    assert server.writes_by_key(bucket) == {}


def test_a_link_cut_before_its_last_byte_leaves_nothing(
    server: S3Server, client: Any, bucket: str, links: LinkServer
) -> None:
    """The first parts are already in S3 when the last byte fails to come: the upload is aborted, never completed."""
    calls = S3Calls.record(client)
    sink = S3Sink(
        client, SinkSettings(bucket=bucket, prefix="twilio/", **path_settings(client), single_put_max=16 * MiB)
    )
    data = day_file(20 * MiB)
    key = key_for(sink)
    with pytest.raises(TransientDownloadError):
        copy_link_to_s3(links.add(Route(body=data, cut_at=len(data) - 1)), len(data), sink, key, META, policy=LOCAL)
    ops = calls.ops()
    assert 1 <= ops["UploadPart"] <= 2  # part 3 never handed out; part 2 may have been queued, then cancelled
    assert ops["AbortMultipartUpload"] == 1 and "CompleteMultipartUpload" not in ops
    assert_nothing_left(client, bucket, key)
    assert server.writes_by_key(bucket) == {}


def test_corrupt_file_leaves_nothing(
    server: S3Server, client: Any, bucket: str, sink: S3Sink, links: LinkServer
) -> None:
    data = bytearray(day_file(20 * MiB))
    data[-6] ^= 0x10  # CRC trailer: the damage shows only after the last byte
    url = links.add(Route(body=bytes(data)))
    key = key_for(sink)
    with pytest.raises(CopyIntegrityError, match="corrupt"):
        copy_link_to_s3(url, len(data), sink, key, META, policy=LOCAL)
    assert_nothing_left(client, bucket, key)
    assert server.writes_by_key(bucket) == {}


def test_size_mismatch_fails_before_uploading(client: Any, bucket: str, sink: S3Sink, links: LinkServer) -> None:
    calls = S3Calls.record(client)
    data = day_file(10_000)
    key = key_for(sink)
    with pytest.raises(CopyIntegrityError, match="size"):
        copy_link_to_s3(links.add(Route(body=data)), len(data) + 1, sink, key, META, policy=LOCAL)
    assert calls.sent == []  # not one S3 request
    assert_nothing_left(client, bucket, key)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (403, LinkExpiredError),
        (404, LinkNotFoundError),
        (500, TransientDownloadError),
        (503, TransientDownloadError),
        (429, TransientDownloadError),
        (401, LinkRejectedError),
    ],
)
def test_link_statuses_are_classified(
    client: Any, bucket: str, sink: S3Sink, links: LinkServer, status: int, error: type
) -> None:
    url = links.add(Route(status=status)) if status != 404 else f"{links.base}/gone{SIGNED}"
    key = key_for(sink)
    with pytest.raises(error) as info:
        copy_link_to_s3(url, 100, sink, key, META, policy=LOCAL)
    assert "s3cr3tsig" not in str(info.value) and "t0ken" not in str(info.value)
    assert_nothing_left(client, bucket, key)


def test_403_says_expired_and_keeps_the_s3_code(links: LinkServer) -> None:
    with pytest.raises(LinkExpiredError, match="AccessDenied"):
        open_link(links.add(Route(status=403)), timeout=5, policy=LOCAL)


def test_unreachable_link_is_transient() -> None:
    with pytest.raises(TransientDownloadError, match="unreachable") as info:
        open_link(f"http://127.0.0.1:{free_port()}/x.json.gz{SIGNED}", timeout=5, policy=LOCAL)
    assert "s3cr3tsig" not in str(info.value)


def test_https_to_http_redirect_is_refused(links: LinkServer, tls_links: LinkServer) -> None:
    target = links.add(Route(body=day_file(1_000)))
    hop = tls_links.add(Route(status=302, location=target))
    with pytest.raises(LinkRejectedError, match="refusing redirect") as info:
        open_link(hop, timeout=5, verify=tls_links.ca_bundle or True, policy=LOCAL)
    assert "s3cr3tsig" not in str(info.value)
    assert len(tls_links.hits(hop)) == 1 and links.hits(target) == []  # never followed


def test_a_relative_redirect_is_resolved_against_the_link(links: LinkServer) -> None:
    data = day_file(1_000)
    target = links.add(Route(body=data))
    hop = links.add(Route(status=302, location=target.removeprefix(links.base)))  # "/daily/...?X-Amz-..."
    resp = open_link(hop, timeout=5, policy=LOCAL)
    try:
        assert resp.status_code == 200 and resp.content == data
    finally:
        resp.close()
    assert len(links.hits(target)) == 1


def test_too_many_redirects(links: LinkServer) -> None:
    loop = links.add(Route())
    links.routes[urlsplit(loop).path] = Route(status=302, location=loop)
    with pytest.raises(TransientDownloadError, match="redirects"):
        open_link(loop, timeout=5, policy=LOCAL)


# -- nothing but the request goes to the link --------------------------------------------------------


def test_no_credentials_are_sent_to_the_link(
    links: LinkServer, sink: S3Sink, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ACxxxxxxxx password twilio-auth-token\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    probe = links.add(Route(body=b"x"))
    requests.get(probe, timeout=5).close()  # sanity: a default requests call would leak these
    assert "Authorization" in links.hits(probe)[0].headers

    data = day_file(10_000)
    url = links.add(Route(body=data))
    copy_link_to_s3(url, len(data), sink, key_for(sink), META, policy=LOCAL)
    (seen,) = links.hits(url)
    names = {name.lower() for name in seen.headers}
    assert "authorization" not in names and "cookie" not in names
    assert not any(name.startswith("x-twilio") for name in names)
    assert seen.headers.get("Accept-Encoding") == "identity"
    assert seen.path.endswith(SIGNED)  # the presigned query string is passed through untouched
