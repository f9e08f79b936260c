"""Every S3 write of the relay: verified uploads of day files, the job manifest, the janitor.

How a day file gets to its final key without ever being visible half-done or unverified
-------------------------------------------------------------------------------------------
Every byte is written once, straight to the final key; nothing is staged or copied (only ``relay migrate-layout``
copies verified day files, server-side, to another key template: ``copy_within``). Two ways in, by the Day's
size, both carrying a SHA-256 computed by us from the bytes the verifying reader handed out, which S3 checks
against what it received whatever ``AWS_REQUEST_CHECKSUM_CALCULATION`` says (botocore sends a checksum it is
given instead of computing one):

- Up to ``SinkSettings.single_put_max`` (16 MiB by default, ``S3_SINGLE_PUT_MAX_MIB``), and for an empty
  file: the file is read through the verifying reader into one preallocated buffer, then written with one
  PutObject carrying ``ChecksumSHA256`` (S3 refuses a mismatch: BadDigest), the metadata and, in its
  ``Tagging`` parameter, the digest tags: atomic, one request instead of four. Against SeaweedFS it measured
  1.2-3x faster than the multipart path up to 8 MiB (most day files), about even at 16 MiB, slower from
  32 MiB, where the multipart path overlaps verifying and sending (bench/README.md, "Single PUT or multipart").
- Bigger: a multipart upload *of the final key* (``_stream_multipart``). CreateMultipartUpload carries what is
  known before the first byte; parts are read from the reader (``workers.copy.VerifyingReader``, which raises
  instead of handing out the last bytes if the size, gzip framing, CRC or length are wrong) and uploaded by a
  few threads while the reader goes on verifying, at most ``parts_in_memory`` parts held at once. Each
  UploadPart carries the part's SHA-256 (hashed on the uploading thread) and S3 refuses a part whose body does
  not match. CompleteMultipartUpload (with every part's checksum, which S3 checks again) is sent only after
  ``reader.digest()`` succeeded; any failure (reader, S3, a timeout or interrupt) aborts the upload instead, so
  S3 never shows a partial or unverified object. What a killed worker leaves (an open upload) is aborted by
  ``abort_stale_uploads`` and by the bucket's lifecycle rule.

Where each fact lives: one rule for every size, one place per store kind
------------------------------------------------------------------------
- **Metadata** (fixed when an upload starts): what is known before the first byte: ``job_sid``, ``day``,
  ``resource_type``, ``twilio_create_date`` and ``size`` (Twilio's size, which the reader enforces). The
  "already stored?" check (``stored_day``) needs no more to match a file.
- **sha256 and records**, known only after the last byte, go where the store keeps them safely, decided at
  start-up by the store probe (``app.bucket.probe``: ``S3_OBJECT_TAGS=auto|on|off``, ``SinkSettings.digest_in_tags``):

  * a store whose tags are safe (AWS S3, SeaweedFS, moto): **the object's tags**, whatever the size. The single
    PUT sets them atomically (its ``Tagging`` parameter); a multipart upload gets them with PutObjectTagging right
    after completion: for that moment, or if the worker dies in between, the object has no ``sha256`` tag, is
    not taken as stored, and the day's retry writes it again.
  * a store whose PutObjectTagging is unsafe or unsupported (``rclone serve s3`` replaces the object with the
    tagging XML): **the job manifest** (``<prefix><resource_type>/_manifests/<job_sid>.json``, its ``days``
    list: key, size, sha256, records), named by the object's ``job_sid`` metadata; no request touches the day
    file after it is written. Not the metadata: it is fixed before the last byte for multipart uploads, and such
    gateways may keep it in memory only (rclone does), while the manifest is an object like the day files.

  The job manifest holds them on every store; the tags are the per-object copy where the store keeps tags.
  Objects written by versions before these had them in the metadata; ``stored_day`` reads that too.

What the bucket holds is what was verified: after the last request that touches a published key (the single
PUT, PutObjectTagging or CompleteMultipartUpload, the manifest's PUT) one HeadObject checks that the key still
holds the verified object: the same size, and the same ETag as that write answered (the multipart ETag from
CompleteMultipartUpload, unless the probe found the store answers another one: then the size only). A mismatch
is an anomaly (``_check_published``): ERROR log with bucket, key and operation, ``relay_store_anomalies_total``,
the object deleted and a TransientS3Error, so the day is not recorded as copied and its retry writes it again
(``day.failed`` once the retries are spent). Cost: one HeadObject per day file.

Alternatives rejected: staging + server-side copy (wrote every big file twice, to get the sha256 into the
metadata); S3's full-object checksums of a multipart upload (FULL_OBJECT) exist for CRCs only, not SHA-256; a
sidecar object per day (two objects to keep consistent, one more write).

Errors: every S3 failure is raised as ``TransientS3Error`` (throttling, 5xx, connection trouble, a refused
checksum: retry later) or ``PermanentS3Error`` (access denied, missing bucket, bad configuration), both
carrying the operation, bucket and key (``workers.copy_errors``, the one hierarchy of copy errors).

Whether a day is already stored is decided once, by ``stored_day`` (see ``workers.day_copier``), before
anything is downloaded; the write paths then always write what they verified.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import re
import string
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from boto3.s3.transfer import TransferConfig
from botocore import exceptions as boto_exc
from botocore.exceptions import BotoCoreError, ClientError

from app.bucket.migrate_layout import HeldObject
from app.jobs.lifecycle import ManifestRefused
from app.jobs.recovery import MARKER_KEY
from app.platform.metrics import STORE_ANOMALIES
from app.platform.s3_client import S3Client, sha256_b64
from workers.copy_errors import PermanentS3Error, S3Error, TransientS3Error

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_PARTS = 10_000
MIN_PART_SIZE = 8 * MiB
# Part buffers of a multipart upload (parts being sent plus the one being read) stay near this budget, so a
# worker stays well under 150 MiB RSS.
UPLOAD_BUFFER_BUDGET = 64 * MiB
# Day files up to this size are held in memory, verified, and written with one PutObject (see the module
# docstring): faster than a multipart upload up to about this size, slower above (bench/README.md).
SINGLE_PUT_MAX = 16 * MiB
SINGLE_PUT_LIMIT = 5 * GiB  # S3's own PutObject limit
COPY_OBJECT_MAX = SINGLE_PUT_LIMIT  # S3's CopyObject limit: bigger objects are copied in parts (UploadPartCopy)
UPLOAD_READ_STEP = MiB  # small steps: the reader's own buffer stays tiny next to the body buffer
READ_CHUNK = MiB  # what ``read_object`` hands out at a time (``relay verify``)
DEFAULT_KEY_TEMPLATE = "{prefix}{resource_type}/day={day}/{resource_type}-{day}.json.gz"
GZIP_CONTENT_TYPE = "application/gzip"
# Versions before the streaming multipart path staged big files here. Nothing writes there any more; the
# janitor still deletes what they left (and the lifecycle rule expires it) for one release: remove after that.
STAGING_DIR = "_staging/"
SSE_MODES = (None, "AES256", "aws:kms")
CHECKSUM_HEADER = "x-amz-checksum-sha256"


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
        "InvalidDigest",
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
    single_put_max: int = SINGLE_PUT_MAX  # bytes; 0 sends every non-empty file through a multipart upload
    # The store's write path (``app.bucket.probe.decide``): sha256 and records as object tags, or only in the job
    # manifests; whether HeadObject keeps CompleteMultipartUpload's ETag (the check after a write compares it).
    digest_in_tags: bool = True
    multipart_etag_kept: bool = True

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
            self.key_template.format(
                prefix="p/", resource_type="Messages", day="2024-01-02", job_sid="JS1", account_sid="AC1"
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"SinkSettings.key_template {self.key_template!r} is invalid: {exc!r}") from None


@dataclass(frozen=True)
class StoredObject:
    """What HeadObject tells about an object (metadata keys lower-case, as S3 returns them)."""

    size: int
    metadata: dict[str, str]
    etag: str
    # S3's own full-object SHA-256 (hex), when it has one (a single PutObject with ChecksumSHA256); None for a
    # multipart object (its checksum is one of part checksums) or when S3 keeps none
    s3_sha256: str | None = None


@dataclass(frozen=True)
class StoredDay:
    """A day file already at its final key: what the registry records about it."""

    key: str
    size: int
    sha256: str | None
    records: int | None  # None when the object does not say
    etag: str | None = field(default=None, compare=False)  # HeadObject's (not part of which file it is)


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
    """A non-seekable byte stream that verifies itself; ``read`` raises instead of returning bad data, and returns
    fewer bytes than asked only at its verified end."""

    def read(self, size: int | None = -1, /) -> bytes: ...

    def digest(self) -> StreamDigest:
        """The verified digest; raises if the stream was not read to a verified end."""
        ...


# -- multipart tuning --------------------------------------------------------------------------------


def part_size_for(expected_size: int) -> int:
    """Smallest whole-MiB part size, at least 8 MiB, that fits the file in 10,000 parts."""
    needed = math.ceil(max(expected_size, 0) / MAX_PARTS / MiB) * MiB
    return max(MIN_PART_SIZE, needed)


def parts_in_memory(part_size: int, concurrency: int) -> int:
    """How many parts a multipart upload may hold at once: one being read plus up to ``concurrency`` being sent,
    within UPLOAD_BUFFER_BUDGET (but never fewer than 2: one read while one is sent, whatever the part size)."""
    return max(2, min(concurrency + 1, UPLOAD_BUFFER_BUDGET // part_size))


def composite_sha256(part_checksums: list[str]) -> str:
    """S3's checksum of a multipart object: SHA-256 of the parts' raw SHA-256 digests, then ``-<parts>``."""
    joined = b"".join(base64.b64decode(c) for c in part_checksums)
    return f"{sha256_b64(joined)}-{len(part_checksums)}"


class _PartPipeline:
    """Reads parts on the calling thread and hands each to ``send`` on a small thread pool, holding at most
    ``slots`` parts in memory; the first failure of a send stops the reading. Used by ``S3Sink``."""

    def __init__(self, send: Callable[[int, bytes], dict[str, Any]], slots: int) -> None:
        self._send = send
        self._slots = threading.BoundedSemaphore(slots)
        self._failed = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, slots - 1), thread_name_prefix="s3-part")
        self._futures: list[Future[dict[str, Any]]] = []

    def run(self, reader: VerifiedStream, part_size: int) -> list[dict[str, Any]]:
        """Every part of ``reader`` sent, in order: ``send``'s results. Raises the reader's or the first send's
        error only once no send is running any more (so an abort that follows leaves no part behind)."""
        finished = False
        try:
            for number in range(1, MAX_PARTS + 1):
                self._slots.acquire()
                if self._failed.is_set():
                    break
                data = reader.read(part_size)
                if not data and number > 1:
                    break
                self._futures.append(self._pool.submit(self._one, number, data))
                if len(data) < part_size:
                    break
            else:
                raise ValueError(f"more than {MAX_PARTS} parts of {part_size} bytes")
            finished = not self._failed.is_set()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=not finished)
        for future in self._futures:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                raise error
        return [future.result() for future in self._futures]

    def _one(self, number: int, data: bytes) -> dict[str, Any]:
        try:
            return self._send(number, data)
        except BaseException:
            self._failed.set()
            raise
        finally:
            del data
            self._slots.release()


# -- the sink ----------------------------------------------------------------------------------------


class S3Sink:
    """The only place that writes the relay's objects to S3 (the store probe's own small objects under
    ``<prefix>_relay/`` are ``app.bucket.probe``'s; the web's read-only bucket probe is
    ``app.platform.s3_client.probe_bucket``).
    Thread-safe as far as the boto3 client is. Implements ``app.jobs.lifecycle.ManifestStore`` for the job manifest."""

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

    @property
    def staging_prefix(self) -> str:
        """Where older versions staged big files (see STAGING_DIR): only the janitor still looks there."""
        return f"{self.settings.prefix}{STAGING_DIR}"

    def day_key(self, resource_type: str, day: str | date, job_sid: str, account_sid: str = "") -> str:
        """The final key of a day file, from the settings' template."""
        day_text = day.isoformat() if isinstance(day, date) else str(day)
        return self.settings.key_template.format(
            prefix=self.settings.prefix,
            resource_type=resource_type,
            day=day_text,
            job_sid=job_sid,
            account_sid=account_sid,
        )

    def manifest_key(self, resource_type: str, job_sid: str) -> str:
        """Where a job's manifest goes (``app.jobs.lifecycle.ManifestStore``)."""
        return f"{self.settings.prefix}{resource_type}/_manifests/{job_sid}.json"

    def read_marker(self) -> dict[str, Any] | None:
        """The bucket's copy of the registry marker (``app.jobs.recovery.MarkerStore``); None if there is none."""
        key = f"{self.settings.prefix}{MARKER_KEY}"
        resp = self._unless_missing("GetObject", key, lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        marker = json.loads(resp["Body"].read()) if resp is not None else None
        return marker if isinstance(marker, dict) else None

    def _unless_missing(self, operation: str, key: str, call: Callable[[], Any]) -> Any:
        """``call()``'s answer, None if the key does not exist; every other S3 error classified."""
        try:
            return call()
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise classify_s3_error(exc, operation, self.bucket, key) from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, operation, self.bucket, key) from exc

    def write_marker(self, marker: dict[str, Any]) -> None:
        self.put_json(f"{self.settings.prefix}{MARKER_KEY}", marker)

    def day_index(self, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int, str]]:
        """day -> (key, size, ETag) of every day file of ``resource_type`` in the bucket
        (``app.feeds.coverage.BucketIndex``): one paged ListObjectsV2 under the template's fixed prefix, keys matched
        against the template. The ETag is "" where the listing gives none."""
        pattern, prefix = _key_pattern(self.settings, resource_type, account_sid)
        found: dict[str, tuple[str, int, str]] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents") or []:
                    match = pattern.fullmatch(obj["Key"])
                    if match:
                        etag = str(obj.get("ETag") or "").strip('"')
                        found[match.group("day")] = (obj["Key"], int(obj["Size"]), etag)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "ListObjectsV2", self.bucket, prefix) from exc
        return found

    def holds(self, key: str) -> bool:
        """``app.feeds.coverage.BucketIndex.holds``: a HEAD of ``key`` (S3 errors raise, classified)."""
        return self.head(key) is not None

    # -- reads ----------------------------------------------------------------------------------------

    def head(self, key: str) -> StoredObject | None:
        """Size, metadata, ETag (and S3's full-object SHA-256) of the object at ``key``; None if none."""
        resp = self._unless_missing(
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

    def read_object(self, key: str) -> Generator[bytes, None, None] | None:
        """``app.bucket.verify.ObjectReader``: the object's bytes in chunks of READ_CHUNK, None if there is no object at
        ``key`` (S3 errors raise, classified); closing the generator closes the download."""
        resp = self._unless_missing("GetObject", key, lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        return None if resp is None else self._chunks(resp["Body"], key)

    def _chunks(self, body: Any, key: str) -> Generator[bytes, None, None]:
        try:
            yield from body.iter_chunks(READ_CHUNK)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "GetObject", self.bucket, key) from exc
        finally:
            body.close()

    def tags(self, key: str) -> dict[str, str]:
        """The object's tags (GetObjectTagging); {} if it has none or is gone."""
        try:
            resp = self.client.get_object_tagging(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_not_found(exc):
                return {}
            raise classify_s3_error(exc, "GetObjectTagging", self.bucket, key) from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, "GetObjectTagging", self.bucket, key) from exc
        return {str(t["Key"]): str(t["Value"]) for t in resp.get("TagSet") or []}

    def stored_day(self, key: str, expected_size: int | None, twilio_create_date: str | None) -> StoredDay | None:
        """What ``key`` holds if it is already this very Twilio file (same size and create_date, written by this
        sink, with its sha256), else None: the one "already stored?" decision of a day copy.

        The match comes from HeadObject's metadata; sha256 and records from where this store keeps them (module
        docstring): the tags (GetObjectTagging), or the job manifest of the object's ``job_sid``; or the metadata
        for objects written by older versions. An object without a sha256 anywhere (its tagging never happened, or
        its job has no manifest yet) is not stored: it is written again. Without a size or create_date nothing can
        be matched: None, and no request is made."""
        if expected_size is None or not twilio_create_date:
            return None
        stored = self.head(key)
        if stored is None or not holds_twilio_file(stored, expected_size, twilio_create_date):
            return None
        digest = self.tags(key) if self.settings.digest_in_tags else self._manifest_digest(key, stored)
        source = digest if digest.get("sha256") else stored.metadata
        sha256, records = source.get("sha256"), source.get("records", "")
        if not sha256:
            return None
        return StoredDay(key, stored.size, sha256, int(records) if records.isdigit() else None, stored.etag or None)

    def _manifest_digest(self, key: str, stored: StoredObject) -> dict[str, str]:
        """sha256 and records of ``key`` from the manifest of the job that wrote it ({} if none says so)."""
        job_sid, resource_type = stored.metadata.get("job_sid"), stored.metadata.get("resource_type")
        if not job_sid or not resource_type:
            return {}
        manifest_key = self.manifest_key(resource_type, job_sid)
        resp = self._unless_missing(
            "GetObject", manifest_key, lambda: self.client.get_object(Bucket=self.bucket, Key=manifest_key)
        )
        try:
            days = json.loads(resp["Body"].read()).get("days") if resp is not None else None
        except (ValueError, AttributeError):
            days = None
        for day in days if isinstance(days, list) else []:
            if isinstance(day, dict) and day.get("key") == key and day.get("size") == stored.size:
                records = day.get("records")
                return {"sha256": str(day.get("sha256") or ""), "records": "" if records is None else str(records)}
        return {}

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
        """Write a self-verifying stream once, straight to ``key``, and publish it only once verified.

        ``metadata`` (job_sid, day, resource_type, twilio_create_date) goes into the object's metadata with
        ``size``; sha256 and records into its tags where the store keeps them safely (``digest_in_tags``), else
        only into the job manifest the caller writes (see the module docstring). The caller has already decided
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
        etag = str(resp.get("ETag", "")).strip('"')
        self._check_published(key, "PutObject", expected_size, etag)
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
                    self._check_published(key, operation, digest.size, expected_etag)
                raise
        self._check_published(key, operation, digest.size, expected_etag)
        return _result(key, digest, etag=etag)

    def _create_multipart(self, key: str, metadata: Mapping[str, str]) -> str:
        extra = {
            "Metadata": dict(metadata),
            "ContentType": GZIP_CONTENT_TYPE,
            "ChecksumAlgorithm": "SHA256",  # every part must then carry a SHA-256, which S3 checks
            **self._encryption_args(),
            **self._storage_args(),
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

        return _PartPipeline(send, parts_in_memory(part_size, self.settings.multipart_concurrency)).run(
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
            raise self._not_verified(key, f"took part {number} as SHA-256 {echoed}, not {checksum}", "UploadPart")
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
            self._delete_quietly(key)
            raise self._not_verified(key, f"has the checksum {echoed}, not {expected}", "CompleteMultipartUpload")
        return str(resp.get("ETag", "")).strip('"')

    def _tag(self, key: str, digest: StreamDigest) -> None:
        """sha256 and records, known only now, as the object's tags (see the module docstring)."""
        tag_set = [{"Key": k, "Value": v} for k, v in _digest_tags(digest).items()]
        try:
            self.client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set})
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "PutObjectTagging", self.bucket, key) from exc

    # -- layout migration (``app.bucket.migrate_layout.LayoutStore``) -----------------------------------------

    @property
    def keeps_tags(self) -> bool:
        return self.settings.digest_in_tags

    def held(self, key: str) -> HeldObject | None:
        """Size, ETag, and sha256 / records from where this store keeps them (as ``stored_day`` reads them)."""
        stored = self.head(key)
        if stored is None:
            return None
        digest = self.tags(key) if self.settings.digest_in_tags else self._manifest_digest(key, stored)
        source = digest if digest.get("sha256") else stored.metadata
        records = source.get("records", "")
        return HeldObject(
            stored.size, stored.etag, source.get("sha256") or None, int(records) if records.isdigit() else None
        )

    def copy_within(self, old_key: str, new_key: str, size: int, sha256: str | None, records: int | None) -> None:
        """Server-side copy of ``old_key`` to ``new_key`` (metadata kept): one CopyObject up to S3's 5 GiB limit,
        boto3's managed multipart copy (UploadPartCopy) above it; then the digest tags where the store keeps tags,
        and the HeadObject check of every write (``_check_published``: the copy deleted and an error if the new key
        does not hold it)."""
        extra: dict[str, Any] = {**self._encryption_args(), **self._storage_args()}
        source = {"Bucket": self.bucket, "Key": old_key}
        etag: str | None = None
        try:
            if size <= COPY_OBJECT_MAX:
                resp = self.client.copy_object(
                    Bucket=self.bucket, Key=new_key, CopySource=source, MetadataDirective="COPY", **extra
                )
                etag = str(resp.get("CopyObjectResult", {}).get("ETag", "")).strip('"') or None
            else:
                stored = self.head(old_key)
                meta = stored.metadata if stored else {}
                extra |= {"Metadata": meta, "ContentType": GZIP_CONTENT_TYPE}
                part = part_size_for(size)
                config = TransferConfig(multipart_threshold=part, multipart_chunksize=part)
                self.client.copy(source, self.bucket, new_key, ExtraArgs=extra, Config=config)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "CopyObject", self.bucket, new_key) from exc
        if self.settings.digest_in_tags and sha256:
            tags = {"sha256": sha256} | ({"records": str(records)} if records is not None else {})
            try:
                self.client.put_object_tagging(
                    Bucket=self.bucket,
                    Key=new_key,
                    Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
                )
            except (ClientError, BotoCoreError) as exc:
                raise classify_s3_error(exc, "PutObjectTagging", self.bucket, new_key) from exc
        if etag and "-" in etag and not self.settings.multipart_etag_kept:
            etag = None
        self._check_published(new_key, "CopyObject", size, etag)

    def delete(self, key: str) -> None:
        """DeleteObject (S3 errors raise, classified)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "DeleteObject", self.bucket, key) from exc

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        """Best effort, never masking the error that led here: what is left is the janitor's (and the lifecycle
        rule's) job."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not abort multipart upload of s3://%s/%s (the janitor will): %s", self.bucket, key, exc)

    def put_json(self, key: str, obj: Any) -> None:
        """Write a small JSON document (the per-job manifest) with the same SSE and storage class.

        A permanent refusal is raised as ``ManifestWriteRefused``, which ``app.jobs.lifecycle`` knows as
        ManifestRefused."""
        body = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
        args = {**self._encryption_args(), **self._storage_args()}
        try:
            resp = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                # ours, in a header: S3 checks it, and no aws-chunked body (which some gateways refuse)
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=sha256_b64(body),
                **args,
            )
        except (ClientError, BotoCoreError) as exc:
            error = classify_s3_error(exc, "PutObject", self.bucket, key)
            if isinstance(error, PermanentS3Error):
                raise ManifestWriteRefused(
                    str(error), operation=error.operation, bucket=error.bucket, key=key, code=error.code
                ) from exc
            raise error from exc
        self._check_published(key, "PutObject", len(body), str(resp.get("ETag", "")).strip('"'))

    # -- janitor --------------------------------------------------------------------------------------

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort our incomplete multipart uploads (and delete older versions' staging objects) older than
        ``older_than``; returns how many were removed. Keep the threshold far above the longest copy.

        Ours: every upload under the prefix; with an empty prefix the whole bucket would be in scope, and other
        writers' uploads are not ours to abort: then only keys the key template can produce (and the old
        staging prefix) are (leave the rest to a lifecycle rule).
        """
        cutoff = datetime.now(UTC) - older_than
        return self._abort_stale_multipart(cutoff) + self._delete_stale_staging(cutoff)

    def _abort_stale_multipart(self, cutoff: datetime) -> int:
        aborted = 0
        for upload in self._iter_multipart_uploads():
            if upload["Initiated"] > cutoff or not self._is_ours(upload["Key"]):
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

    def _is_ours(self, key: str) -> bool:
        if self.settings.prefix:
            return key.startswith(self.settings.prefix)  # the listing is limited to the prefix anyway
        return key.startswith(self.staging_prefix) or bool(_key_pattern(self.settings, None)[0].fullmatch(key))

    def _iter_multipart_uploads(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.settings.prefix):
                yield from page.get("Uploads") or []
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return  # rclone's answer when there is no open upload at all
            raise classify_s3_error(exc, "ListMultipartUploads", self.bucket, self.settings.prefix) from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, "ListMultipartUploads", self.bucket, self.settings.prefix) from exc

    def _delete_stale_staging(self, cutoff: datetime) -> int:
        """Staging objects left by versions before the streaming multipart path (see STAGING_DIR)."""
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

    # -- the check after every write -------------------------------------------------------------------

    def _check_published(self, key: str, operation: str, size: int, etag: str | None) -> None:
        """One HeadObject after the last request that touched a published key: it must still hold the verified
        object (``size``; ``etag`` unless None). Otherwise the store changed it under us (issue 19: a gateway
        that takes PutObjectTagging for a PutObject): loud (ERROR log, ``relay_store_anomalies_total``), the
        object deleted (it is not what was verified) and a TransientS3Error, so nothing records it as copied and
        the normal retry writes it again while Twilio still has the file."""
        reason = published_mismatch(self.head(key), size, etag)
        if reason is None:
            return
        STORE_ANOMALIES.labels(operation, reason).inc()
        log.error(
            "S3 %s left s3://%s/%s not holding the verified object (%s): deleted, to be written again",
            operation,
            self.bucket,
            key,
            reason,
            extra={"bucket": self.bucket, "key": key, "operation": operation, "reason": reason},
        )
        self._delete_quietly(key)
        raise TransientS3Error(
            f"s3://{self.bucket}/{key} changed after {operation} ({reason} differs from the verified object)",
            operation=operation,
            bucket=self.bucket,
            key=key,
            code="StoreAnomaly",
        )

    # -- internals ------------------------------------------------------------------------------------

    def _not_verified(self, key: str, problem: str, operation: str) -> TransientS3Error:
        """What S3 holds (or took) at ``key`` is not what we verified: retried (nothing of it is left)."""
        return TransientS3Error(
            f"s3://{self.bucket}/{key} {problem}",
            operation=operation,
            bucket=self.bucket,
            key=key,
            code=f"VerifyAfter{operation.removesuffix('Object')}",
        )

    def _delete_quietly(self, key: str) -> None:
        """Best effort, never a copy failure: an unverified final object is replaced by the retry."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not delete s3://%s/%s (the retry replaces it): %s", self.bucket, key, exc)

    def _encryption_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.settings.sse:
            args["ServerSideEncryption"] = self.settings.sse
        if self.settings.kms_key_id:
            args["SSEKMSKeyId"] = self.settings.kms_key_id
        return args

    def _storage_args(self) -> dict[str, str]:
        return {"StorageClass": self.settings.storage_class} if self.settings.storage_class else {}


