"""The boto3 S3 client every process builds (workers for the sink, the web for its bucket probe).

Lives in the core, not in ``workers``, because the web needs a client too (``/health``) and the core never
imports the workers.
"""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from app.platform.config import S3_ADDRESSING_STYLES

S3Client = Any  # a boto3 S3 client; boto3 ships no static types for it

DEFAULT_MAX_ATTEMPTS = 5
PROBE_TIMEOUT_SECONDS = 2


def make_s3_client(max_pool_connections: int = 10, quick: bool = False) -> S3Client:
    """A boto3 S3 client configured from boto3's own environment variables and config files.

    Endpoint (AWS_ENDPOINT_URL_S3), credentials, region, CA bundle (AWS_CA_BUNDLE), request checksums
    (AWS_REQUEST_CHECKSUM_CALCULATION), AWS_RETRY_MODE and AWS_MAX_ATTEMPTS are all read by botocore.
    We only fill in what they leave unset: "standard" retries with 5 attempts in total, and the
    addressing style from AWS_S3_ADDRESSING_STYLE (botocore reads ``s3.addressing_style`` only from
    the config file, never from the environment). ``quick``: 2-s timeouts and one attempt (health checks).
    """
    session = botocore.session.get_session()
    retries: dict[str, Any] = {"mode": session.get_config_variable("retry_mode") or "standard"}
    if quick:
        retries["total_max_attempts"] = 1
    elif session.get_config_variable("max_attempts") is None:
        retries["total_max_attempts"] = DEFAULT_MAX_ATTEMPTS
    s3_options: dict[str, Any] = {}
    style = os.environ.get("AWS_S3_ADDRESSING_STYLE", "").strip().lower()
    if style:
        if style not in S3_ADDRESSING_STYLES:
            raise ValueError(f"AWS_S3_ADDRESSING_STYLE must be one of {S3_ADDRESSING_STYLES}, not {style!r}")
        s3_options["addressing_style"] = style
    timeouts = {"connect_timeout": PROBE_TIMEOUT_SECONDS, "read_timeout": PROBE_TIMEOUT_SECONDS} if quick else {}
    config = Config(
        retries=retries,
        max_pool_connections=max_pool_connections,
        s3=s3_options or None,
        tcp_keepalive=True,
        **timeouts,
    )
    return boto3.session.Session(botocore_session=session).client("s3", config=config)


def probe_bucket(client: S3Client, bucket: str) -> None:
    """Raise (botocore's error) unless the bucket answers HeadBucket: the web's read-only S3 health probe."""
    client.head_bucket(Bucket=bucket)


def sha256_b64(data: bytes | bytearray | memoryview) -> str:
    """SHA-256 as S3's checksum headers spell it (base64 of the raw digest): every ``ChecksumSHA256`` we send."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
