"""Every S3 write of the relay: verified uploads of day files, the job manifest, the janitor.

How a day file gets to its final key without ever being visible half-done or unverified
-------------------------------------------------------------------------------------------
The sha256 and the record count are only known after the last byte, but they must be in the final
object's user metadata, and S3 fixes user metadata when an upload *starts* (PutObject headers,
CreateMultipartUpload). Two paths, by the Day's size:

Up to ``SinkSettings.single_put_max`` (64 MiB by default, the same memory budget the multipart path
spends on part buffers), the file is read through the verifying reader into one preallocated buffer,
then written with a single PutObject straight to the final key, with the metadata and
``ChecksumSHA256`` (S3 recomputes it over the received body and refuses a mismatch). A PutObject is
atomic, so nothing partial is ever visible, and a day costs one write request instead of four (upload,
copy, read-back, delete): most Twilio day files are far below 64 MiB.

Bigger files go up once, to a private staging key ``{prefix}_staging/<uuid>/<basename>``, through
boto3's managed transfer (``upload_fileobj``), so memory stays bounded whatever the size:

1. The reader (``workers.copy.VerifyingReader``) hashes and gunzip-checks the bytes as s3transfer pulls
   them, and raises *instead of returning the last bytes* if the size, gzip framing, CRC or length
   are wrong. s3transfer then aborts the multipart upload (or never sends the PutObject), so nothing
   is completed, not even at the staging key.
2. Once verified: if the final key already holds an object with the same size and sha256, nothing is
   written (idempotent re-run). Otherwise a server-side copy (``client.copy``: CopyObject, or
   UploadPartCopy for big objects, so more than 5 GiB works) creates the final object atomically
   with the full metadata (``MetadataDirective=REPLACE``), ``ContentType=application/gzip``, no
   ``ContentEncoding`` (the object *is* the .gz file; a gzip encoding would make HTTP clients
   silently inflate it), and the configured SSE/KMS and storage class.
3. The staging object is deleted on every path; what a crash leaves behind (a staging object, an
   incomplete multipart upload) is removed by ``abort_stale_uploads``.

Alternatives considered and rejected for big files: uploading straight to the final key cannot carry
the sha256 in its metadata (it is unknown when the upload starts); tags or a sidecar object written after the
upload would leave a window where the day file is visible without them; S3's own full-object
checksums (CRC64NVME) are not a sha256; spooling to local disk first needs several GiB of disk and
reads every byte twice. The copy is server-side, costs no bandwidth here, and the staging object is
written in STANDARD class so short-lived staging data pays no minimum-duration charges.

Errors: every S3 failure is raised as ``TransientS3Error`` (throttling, 5xx, connection trouble: retry
later) or ``PermanentS3Error`` (access denied, missing bucket, bad configuration), both carrying the
operation, bucket and key (``workers.copy_errors``, the one hierarchy of copy errors).

Whether a day is already stored is decided once, by ``stored_day`` (see ``workers.day_copier``), before
anything is downloaded; the write paths then always write what they verified.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import posixpath
import re
import string
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from boto3.s3.transfer import TransferConfig
from botocore import exceptions as boto_exc
from botocore.exceptions import BotoCoreError, ClientError

from app.s3_client import S3Client
from app.sync import ManifestRefused
from workers.copy_errors import PermanentS3Error, S3Error, TransientS3Error

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_PARTS = 10_000
MIN_PART_SIZE = 8 * MiB
# s3transfer buffers whole parts in memory when reading from a stream: keep that buffer (parts being
# sent plus parts waiting) near this budget so a worker stays well under 150 MiB RSS.
UPLOAD_BUFFER_BUDGET = 64 * MiB
# Day files up to this size are held in memory, verified, and written with one PutObject straight to the
# final key (see the module docstring); the same memory the multipart path may hold in part buffers.
SINGLE_PUT_MAX = UPLOAD_BUFFER_BUDGET
SINGLE_PUT_LIMIT = 5 * GiB  # S3's own PutObject limit
UPLOAD_READ_STEP = MiB  # small steps: the reader's own buffer stays tiny next to the body buffer
# Server-side copies move no bytes through the worker: big parts, multipart only for big objects.
COPY_MULTIPART_THRESHOLD = 256 * MiB
COPY_PART_SIZE = 256 * MiB
DEFAULT_KEY_TEMPLATE = "{prefix}{resource_type}/day={day}/{resource_type}-{day}.json.gz"
GZIP_CONTENT_TYPE = "application/gzip"
STAGING_DIR = "_staging/"
SSE_MODES = (None, "AES256", "aws:kms")


class ManifestWriteRefused(PermanentS3Error, ManifestRefused):
    """S3 refused the manifest for good (missing bucket, access denied): the job is finished as failed."""


_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "NoSuchUpload",  # the upload was aborted under us (janitor): start over
        "BadDigest",
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
        "KMS.ThrottlingException",
        "KMS.KMSInternalException",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# botocore errors worth retrying: the network, or credentials that a metadata service will serve again.
_TRANSIENT_BOTOCORE = (
    boto_exc.HTTPClientError,
    boto_exc.ConnectionError,
    boto_exc.IncompleteReadError,
    boto_exc.CredentialRetrievalError,
    boto_exc.MetadataRetrievalError,
)


def classify_s3_error(exc: Exception, operation: str, bucket: str, key: str | None = None) -> S3Error:
    """Turn a botocore exception into TransientS3Error or PermanentS3Error with context."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"S3 {operation} on {where} failed: {code} (HTTP {status}) {error.get('Message', '')}".rstrip()
        transient = code in _TRANSIENT_CODES or status >= 500 or status == 429
        cls: type[S3Error] = TransientS3Error if transient else PermanentS3Error
        return cls(message, operation=operation, bucket=bucket, key=key, code=code)
    name = type(exc).__name__
    message = f"S3 {operation} on {where} failed: {name}: {exc}"
    cls = TransientS3Error if isinstance(exc, _TRANSIENT_BOTOCORE) else PermanentS3Error
    return cls(message, operation=operation, bucket=bucket, key=key, code=name)


