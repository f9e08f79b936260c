"""Know the S3 store before writing to it: a start-up probe of the bucket, its cached findings, the write path.

Why: "S3-compatible" stores differ where it hurts. ``rclone serve s3`` takes PutObjectTagging for a PutObject and
replaces the object with the tagging XML (issue 19); some stores accept a body whose ``ChecksumSHA256`` does not
match; some answer HeadObject with another ETag than CompleteMultipartUpload did. The relay finds out once, with a
small object under ``<S3_PREFIX>_relay/`` (``probe_store``), and ``decide`` turns the findings and
``S3_OBJECT_TAGS`` into the write path of ``workers.sink`` (``WritePath``) in a pure function.

The probe, each step followed by a HeadObject (and a GetObject of the few bytes where a body could change):

- ``put_intact``: PutObject (with ChecksumSHA256, metadata and a Tagging parameter) keeps size and ETag;
- ``tagging_intact``: PutObjectTagging leaves the object as it was (body, size, ETag);
- ``tags_read_back``: GetObjectTagging answers the tags just put;
- ``put_checksum_enforced`` / ``part_checksum_enforced``: a wrong ChecksumSHA256 is refused on PutObject /
  UploadPart (where not, only the relay's own verifying reader and the HeadObject after each write stand);
- ``multipart_intact``: a multipart upload completes and holds its bytes; ``multipart_etag_kept``: HeadObject
  then answers CompleteMultipartUpload's ETag (else the check after a multipart write compares the size only).

Who probes: workers (``workers.tasks.store_path`` through ``write_path``: when one starts, and again from the
hourly janitor once the cache has expired) and ``relay doctor``, which may write; the web only reads the cached
findings (its IAM role has no PutObject). The findings are cached in Redis per endpoint and bucket for
``CACHE_SECONDS`` (a store does not change behaviour often; a gateway upgrade is seen within hours, or at once
with ``relay doctor``), under a lock so that replicas starting together probe once: the others wait for
its result. A probe that could not finish (S3 unreachable) is not cached.

Redis keys (this module's own, ``ProbeStore``): ``ber:store:probe:{bucket}:{endpoint hash}`` (JSON findings,
``CACHE_SECONDS``) and ``ber:lock:store-probe:{bucket}:{endpoint hash}`` (``LOCK_SECONDS``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from app.platform import clock
from app.platform.s3_client import S3Client, sha256_b64

log = logging.getLogger(__name__)

OBJECT_TAGS_MODES = ("auto", "on", "off")
PROBE_DIR = "_relay/"
CACHE_SECONDS = 6 * 3600
LOCK_SECONDS = 60
WAIT_SECONDS = 30.0  # how long a replica waits for another's probe before probing itself
KEY_PREFIX = "ber:store:probe:"
LOCK_PREFIX = "ber:lock:store-probe:"


class StoreRefused(RuntimeError):
    """The store corrupts what the relay would write (or cannot keep a write): the process refuses to start."""


@dataclass(frozen=True)
class StoreFindings:
    """What the probe found about one bucket's store (see the module docstring for each capability)."""

    put_intact: bool
    tagging_intact: bool
    tags_read_back: bool
    put_checksum_enforced: bool
    part_checksum_enforced: bool
    multipart_intact: bool
    multipart_etag_kept: bool
    probed_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StoreFindings | None:
        """None for anything that is not a findings document of this version (then the store is probed again)."""
        try:
            data = json.loads(text)
            names = {f.name for f in fields(cls)}
            if not isinstance(data, dict) or set(data) != names:
                return None
            return cls(**data)
        except (ValueError, TypeError):
            return None

    def lines(self) -> list[tuple[str, bool]]:
        """(capability, holds) in probe order: ``relay doctor`` and ``/health`` show them."""
        return [(f.name, bool(getattr(self, f.name))) for f in fields(self) if f.name != "probed_at"]


@dataclass(frozen=True)
class WritePath:
    """How ``workers.sink`` writes to this store: where the digest goes, what the check after a write compares."""

    digest_in_tags: bool  # sha256 and records as object tags; False: only in the job manifest
    multipart_etag_kept: bool  # the HeadObject after a multipart write compares the ETag too
    refusal: str | None = None  # one line: why the relay must not write here (names the setting)
    warnings: tuple[str, ...] = ()


# What a store with everything AWS S3 documents would answer: the path when no probe has run (tests, tools).
AWS_LIKE = StoreFindings(True, True, True, True, True, True, True)


