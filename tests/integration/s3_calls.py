"""What the sink's tests share: both S3 servers for a parametrized fixture, and a record of the S3 calls sent.

``SERVERS`` and ``s3_server(request)`` make a module-scoped ``server`` fixture (overriding tests/integration/
conftest.py's moto-only one) that runs every test of a module on SeaweedFS (a real S3 server: it checks request
checksums), on moto over TLS and on ``rclone serve s3`` (whose PutObjectTagging replaces the object), the
session-wide servers of tests/conftest.py; write counts are per bucket, and
every test gets a fresh bucket.

``server_bucket`` and ``server_sink`` are the ``bucket`` and ``sink`` fixtures of such a module: a new bucket per
test on the module's ``server``, and the workers' sink writing to it under ``twilio/`` the way the relay writes on
that server. A module takes them by name (``bucket, sink = s3_calls.server_bucket, s3_calls.server_sink``); its
``bucket`` then stands for tests/conftest.py's session-wide one.
"""

from __future__ import annotations

import base64
import hashlib
import io
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from app.bucket.probe import WritePath, decide, probe_store
from devstack.s3_server import S3Server
from workers.sink import S3Sink, SinkSettings

SERVERS = ["seaweedfs", "moto", "rclone"]
FIXTURES = {"seaweedfs": "seaweed_s3", "moto": "moto_s3", "rclone": "rclone_s3"}


def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """The session's SeaweedFS, moto or rclone server, by the fixture's parameter (one of SERVERS), probed."""
    found: S3Server = request.getfixturevalue(FIXTURES[request.param])
    write_path(found)
    return found


@pytest.fixture(name="bucket")
def server_bucket(client: Any) -> str:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(name="sink")
def server_sink(client: Any, bucket: str) -> S3Sink:
    return S3Sink(client, SinkSettings(bucket=bucket, prefix="twilio/", **path_settings(client)))


_PATHS: dict[str, WritePath] = {}


def write_path(server: S3Server) -> WritePath:
    """The write path the relay takes on ``server`` (``app.bucket.probe``, S3_OBJECT_TAGS=auto), probed once per
    server in a bucket of its own."""
    if server.endpoint_url not in _PATHS:
        client, bucket = server.client(), f"relay-probe-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        _PATHS[server.endpoint_url] = decide(probe_store(client, bucket, "twilio/"), "auto", bucket)
    return _PATHS[server.endpoint_url]


def path_settings(client: Any) -> dict[str, bool]:
    """SinkSettings fields for the store ``client`` talks to, as the worker sets them after its probe."""
    path = _PATHS.get(client.meta.endpoint_url)
    if path is None:
        return {}
    return {"digest_in_tags": path.digest_in_tags, "multipart_etag_kept": path.multipart_etag_kept}


def keeps_tags(client: Any) -> bool:
    """Whether the relay keeps the digest in object tags on this store (else in the job manifests only)."""
    return path_settings(client).get("digest_in_tags", True)


def open_uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    try:
        return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    except client.exceptions.NoSuchUpload:  # rclone's answer for a bucket without open uploads
        return []


def publish_manifest(sink: Any, meta: dict[str, str], *results: Any) -> None:
    """The job manifest of ``meta``'s job, as ``app.jobs.lifecycle.finish_if_done`` writes it: where a store without
    safe tags
    keeps the digest (``S3Sink.stored_day`` reads it there)."""
    days = [{"key": r.key, "size": r.size, "sha256": r.sha256, "records": r.records} for r in results]
    sink.put_json(sink.manifest_key(meta["resource_type"], meta["job_sid"]), {"days": days})


@dataclass
class Sent:
    """One request as it left botocore (after signing): operation, checksum header, body length and its SHA-256."""

    operation: str
    checksum: str | None
    size: int
    body_sha256: str


@dataclass
class S3Calls:
    """Every S3 request a client sends (``record(client)``), as it goes on the wire."""

    sent: list[Sent] = field(default_factory=list)

    @classmethod
    def record(cls, client: Any) -> S3Calls:
        calls = cls()
        client.meta.events.register("before-send.s3", calls._seen)
        return calls

    def _seen(self, request: Any, event_name: str, **_: Any) -> None:
        body = _body_bytes(request.body)
        checksum = request.headers.get("x-amz-checksum-sha256")
        self.sent.append(
            Sent(
                operation=event_name.rsplit(".", 1)[-1],  # before-send.s3.<Operation>
                checksum=checksum.decode() if isinstance(checksum, bytes) else checksum,
                size=len(body),
                body_sha256=base64.b64encode(hashlib.sha256(body).digest()).decode(),
            )
        )

    def ops(self) -> Counter[str]:
        return Counter(s.operation for s in self.sent)

    def of(self, operation: str) -> list[Sent]:
        return [s for s in self.sent if s.operation == operation]


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, io.IOBase) and body.seekable():
        position = body.tell()
        data = body.read()
        body.seek(position)
        return bytes(data)
    return b""