def _is_not_found(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES


# -- values ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkSettings:
    """Where and how day files are stored. ``key_template`` is a str.format template."""

    bucket: str
    prefix: str = "twilio/"
    key_template: str = DEFAULT_KEY_TEMPLATE
    sse: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None
    multipart_concurrency: int = 4
    single_put_max: int = SINGLE_PUT_MAX  # bytes; 0 sends every file through the staging path

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("SinkSettings.bucket is empty")
        if self.sse not in SSE_MODES:
            raise ValueError(f"SinkSettings.sse must be one of {SSE_MODES}, not {self.sse!r}")
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError("SinkSettings.kms_key_id needs sse='aws:kms'")
        if self.multipart_concurrency < 1:
            raise ValueError("SinkSettings.multipart_concurrency must be at least 1")
        if not 0 <= self.single_put_max <= SINGLE_PUT_LIMIT:
            raise ValueError(f"SinkSettings.single_put_max must be within 0..{SINGLE_PUT_LIMIT}")
        try:
            self.key_template.format(prefix="p/", resource_type="Messages", day="2024-01-02", job_sid="JS1")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"SinkSettings.key_template {self.key_template!r} is invalid: {exc!r}") from None


@dataclass(frozen=True)
class StoredObject:
    """What HeadObject tells about an object (metadata keys lower-case, as S3 returns them)."""

    size: int
    metadata: dict[str, str]
    etag: str
    # S3's own full-object SHA-256 (hex), when it computed one (our copies ask for it); None otherwise
    s3_sha256: str | None = None


@dataclass(frozen=True)
class StoredDay:
    """A day file already at its final key: what the registry records about it."""

    key: str
    size: int
    sha256: str | None
    records: int | None  # None when the object does not say


@dataclass(frozen=True)
class StreamDigest:
    """What a verified stream proved about its bytes."""

    size: int
    sha256: str
    records: int


@dataclass(frozen=True)
class UploadResult:
    key: str
    size: int
    sha256: str
    records: int
    etag: str


class VerifiedStream(Protocol):
    """A non-seekable byte stream that verifies itself; ``read`` raises instead of returning bad data."""

    def read(self, size: int | None = -1, /) -> bytes: ...

    def digest(self) -> StreamDigest:
        """The verified digest; raises if the stream was not read to a verified end."""
        ...


