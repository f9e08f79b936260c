"""The bucket's objects as every part of the sink touches them: one boto3 client and the sink's settings, the
reads (HeadObject, GetObjectTagging, GetObject), deletes, the readiness check, and the arguments every write
carries (encryption, storage class). Every S3 failure is raised classified (``workers.sink.errors``)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.platform.s3_client import S3Client
from app.platform.units import MiB
from workers.copy_errors import PermanentS3Error
from workers.sink.errors import classify_s3_error, is_not_found
from workers.sink.settings import SinkSettings
from workers.sink.values import StoredObject

log = logging.getLogger(__name__)

READ_CHUNK = MiB  # what ``read_object`` hands out at a time (``relay verify``)
CHECKSUM_HEADER = "x-amz-checksum-sha256"


class SinkObjects:
    """Object-level S3 access for the sink. Thread-safe as far as the boto3 client is."""

    def __init__(self, client: S3Client, settings: SinkSettings) -> None:
        self.client = client
        self.settings = settings
        if client is not None:
            for operation in ("PutObject", "UploadPart"):
                client.meta.events.register(
                    f"before-sign.s3.{operation}", _no_second_hash, unique_id=f"relay-sink-no-second-hash-{operation}"
                )

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    def head(self, key: str) -> StoredObject | None:
        """Size, metadata, ETag (and S3's full-object SHA-256) of the object at ``key``; None if none."""
        resp = self.unless_missing(
            "HeadObject", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        )
        if resp is None:
            return None
        return StoredObject(
            size=int(resp["ContentLength"]),
            # lower-case, as S3 returns them: some stores (rclone) capitalise user metadata names
            metadata={str(k).lower(): str(v) for k, v in (resp.get("Metadata") or {}).items()},
            etag=str(resp.get("ETag", "")).strip('"'),
            s3_sha256=_full_object_sha256(resp),
        )

    def tags(self, key: str) -> dict[str, str]:
        """The object's tags (GetObjectTagging); {} if it has none or is gone."""
        try:
            resp = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return {}
            raise classify_s3_error(exc, "GetObjectTagging", self.bucket, key) from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, "GetObjectTagging", self.bucket, key) from exc
        return {str(t["Key"]): str(t["Value"]) for t in resp.get("TagSet") or []}

    def get_json(self, key: str) -> Any:
        """The JSON document at ``key`` (a manifest, the marker); None if there is no object there. A body that is
        not JSON raises ValueError."""
        resp = self.unless_missing("GetObject", key, lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        return None if resp is None else json.loads(resp["Body"].read())

    def read_object(self, key: str) -> Generator[bytes, None, None] | None:
        """``app.bucket.verify.ObjectReader``: the object's bytes in chunks of READ_CHUNK, None if there is no object at
        ``key`` (S3 errors raise, classified); closing the generator closes the download."""
        resp = self.unless_missing("GetObject", key, lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        return None if resp is None else self._chunks(resp["Body"], key)

    def _chunks(self, body: Any, key: str) -> Generator[bytes, None, None]:
        try:
            yield from body.iter_chunks(READ_CHUNK)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "GetObject", self.bucket, key) from exc
        finally:
            body.close()

    def unless_missing(self, operation: str, key: str, call: Callable[[], Any]) -> Any:
        """``call()``'s answer, None if the key does not exist; every other S3 error classified."""
        try:
            return call()
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise classify_s3_error(exc, operation, self.bucket, key) from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, operation, self.bucket, key) from exc

    def delete(self, key: str) -> None:
        """DeleteObject (S3 errors raise, classified)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "DeleteObject", self.bucket, key) from exc

    def delete_quietly(self, key: str) -> None:
        """Best effort, never a copy failure: an unverified final object is replaced by the retry."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not delete s3://%s/%s (the retry replaces it): %s", self.bucket, key, exc)

    def check_bucket(self) -> None:
        """Readiness: raise PermanentS3Error/TransientS3Error unless the bucket answers HeadBucket."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            error = classify_s3_error(exc, "HeadBucket", self.bucket)
            if is_not_found(exc) or error.code == "NoSuchBucket":
                raise PermanentS3Error(
                    f"S3 bucket {self.bucket!r} does not exist (HeadBucket: {error.code})",
                    operation="HeadBucket",
                    bucket=self.bucket,
                    key=None,
                    code=error.code,
                ) from exc
            raise error from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, "HeadBucket", self.bucket) from exc

    def write_args(self) -> dict[str, str]:
        """What every object written carries: server-side encryption (and its KMS key), the storage class."""
        args: dict[str, str] = {}
        if self.settings.sse:
            args["ServerSideEncryption"] = self.settings.sse
        if self.settings.kms_key_id:
            args["SSEKMSKeyId"] = self.settings.kms_key_id
        if self.settings.storage_class:
            args["StorageClass"] = self.settings.storage_class
        return args


def _full_object_sha256(head: Mapping[str, Any]) -> str | None:
    """S3's SHA-256 of the whole object as hex; None if absent or composite (a checksum of part checksums)."""
    value = head.get("ChecksumSHA256")
    if not value or "-" in value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:  # binascii.Error is a ValueError
        return None


def _no_second_hash(request: Any, **_: Any) -> None:
    """Over TLS, let botocore send UNSIGNED-PAYLOAD when the request carries our ``x-amz-checksum-sha256``.

    botocore signs the payload (one more SHA-256 pass over every byte, ~1 CPU-s per GiB here) whenever it did
    not compute the request checksum itself, and it sends UNSIGNED-PAYLOAD over TLS when it did: S3 checks the
    body against the checksum header either way. Telling its signer where the checksum is gives our requests the
    same treatment (``S3SigV4Auth._should_sha256_sign_payload``); plain HTTP is still signed.
    """
    if CHECKSUM_HEADER in request.headers:
        checksum = request.context.setdefault("checksum", {})
        checksum["request_algorithm"] = {"algorithm": "sha256", "in": "header", "name": CHECKSUM_HEADER}
