"""Fixtures for modules that need an S3 server of their own (write counts that only their tests touch).

``server`` is module-scoped: each requesting module gets its own moto over TLS (so botocore sends aws-chunked
bodies with checksums, as against real S3); ``client`` talks to it. Modules define their own ``bucket`` on
top (a fresh one per test); the session-wide ``s3``/``bucket`` of tests/conftest.py stay available to the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.s3_server import MotoS3Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3Server]:
    with MotoS3Server(tls=True, log_dir=tmp_path_factory.mktemp("moto-s3")) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: MotoS3Server) -> Any:
    return server.client()