# -- transfer tuning ---------------------------------------------------------------------------------


def part_size_for(expected_size: int) -> int:
    """Smallest whole-MiB part size, at least 8 MiB, that fits the file in 10,000 parts."""
    needed = math.ceil(max(expected_size, 0) / MAX_PARTS / MiB) * MiB
    return max(MIN_PART_SIZE, needed)


def upload_transfer_config(expected_size: int, concurrency: int) -> TransferConfig:
    """TransferConfig whose in-memory part buffers stay near UPLOAD_BUFFER_BUDGET.

    s3transfer holds up to ``max_in_memory_upload_chunks`` parts (being sent or queued) plus the one
    the reading thread is filling; by default 10 parts, i.e. 80+ MiB at 8 MiB, so it is set here.
    """
    part = part_size_for(expected_size)
    in_flight = max(1, min(concurrency, UPLOAD_BUFFER_BUDGET // part))
    config = TransferConfig(
        multipart_threshold=part,
        multipart_chunksize=part,
        max_concurrency=in_flight,
        use_threads=True,
        preferred_transfer_client="classic",  # the CRT client ignores these limits
    )
    config.max_in_memory_upload_chunks = in_flight
    return config


def copy_transfer_config(size: int, concurrency: int) -> TransferConfig:
    """TransferConfig for a server-side copy: one CopyObject for small objects, big parts otherwise."""
    part = max(COPY_PART_SIZE, math.ceil(size / MAX_PARTS / MiB) * MiB)
    return TransferConfig(
        multipart_threshold=COPY_MULTIPART_THRESHOLD,
        multipart_chunksize=part,
        max_concurrency=concurrency,
        use_threads=True,
        preferred_transfer_client="classic",
    )


# -- the sink ----------------------------------------------------------------------------------------


class S3Sink:
    """The only place that writes to S3 (the web's read-only bucket probe is ``app.s3_client.probe_bucket``).
    Thread-safe as far as the boto3 client is. Implements ``app.sync.ManifestStore`` for the job manifest."""

    def __init__(self, client: S3Client, settings: SinkSettings) -> None:
        self.client = client
        self.settings = settings

    @property
    def bucket(self) -> str:
        return self.settings.bucket

    @property
    def staging_prefix(self) -> str:
        return f"{self.settings.prefix}{STAGING_DIR}"

    def day_key(self, resource_type: str, day: str | date, job_sid: str) -> str:
        """The final key of a day file, from the settings' template."""
        day_text = day.isoformat() if isinstance(day, date) else str(day)
        return self.settings.key_template.format(
            prefix=self.settings.prefix, resource_type=resource_type, day=day_text, job_sid=job_sid
        )

    def manifest_key(self, resource_type: str, job_sid: str) -> str:
        """Where a job's manifest goes (``app.sync.ManifestStore``)."""
        return f"{self.settings.prefix}{resource_type}/_manifests/{job_sid}.json"

    def day_index(self, resource_type: str) -> dict[str, tuple[str, int]]:
        """day -> (key, size) of every day file of ``resource_type`` in the bucket (``app.coverage.BucketIndex``):
        one paged ListObjectsV2 under the template's fixed prefix, keys matched against the template."""
        pattern, prefix = _key_pattern(self.settings, resource_type)
        found: dict[str, tuple[str, int]] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents") or []:
                    match = pattern.fullmatch(obj["Key"])
                    if match:
                        found[match.group("day")] = (obj["Key"], int(obj["Size"]))
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "ListObjectsV2", self.bucket, prefix) from exc
        return found

    def staging_key(self, key: str) -> str:
        return f"{self.staging_prefix}{uuid.uuid4().hex}/{posixpath.basename(key) or 'object'}"

    # -- reads ----------------------------------------------------------------------------------------

    def head(self, key: str) -> StoredObject | None:
        """Size, metadata, ETag (and S3's full-object SHA-256) of the object at ``key``; None if none."""
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise classify_s3_error(exc, "HeadObject", self.bucket, key) from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, "HeadObject", self.bucket, key) from exc
        return StoredObject(
            size=int(resp["ContentLength"]),
            metadata=dict(resp.get("Metadata") or {}),
            etag=str(resp.get("ETag", "")).strip('"'),
            s3_sha256=_full_object_sha256(resp),
        )

    def stored_day(self, key: str, expected_size: int | None, twilio_create_date: str | None) -> StoredDay | None:
        """What ``key`` holds if it is already this very Twilio file (same size and create_date, written by this
        sink), else None: the one "already stored?" decision of a day copy. Without a size or create_date
        nothing can be matched: None, and no request is made. A record count that cannot be read is None."""
        if expected_size is None or not twilio_create_date:
            return None
        stored = self.head(key)
        if not holds_twilio_file(stored, expected_size, twilio_create_date):
            return None
        assert stored is not None
        records = stored.metadata.get("records", "")
        return StoredDay(key, stored.size, stored.metadata.get("sha256"), int(records) if records.isdigit() else None)

    def check_bucket(self) -> None:
        """Readiness: raise PermanentS3Error/TransientS3Error unless the bucket answers HeadBucket."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            error = classify_s3_error(exc, "HeadBucket", self.bucket)
            if _is_not_found(exc) or error.code == "NoSuchBucket":
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

    # -- writes ---------------------------------------------------------------------------------------

    def upload_verified(
        self,
        reader: VerifiedStream,
        key: str,
        expected_size: int,
        metadata: Mapping[str, str],
    ) -> UploadResult:
        """Upload a self-verifying stream once and publish it at ``key`` with its digest in the metadata.

        The caller has already decided that ``key`` does not hold this file (``stored_day``, under its per-key
        lock). Errors raised by the reader (integrity, download) propagate unchanged; S3 errors are classified.
        """
        _check_metadata(metadata)
        if expected_size <= self.settings.single_put_max:
            return self._put_verified(reader, key, expected_size, metadata)
        staging = self.staging_key(key)
        try:
            self._upload_staging(reader, staging, expected_size, metadata)
            digest = reader.digest()
            final_metadata = {**metadata, **_digest_metadata(digest)}
            self._publish(staging, key, final_metadata, digest.size)
            stored = self._check_published(key, digest)
            return _result(key, digest, etag=stored.etag)
        finally:
            self._delete_quietly(staging)

    def _put_verified(
        self, reader: VerifiedStream, key: str, expected_size: int, metadata: Mapping[str, str]
    ) -> UploadResult:
        """Small files: verify in memory, then one PutObject carrying the metadata and our SHA-256.

        S3 checks the body against ``ChecksumSHA256`` and refuses a mismatch (BadDigest), so what is stored
        is proven to be what we hashed, and a PutObject is atomic: no staging object, no copy, no read-back.
        """
        body = read_verified(reader, expected_size)
        digest = reader.digest()
        checksum = base64.b64encode(bytes.fromhex(digest.sha256)).decode()
        extra = {
            "Metadata": {**metadata, **_digest_metadata(digest)},
            "ContentType": GZIP_CONTENT_TYPE,
            "ChecksumAlgorithm": "SHA256",  # both: botocore then sends our value instead of computing one
            "ChecksumSHA256": checksum,
            **self._encryption_args(),
            **self._storage_args(),
        }
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **extra)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "PutObject", self.bucket, key) from exc
        echoed = resp.get("ChecksumSHA256")
        if echoed is not None and echoed != checksum:
            self._delete_quietly(key)
            raise self._not_verified(key, f"stored bytes whose SHA-256 is {echoed}, not {checksum}", "PutObject")
        return _result(key, digest, etag=str(resp.get("ETag", "")).strip('"'))

    def put_json(self, key: str, obj: Any) -> None:
        """Write a small JSON document (the per-job manifest) with the same SSE and storage class.

        A permanent refusal is raised as ``ManifestWriteRefused``, which ``app.sync`` knows as ManifestRefused."""
        body = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
        args = {**self._encryption_args(), **self._storage_args()}
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json", **args)
        except (ClientError, BotoCoreError) as exc:
            error = classify_s3_error(exc, "PutObject", self.bucket, key)
            if isinstance(error, PermanentS3Error):
                raise ManifestWriteRefused(
                    str(error), operation=error.operation, bucket=error.bucket, key=key, code=error.code
                ) from exc
            raise error from exc

    # -- janitor --------------------------------------------------------------------------------------

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort incomplete multipart uploads under the prefix and delete staging objects older than
        ``older_than``; returns how many were removed. Keep the threshold far above the longest copy.

        With an empty prefix the whole bucket would be in scope, and other writers' uploads are not ours
        to abort: then only uploads under the staging prefix are (leave the rest to a lifecycle rule).
        """
        cutoff = datetime.now(UTC) - older_than
        return self._abort_stale_multipart(cutoff) + self._delete_stale_staging(cutoff)

    def _abort_stale_multipart(self, cutoff: datetime) -> int:
        aborted = 0
        for upload in self._iter_multipart_uploads():
            if upload["Initiated"] > cutoff:
                continue
            key, upload_id = upload["Key"], upload["UploadId"]
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    continue  # completed or aborted meanwhile
                raise classify_s3_error(exc, "AbortMultipartUpload", self.bucket, key) from exc
            except BotoCoreError as exc:
                raise classify_s3_error(exc, "AbortMultipartUpload", self.bucket, key) from exc
            log.info("aborted stale multipart upload %s of s3://%s/%s", upload_id, self.bucket, key)
            aborted += 1
        return aborted

    def _iter_multipart_uploads(self) -> Iterator[dict[str, Any]]:
        prefix = self.settings.prefix or self.staging_prefix
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                yield from page.get("Uploads") or []
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "ListMultipartUploads", self.bucket, prefix) from exc

    def _delete_stale_staging(self, cutoff: datetime) -> int:
        stale: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.staging_prefix):
                stale.extend(o["Key"] for o in page.get("Contents") or [] if o["LastModified"] <= cutoff)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "ListObjectsV2", self.bucket, self.staging_prefix) from exc
        deleted = 0
        for start in range(0, len(stale), 1000):
            deleted += self._delete_batch(stale[start : start + 1000])
        return deleted

    def _delete_batch(self, keys: list[str]) -> int:
        try:
            resp = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": False}
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "DeleteObjects", self.bucket, self.staging_prefix) from exc
        for error in resp.get("Errors") or []:
            log.warning("could not delete staging object %s: %s", error.get("Key"), error.get("Code"))
        return len(resp.get("Deleted") or [])

    # -- internals ------------------------------------------------------------------------------------

    def _upload_staging(
        self, reader: VerifiedStream, staging: str, expected_size: int, metadata: Mapping[str, str]
    ) -> None:
        config = upload_transfer_config(expected_size, self.settings.multipart_concurrency)
        extra = {"ContentType": GZIP_CONTENT_TYPE, "Metadata": dict(metadata), **self._encryption_args()}
        try:
            self.client.upload_fileobj(reader, self.bucket, staging, ExtraArgs=extra, Config=config)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "Upload", self.bucket, staging) from exc

    def _publish(self, staging: str, key: str, metadata: dict[str, str], size: int) -> None:
        extra = {
            "Metadata": metadata,
            "MetadataDirective": "REPLACE",
            "ContentType": GZIP_CONTENT_TYPE,
            "ChecksumAlgorithm": "SHA256",  # S3 recomputes it over the copied bytes (see _check_published)
            **self._encryption_args(),
            **self._storage_args(),
        }
        config = copy_transfer_config(size, self.settings.multipart_concurrency)
        source = {"Bucket": self.bucket, "Key": staging}
        try:
            self.client.copy(source, self.bucket, key, ExtraArgs=extra, Config=config)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "Copy", self.bucket, key) from exc

    def _check_published(self, key: str, digest: StreamDigest) -> StoredObject:
        """Read the final object back: our size and sha256, and S3's own SHA-256 where it has one.

        S3 computes a full-object SHA-256 on a single CopyObject asked for one, which proves the stored
        bytes are the ones we hashed (a multipart copy gets a checksum of part checksums instead, which
        moto does not mark as such: only single copies are compared). Should it ever disagree, the
        object is removed, never left.
        """
        stored = self.head(key)
        single_copy = digest.size < COPY_MULTIPART_THRESHOLD
        problem = None
        if stored is None or not _holds(stored, digest):
            problem = "does not show the copied size/sha256"
        elif single_copy and stored.s3_sha256 is not None and stored.s3_sha256 != digest.sha256:
            problem = f"holds bytes whose S3 SHA-256 is {stored.s3_sha256}, not {digest.sha256}"
            self._delete_quietly(key)
        if stored is None or problem:
            raise self._not_verified(key, f"{problem} after the copy", "CopyObject")
        return stored

    def _not_verified(self, key: str, problem: str, operation: str) -> TransientS3Error:
        """What S3 holds at ``key`` is not what we verified: retried (the object has been removed)."""
        return TransientS3Error(
            f"s3://{self.bucket}/{key} {problem}",
            operation=operation,
            bucket=self.bucket,
            key=key,
            code=f"VerifyAfter{operation.removesuffix('Object')}",
        )

    def _delete_quietly(self, key: str) -> None:
        """Best effort, never a copy failure: a staging object left behind is the janitor's job, an unverified
        final object is replaced by the retry."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not delete s3://%s/%s (the janitor retries staging objects): %s", self.bucket, key, exc)

    def _encryption_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.settings.sse:
            args["ServerSideEncryption"] = self.settings.sse
        if self.settings.kms_key_id:
            args["SSEKMSKeyId"] = self.settings.kms_key_id
        return args

    def _storage_args(self) -> dict[str, str]:
        return {"StorageClass": self.settings.storage_class} if self.settings.storage_class else {}


def _key_pattern(settings: SinkSettings, resource_type: str) -> tuple[re.Pattern[str], str]:
    """The key template as a regex capturing ``day`` (and the literal prefix before its first variable part)."""
    fixed = {"prefix": settings.prefix, "resource_type": resource_type}
    variable = {"day": r"(?P<day>\d{4}-\d{2}-\d{2})", "job_sid": r"J[A-Z][0-9a-fA-F]{32}"}
    regex, literal_prefix, seen_variable, seen_day = "", "", False, False
    for text, name, _spec, _conv in string.Formatter().parse(settings.key_template):
        regex += re.escape(text)
        literal_prefix += "" if seen_variable else text
        if name in fixed:
            regex += re.escape(fixed[name])
            literal_prefix += "" if seen_variable else fixed[name]
        elif name in variable:
            regex += "(?P=day)" if name == "day" and seen_day else variable[name]
            seen_day = seen_day or name == "day"
            seen_variable = True
    return re.compile(regex), literal_prefix


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


def _full_object_sha256(head: Mapping[str, Any]) -> str | None:
    """S3's SHA-256 of the whole object as hex; None if absent or composite (a checksum of part checksums)."""
    value = head.get("ChecksumSHA256")
    if not value or "-" in value or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (ValueError, binascii.Error):
        return None