def _key_pattern(
    settings: SinkSettings, resource_type: str | None, account_sid: str | None = None
) -> tuple[re.Pattern[str], str]:
    """The key template as a regex capturing ``day`` (and the literal prefix before its first variable part);
    ``resource_type`` (``account_sid``) None matches any resource type (account)."""
    fixed = {"prefix": settings.prefix} | ({"resource_type": resource_type} if resource_type else {})
    fixed |= {"account_sid": account_sid} if account_sid is not None else {}
    variable = {
        "day": r"(?P<day>\d{4}-\d{2}-\d{2})",
        "job_sid": r"J[A-Z][0-9a-fA-F]{32}",
        "resource_type": r"(?P<resource_type>[A-Za-z]+)",
        "account_sid": r"(?P<account_sid>AC[0-9a-fA-F]{32})",
    }
    regex, literal_prefix, seen_variable, seen = "", "", False, set()
    for text, name, _spec, _conv in string.Formatter().parse(settings.key_template):
        regex += re.escape(text)
        literal_prefix += "" if seen_variable else text
        if name in fixed:
            regex += re.escape(fixed[name])
            literal_prefix += "" if seen_variable else fixed[name]
        elif name in variable:
            regex += f"(?P={name})" if name in seen and name != "job_sid" else variable[name]
            seen.add(name)
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
    except ValueError:  # binascii.Error is a ValueError
        return None


