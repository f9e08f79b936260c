"""Fixtures for modules that need S3 servers of their own to count and inspect (the sink and copy tests).

``server`` is module-scoped and parametrized over SERVERS: each requesting module runs on the session's SeaweedFS
(which checks every checksum), on moto (over TLS, so botocore sends aws-chunked bodies with checksums) and on
rclone (a gateway that keeps no tags, checksums or metadata as S3 does);
``client`` is a client of its own per test, so the event hooks a test registers never leak into another. Modules
define their own ``bucket`` on top; the session-wide ``s3``/``bucket`` of tests/conftest.py stay for the rest.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.s3_server import S3Server
from tests.integration.s3_calls import SERVERS, s3_server


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> S3Server:
    return s3_server(request)


@pytest.fixture
def client(server: S3Server) -> Any:
    return server.client()