def decide(findings: StoreFindings, object_tags: str, bucket: str) -> WritePath:
    """The write path for ``S3_OBJECT_TAGS`` (auto|on|off) on a store with ``findings``; pure."""
    where = f"S3 bucket {bucket!r}"
    if not findings.put_intact or not findings.multipart_intact:
        step = "PutObject" if not findings.put_intact else "CompleteMultipartUpload"
        capability = "put_intact" if not findings.put_intact else "multipart_intact"
        line = f"{where}: {step} does not keep the bytes written ({capability}=false); no setting makes it safe"
        return WritePath(False, False, refusal=line)
    tags_safe = findings.tagging_intact and findings.tags_read_back
    if object_tags == "on" and not tags_safe:
        capability = "tagging_intact" if not findings.tagging_intact else "tags_read_back"
        line = (
            f"{where}: PutObjectTagging is unsafe here ({capability}=false) and S3_OBJECT_TAGS=on: "
            "set S3_OBJECT_TAGS=auto or off"
        )
        return WritePath(False, findings.multipart_etag_kept, refusal=line)
    in_tags = object_tags == "on" or (object_tags == "auto" and tags_safe)
    warnings = []
    if object_tags == "auto" and not tags_safe:
        warnings.append(f"{where}: object tags unsafe or unsupported: sha256 and records only in the job manifests")
    if not (findings.put_checksum_enforced and findings.part_checksum_enforced):
        warnings.append(f"{where}: a wrong ChecksumSHA256 is accepted: only the relay's own checks verify writes")
    if not findings.multipart_etag_kept:
        warnings.append(f"{where}: HeadObject answers another ETag after CompleteMultipartUpload: checked by size")
    return WritePath(in_tags, findings.multipart_etag_kept, warnings=tuple(warnings))


# -- the probe ---------------------------------------------------------------------------------------------------


def _refused(call: Callable[[], Any]) -> bool:
    """Whether S3 refused ``call`` (a 4xx/5xx answer); transport trouble propagates (the probe did not finish)."""
    try:
        call()
    except ClientError:
        return True
    return False


class _Probe:
    """One run of the probe on fresh keys under ``<prefix>_relay/``; every object and upload removed at the end."""

    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self.client, self.bucket = client, bucket
        self.base = f"{prefix}{PROBE_DIR}probe-{secrets.token_hex(8)}"
        self.body = b"bulkexport-relay store probe\n" + secrets.token_bytes(32)
        self.keys: list[str] = []

    def head_agrees(self, key: str, size: int, etag: str | None) -> bool:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            return False
        same_etag = etag is None or str(head.get("ETag", "")).strip('"') == etag
        return int(head["ContentLength"]) == size and same_etag

    def body_is(self, key: str, data: bytes) -> bool:
        try:
            return bool(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read() == data)
        except ClientError:
            return False

    def tagging(self, key: str, etag: str) -> tuple[bool, bool]:
        """(tagging_intact, tags_read_back)."""
        value = secrets.token_hex(8)
        tag_set = [{"Key": "sha256", "Value": value}, {"Key": "records", "Value": "1"}]
        if _refused(lambda: self.client.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set})):
            return self.head_agrees(key, len(self.body), etag) and self.body_is(key, self.body), False
        intact = self.head_agrees(key, len(self.body), etag) and self.body_is(key, self.body)
        try:
            tags = self.client.get_object_tagging(Bucket=self.bucket, Key=key).get("TagSet") or []
        except ClientError:
            tags = []
        return intact, any(t.get("Key") == "sha256" and t.get("Value") == value for t in tags)

    def wrong_put_refused(self) -> bool:
        key = f"{self.base}-wrong-checksum"
        self.keys.append(key)
        wrong = sha256_b64(b"not the body")
        return _refused(
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=key, Body=self.body, ChecksumAlgorithm="SHA256", ChecksumSHA256=wrong
            )
        )

    def upload(self, key: str) -> str:
        resp = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256")
        return str(resp["UploadId"])

    def wrong_part_refused(self) -> bool:
        key = f"{self.base}-wrong-part"
        upload_id = self.upload(key)
        try:
            return _refused(lambda: self.part(key, upload_id, sha256_b64(b"not the part")))
        finally:
            self.abort(key, upload_id)

    def multipart(self, key: str) -> tuple[bool, bool]:
        """(multipart_intact, multipart_etag_kept) of a one-part upload."""
        self.keys.append(key)
        upload_id, checksum = self.upload(key), sha256_b64(self.body)
        try:
            part = self.part(key, upload_id, checksum)
            done = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": checksum}]},
            )
        except ClientError:
            self.abort(key, upload_id)
            return False, False
        intact = self.head_agrees(key, len(self.body), None) and self.body_is(key, self.body)
        etag = str(done.get("ETag", "")).strip('"')
        return intact, intact and self.head_agrees(key, len(self.body), etag)

    def part(self, key: str, upload_id: str, checksum: str) -> dict[str, Any]:
        """UploadPart of the probe's body as part 1, claiming ``checksum`` as its SHA-256."""
        return self.client.upload_part(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=1,
            Body=self.body,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        )

    def abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning("store probe: could not abort its upload of s3://%s/%s: %s", self.bucket, key, exc)

    def clean(self) -> None:
        for key in self.keys:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                log.warning("store probe: could not delete s3://%s/%s: %s", self.bucket, key, exc)