def holds_twilio_file(stored: StoredObject | None, expected_size: int, twilio_create_date: str | None) -> bool:
    """Whether ``stored`` is this very Twilio file as this sink writes it: the same size (the object's and its
    ``size`` metadata) and the same Twilio ``create_date``. (Its sha256 is in its tags: see ``stored_day``.)"""
    if stored is None or not twilio_create_date:
        return False
    meta = stored.metadata
    return (
        stored.size == expected_size
        and meta.get("size") == str(expected_size)
        and meta.get("twilio_create_date") == twilio_create_date
    )


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


ANOMALY_REASONS = ("gone", "size", "etag")


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


def _digest_tags(digest: StreamDigest) -> dict[str, str]:
    return {"sha256": digest.sha256, "records": str(digest.records)}


def _result(key: str, digest: StreamDigest, *, etag: str) -> UploadResult:
    return UploadResult(key, digest.size, digest.sha256, digest.records, etag)


def _check_metadata(metadata: Mapping[str, str]) -> None:
    """S3 user metadata travels in HTTP headers: ASCII strings only (``size`` is the sink's)."""
    for name, value in metadata.items():
        if not (isinstance(name, str) and isinstance(value, str) and (name + value).isascii()):
            raise ValueError(f"S3 metadata must be ASCII strings: {name!r}={value!r}")
