"""The S3 sink: every S3 write of the relay (verified uploads of day files, the job manifest, the janitor) and
the reads that decide what is already stored.

One module per concept: ``settings`` (SinkSettings, key templates), ``values`` (what goes in and out),
``objects`` (object-level access every part shares), ``writes`` (the write path and its check after every write),
``parts`` (multipart part sizing and the upload pipeline), ``reads`` (stored days, listings), ``manifests``
(manifests and the registry marker), ``layout`` (server-side copies), ``janitor`` (stale uploads), ``errors``
(S3 error classification); ``sink`` puts them together as ``S3Sink``. Import the public names from
``workers.sink``.

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
- Bigger: a multipart upload *of the final key* (``writes.DayWriter._stream_multipart``). CreateMultipartUpload
  carries what is known before the first byte; parts are read from the reader (``workers.copy.VerifyingReader``,
  which raises instead of handing out the last bytes if the size, gzip framing, CRC or length are wrong) and
  uploaded by a few threads while the reader goes on verifying, at most ``parts_in_memory`` parts held at once. Each
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
is an anomaly (``writes.check_published``): ERROR log with bucket, key and operation,
``relay_store_anomalies_total``, the object deleted and a TransientS3Error, so the day is not recorded as copied
and its retry writes it again (``day.failed`` once the retries are spent). Cost: one HeadObject per day file.

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

from workers.sink.errors import ManifestWriteRefused, classify_s3_error
from workers.sink.parts import (
    MAX_PARTS,
    MIN_PART_SIZE,
    UPLOAD_BUFFER_BUDGET,
    composite_sha256,
    part_size_for,
    parts_in_memory,
)
from workers.sink.reads import holds_twilio_file
from workers.sink.settings import DEFAULT_KEY_TEMPLATE, SINGLE_PUT_LIMIT, SINGLE_PUT_MAX, STAGING_DIR, SinkSettings
from workers.sink.sink import S3Sink
from workers.sink.values import StoredDay, StoredObject, StreamDigest, UploadResult, VerifiedStream
from workers.sink.writes import ANOMALY_REASONS, published_mismatch, read_verified

__all__ = [
    "ANOMALY_REASONS",
    "DEFAULT_KEY_TEMPLATE",
    "MAX_PARTS",
    "MIN_PART_SIZE",
    "SINGLE_PUT_LIMIT",
    "SINGLE_PUT_MAX",
    "STAGING_DIR",
    "UPLOAD_BUFFER_BUDGET",
    "ManifestWriteRefused",
    "S3Sink",
    "SinkSettings",
    "StoredDay",
    "StoredObject",
    "StreamDigest",
    "UploadResult",
    "VerifiedStream",
    "classify_s3_error",
    "composite_sha256",
    "holds_twilio_file",
    "part_size_for",
    "parts_in_memory",
    "published_mismatch",
    "read_verified",
]