def probe_store(client: S3Client, bucket: str, prefix: str) -> StoreFindings:
    """Run the probe (about 15 small requests). Raises botocore's error if S3 cannot be reached or refuses the
    first PutObject for a reason other than the store's behaviour (access denied, missing bucket)."""
    probe = _Probe(client, bucket, prefix)
    try:
        key = f"{probe.base}-object"
        probe.keys.append(key)
        resp = client.put_object(
            Bucket=bucket,
            Key=key,
            Body=probe.body,
            Metadata={"probe": "1"},
            Tagging="probe=1",
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=sha256_b64(probe.body),
        )  # not _refused: access denied or a missing bucket must be an error, not a finding
        etag = str(resp.get("ETag", "")).strip('"')
        put_intact = probe.head_agrees(key, len(probe.body), etag) and probe.body_is(key, probe.body)
        tagging_intact, tags_read_back = probe.tagging(key, etag)
        put_checksum = probe.wrong_put_refused()
        part_checksum = probe.wrong_part_refused()
        multipart_intact, etag_kept = probe.multipart(f"{probe.base}-multipart")
    finally:
        probe.clean()
    stamp = clock.utc_now().isoformat(timespec="seconds")
    return StoreFindings(
        put_intact, tagging_intact, tags_read_back, put_checksum, part_checksum, multipart_intact, etag_kept, stamp
    )


# -- the cache ---------------------------------------------------------------------------------------------------


def _suffix(client: S3Client, bucket: str) -> str:
    endpoint = str(getattr(getattr(client, "meta", None), "endpoint_url", "") or "")
    return f"{bucket}:{hashlib.sha256(endpoint.encode()).hexdigest()[:12]}"


def cached_findings(r: redis.Redis, client: S3Client, bucket: str) -> StoreFindings | None:
    """The cached findings for this store, None if not probed lately (the web reads only this)."""
    text = r.get(KEY_PREFIX + _suffix(client, bucket))
    return StoreFindings.from_json(text if isinstance(text, str) else text.decode()) if text else None


def store_findings(r: redis.Redis, client: S3Client, bucket: str, prefix: str, fresh: bool = False) -> StoreFindings:
    """The store's findings: cached ones unless ``fresh``; else probed once across replicas (a lock: the others
    wait up to WAIT_SECONDS for its result, then probe themselves) and cached for CACHE_SECONDS."""
    suffix = _suffix(client, bucket)
    lock = r.lock(LOCK_PREFIX + suffix, timeout=LOCK_SECONDS)  # released only by its owner (a token)
    deadline = time.monotonic() + WAIT_SECONDS
    while not fresh:
        found = cached_findings(r, client, bucket)
        if found is not None:
            return found
        if lock.acquire(blocking=False) or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # another replica is probing right now: its result is seconds away
    try:
        findings = probe_store(client, bucket, prefix)
        r.set(KEY_PREFIX + suffix, findings.to_json(), ex=CACHE_SECONDS)
    finally:
        if lock.owned():
            lock.release()
    log.info("S3 store probed", extra={"bucket": bucket, "findings": findings.to_json()})
    return findings


def write_path(r: redis.Redis, client: S3Client, bucket: str, prefix: str, object_tags: str) -> WritePath:
    """Probe (or read the cache) and decide; raises StoreRefused with the one line when the store is unsafe."""
    path = decide(store_findings(r, client, bucket, prefix), object_tags, bucket)
    if path.refusal:
        raise StoreRefused(path.refusal)
    for warning in path.warnings:
        log.warning(warning)
    return path


class ProbeStore:
    """The findings cache and the probe's lock in Redis (keys above), for the web, workers and ``relay doctor``."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def cached_findings(self, client: S3Client, bucket: str) -> StoreFindings | None:
        return cached_findings(self.r, client, bucket)

    def store_findings(self, client: S3Client, bucket: str, prefix: str, fresh: bool = False) -> StoreFindings:
        return store_findings(self.r, client, bucket, prefix, fresh)

    def write_path(self, client: S3Client, bucket: str, prefix: str, object_tags: str) -> WritePath:
        return write_path(self.r, client, bucket, prefix, object_tags)