def holds_twilio_file(stored: StoredObject | None, expected_size: int, twilio_create_date: str | None) -> bool:
    """Whether ``stored`` is this very Twilio file, stored by this sink: it carries a sha256 (so it passed
    verification) and the same size and Twilio ``create_date``."""
    if stored is None or not twilio_create_date:
        return False
    meta = stored.metadata
    return (
        stored.size == expected_size
        and meta.get("size") == str(expected_size)
        and meta.get("twilio_create_date") == twilio_create_date
        and bool(meta.get("sha256"))
    )


def _digest_metadata(digest: StreamDigest) -> dict[str, str]:
    return {"size": str(digest.size), "sha256": digest.sha256, "records": str(digest.records)}


def _holds(stored: StoredObject, digest: StreamDigest) -> bool:
    return stored.size == digest.size and stored.metadata.get("sha256") == digest.sha256


def _result(key: str, digest: StreamDigest, *, etag: str) -> UploadResult:
    return UploadResult(key, digest.size, digest.sha256, digest.records, etag)


def _check_metadata(metadata: Mapping[str, str]) -> None:
    """S3 user metadata travels in HTTP headers: ASCII strings only (size/sha256/records are the sink's)."""
    for name, value in metadata.items():
        if not (isinstance(name, str) and isinstance(value, str) and (name + value).isascii()):
            raise ValueError(f"S3 metadata must be ASCII strings: {name!r}={value!r}")
