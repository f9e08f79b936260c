"""The write path of a day file: once, straight to its final key, published only once verified (the package
docstring tells how), and the HeadObject check after every request that touches a published key."""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError

from app.platform.metrics import STORE_ANOMALIES
from app.platform.s3_client import sha256_b64
from app.platform.units import MiB
from workers.copy_errors import S3Error, TransientS3Error
from workers.sink.errors import classify_s3_error
from workers.sink.objects import SinkObjects
from workers.sink.parts import PartPipeline, composite_sha256, part_size_for, parts_in_memory
from workers.sink.values import StoredObject, StreamDigest, UploadResult, VerifiedStream

log = logging.getLogger(__name__)

GZIP_CONTENT_TYPE = "application/gzip"
UPLOAD_READ_STEP = MiB  # small steps: the reader's own buffer stays tiny next to the body buffer
ANOMALY_REASONS = ("gone", "size", "etag")


class DayWriter:
    """``upload_verified`` and its two paths: one PutObject up to ``single_put_max``, a multipart upload of the
    final key above it."""

    def __init__(self, objects: SinkObjects) -> None:
        self.objects = objects
        self.client = objects.client
        self.settings = objects.settings
        self.bucket = objects.bucket

    def upload_verified(
        self,
        reader: VerifiedStream,
        key: str,
        expected_size: int,
        metadata: Mapping[str, str],
    ) -> UploadResult:
        """Write a self-verifying stream once, straight to ``key``, and publish it only once verified.

        ``metadata`` (job_sid, day, resource_type, twilio_create_date) goes into the object's metadata with
        ``size``; sha256 and records into its tags where the store keeps them safely (``digest_in_tags``), else
        only into the job manifest the caller writes (see the package docstring). The caller has already decided
        that ``key`` does not hold this file (``stored_day``, under its per-key lock). Errors raised by the
        reader (integrity, download) propagate unchanged; S3 errors are classified.
        """
        _check_metadata(metadata)
        object_metadata = {**metadata, "size": str(expected_size)}
        if expected_size == 0 or expected_size <= self.settings.single_put_max:
            return self._put_verified(reader, key, expected_size, object_metadata)
        return self._stream_multipart(reader, key, expected_size, object_metadata)

    def _put_verified(
        self, reader: VerifiedStream, key: str, expected_size: int, metadata: Mapping[str, str]
    ) -> UploadResult:
        """Small files: verify in memory, then one PutObject with the metadata, our SHA-256 and (where the store
        keeps tags safely) the digest tags.

        S3 checks the body against ``ChecksumSHA256`` and refuses a mismatch (BadDigest), so what is stored
        is proven to be what we hashed, and a PutObject is atomic, tags included; a HeadObject then checks it.
        """
        body = read_verified(reader, expected_size)
        digest = reader.digest()
        checksum = base64.b64encode(bytes.fromhex(digest.sha256)).decode()
        extra = {
            "Metadata": dict(metadata),
            **({"Tagging": urlencode(_digest_tags(digest))} if self.settings.digest_in_tags else {}),
            "ContentType": GZIP_CONTENT_TYPE,
            "ChecksumAlgorithm": "SHA256",  # both: botocore then sends our value instead of computing one
            "ChecksumSHA256": checksum,
            **self.objects.write_args(),
        }
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "PutObject", self.bucket, key) from exc
        echoed = resp.get("ChecksumSHA256")
        if echoed is not None and echoed != checksum:
            self.objects.delete_quietly(key)
            raise not_verified(self.bucket, key, f"stored bytes whose SHA-256 is {echoed}, not {checksum}", "PutObject")
        etag = str(resp.get("ETag", "")).strip('"')
        check_published(self.objects, key, "PutObject", expected_size, etag)
        return _result(key, digest, etag=etag)

    def _stream_multipart(
        self, reader: VerifiedStream, key: str, expected_size: int, metadata: Mapping[str, str]
    ) -> UploadResult:
        """Big files: one multipart upload of the final key, completed only once the reader has passed."""
        upload_id = self._create_multipart(key, metadata)
        try:
            parts = self._upload_parts(reader, key, upload_id, expected_size)
            digest = reader.digest()  # raises unless the reader verified its whole stream
            etag = self._complete(key, upload_id, parts)
        except BaseException:
            self._abort_quietly(key, upload_id)
            raise
        operation, expected_etag = "CompleteMultipartUpload", etag if self.settings.multipart_etag_kept else None
        if self.settings.digest_in_tags:
            operation = "PutObjectTagging"
            try:
                self._tag(key, digest)
            except BaseException:
                # A tagging request that failed may still have touched the object (a store that replaces the
                # body, then answers 5xx): the same check as after a success, then the tagging's own error.
                with contextlib.suppress(S3Error):
                    check_published(self.objects, key, operation, digest.size, expected_etag)
                raise
        check_published(self.objects, key, operation, digest.size, expected_etag)
        return _result(key, digest, etag=etag)

    def _create_multipart(self, key: str, metadata: Mapping[str, str]) -> str:
        extra = {
            "Metadata": dict(metadata),
            "ContentType": GZIP_CONTENT_TYPE,
            "ChecksumAlgorithm": "SHA256",  # every part must then carry a SHA-256, which S3 checks
            **self.objects.write_args(),
        }
        try:
            resp = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "CreateMultipartUpload", self.bucket, key) from exc
        return str(resp["UploadId"])

    def _upload_parts(
        self, reader: VerifiedStream, key: str, upload_id: str, expected_size: int
    ) -> list[dict[str, Any]]:
        """Read the parts (the reader verifies as it goes) while earlier ones are being sent."""
        part_size = part_size_for(expected_size)

        def send(number: int, data: bytes) -> dict[str, Any]:
            return self._upload_part(key, upload_id, number, data)

        return PartPipeline(send, parts_in_memory(part_size, self.settings.multipart_concurrency)).run(
            reader, part_size
        )

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        """One UploadPart with the SHA-256 of exactly the bytes the reader handed out (S3 refuses a mismatch)."""
        checksum = sha256_b64(data)
        try:
            resp = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ChecksumAlgorithm="SHA256",  # with ChecksumSHA256: botocore sends ours, whatever its own setting
                ChecksumSHA256=checksum,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "UploadPart", self.bucket, key) from exc
        echoed = resp.get("ChecksumSHA256")
        if echoed is not None and echoed != checksum:
            problem = f"took part {number} as SHA-256 {echoed}, not {checksum}"
            raise not_verified(self.bucket, key, problem, "UploadPart")
        return {"PartNumber": number, "ETag": resp["ETag"], "ChecksumSHA256": checksum}

    def _complete(self, key: str, upload_id: str, parts: list[dict[str, Any]]) -> str:
        """CompleteMultipartUpload with every part's checksum; the object appears at ``key`` now, verified."""
        try:
            resp = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "CompleteMultipartUpload", self.bucket, key) from exc
        expected = composite_sha256([p["ChecksumSHA256"] for p in parts])
        echoed = resp.get("ChecksumSHA256")
        if echoed is not None and echoed.split("-")[0] != expected.split("-")[0]:
            self.objects.delete_quietly(key)
            problem = f"has the checksum {echoed}, not {expected}"
            raise not_verified(self.bucket, key, problem, "CompleteMultipartUpload")
        return str(resp.get("ETag", "")).strip('"')

    def _tag(self, key: str, digest: StreamDigest) -> None:
        """sha256 and records, known only now, as the object's tags (see the package docstring)."""
        tag_set = [{"Key": k, "Value": v} for k, v in _digest_tags(digest).items()]
        try:
            self.client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set})
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "PutObjectTagging", self.bucket, key) from exc

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        """Best effort, never masking the error that led here: what is left is the janitor's (and the lifecycle
        rule's) job."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not abort multipart upload of s3://%s/%s (the janitor will): %s", self.bucket, key, exc)


# -- the check after every write -------------------------------------------------------------------------


def check_published(objects: SinkObjects, key: str, operation: str, size: int, etag: str | None) -> None:
    """One HeadObject after the last request that touched a published key: it must still hold the verified
    object (``size``; ``etag`` unless None). Otherwise the store changed it under us (issue 19: a gateway
    that takes PutObjectTagging for a PutObject): loud (ERROR log, ``relay_store_anomalies_total``), the
    object deleted (it is not what was verified) and a TransientS3Error, so nothing records it as copied and
    the normal retry writes it again while Twilio still has the file."""
    reason = published_mismatch(objects.head(key), size, etag)
    if reason is None:
        return
    bucket = objects.bucket
    STORE_ANOMALIES.labels(operation, reason).inc()
    log.error(
        "S3 %s left s3://%s/%s not holding the verified object (%s): deleted, to be written again",
        operation,
        bucket,
        key,
        reason,
        extra={"bucket": bucket, "key": key, "operation": operation, "reason": reason},
    )
    objects.delete_quietly(key)
    raise TransientS3Error(
        f"s3://{bucket}/{key} changed after {operation} ({reason} differs from the verified object)",
        operation=operation,
        bucket=bucket,
        key=key,
        code="StoreAnomaly",
    )


def published_mismatch(stored: StoredObject | None, size: int, etag: str | None) -> str | None:
    """Why ``stored`` (HeadObject right after a write) is not the object just verified: one of ANOMALY_REASONS,
    or None when it is (same size, and the same ETag when ``etag`` is given)."""
    if stored is None:
        return "gone"
    if stored.size != size:
        return "size"
    if etag and stored.etag != etag:
        return "etag"
    return None


def not_verified(bucket: str, key: str, problem: str, operation: str) -> TransientS3Error:
    """What S3 holds (or took) at ``key`` is not what we verified: retried (nothing of it is left)."""
    return TransientS3Error(
        f"s3://{bucket}/{key} {problem}",
        operation=operation,
        bucket=bucket,
        key=key,
        code=f"VerifyAfter{operation.removesuffix('Object')}",
    )


def read_verified(reader: VerifiedStream, expected_size: int) -> bytearray:
    """The whole verified stream in one preallocated buffer (no second copy of the file in memory)."""
    body = bytearray(expected_size)
    view = memoryview(body)
    filled = 0
    try:
        while chunk := reader.read(min(UPLOAD_READ_STEP, expected_size - filled) or 1):
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    except BaseException:
        # The exception's traceback (kept by the failed reader too) holds this frame: free the buffer now, not
        # at the next full garbage collection, so the worker's next task does not find it still allocated.
        view.release()
        body.clear()
        raise
    view.release()
    if filled != expected_size:  # the reader raises first; this guards a reader that does not
        raise ValueError(f"stream ended after {filled} of {expected_size} bytes")
    return body


def _digest_tags(digest: StreamDigest) -> dict[str, str]:
    return {"sha256": digest.sha256, "records": str(digest.records)}


def _result(key: str, digest: StreamDigest, *, etag: str) -> UploadResult:
    return UploadResult(key, digest.size, digest.sha256, digest.records, etag)


def _check_metadata(metadata: Mapping[str, str]) -> None:
    """S3 user metadata travels in HTTP headers: ASCII strings only (``size`` is the sink's)."""
    for name, value in metadata.items():
        if not (isinstance(name, str) and isinstance(value, str) and (name + value).isascii()):
            raise ValueError(f"S3 metadata must be ASCII strings: {name!r}={value!r}")
