"""What the sink's tests share: both S3 servers for a parametrized fixture, and a record of the S3 calls sent.

``SERVERS`` and ``s3_server(request)`` make a module-scoped ``server`` fixture (overriding tests/integration/
conftest.py's moto-only one) that runs every test of a module on SeaweedFS (a real S3 server: it checks request
checksums) and on moto over TLS, the session-wide servers of tests/conftest.py; write counts are per bucket, and
every test gets a fresh bucket.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.s3_server import S3Server

SERVERS = ["seaweedfs", "moto"]


def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """The session's SeaweedFS or moto server, by the fixture's parameter (one of SERVERS)."""
    found: S3Server = request.getfixturevalue("seaweed_s3" if request.param == "seaweedfs" else "moto_s3")
    return found


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
