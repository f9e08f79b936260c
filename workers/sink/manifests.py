"""The sink's small JSON documents: the per-job manifest (``app.jobs.lifecycle.ManifestStore``) and the bucket's
copy of the registry marker (``app.jobs.recovery.MarkerStore``), written like every object (same encryption and
storage class, our SHA-256, the HeadObject check after the write)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.jobs.recovery import MARKER_KEY
from app.platform.s3_client import sha256_b64
from workers.copy_errors import PermanentS3Error
from workers.sink.errors import ManifestWriteRefused, classify_s3_error
from workers.sink.objects import SinkObjects
from workers.sink.writes import check_published


def put_json(objects: SinkObjects, key: str, obj: Any) -> None:
    """Write a small JSON document (the per-job manifest) with the same SSE and storage class.

    A permanent refusal is raised as ``ManifestWriteRefused``, which ``app.jobs.lifecycle`` knows as
    ManifestRefused."""
    body = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
    try:
        resp = objects.client.put_object(
            Bucket=objects.bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            # ours, in a header: S3 checks it, and no aws-chunked body (which some gateways refuse)
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=sha256_b64(body),
            **objects.write_args(),
        )
    except (ClientError, BotoCoreError) as exc:
        error = classify_s3_error(exc, "PutObject", objects.bucket, key)
        if isinstance(error, PermanentS3Error):
            raise ManifestWriteRefused(
                str(error), operation=error.operation, bucket=error.bucket, key=key, code=error.code
            ) from exc
        raise error from exc
    check_published(objects, key, "PutObject", len(body), str(resp.get("ETag", "")).strip('"'))


def read_marker(objects: SinkObjects) -> dict[str, Any] | None:
    """The bucket's copy of the registry marker; None if there is none."""
    marker = objects.get_json(f"{objects.settings.prefix}{MARKER_KEY}")
    return marker if isinstance(marker, dict) else None


def write_marker(objects: SinkObjects, marker: dict[str, Any]) -> None:
    put_json(objects, f"{objects.settings.prefix}{MARKER_KEY}", marker)
