"""``relay doctor``: the whole set-up checked from a shell, one line per finding (ok / warn / fail).

Configuration (loaded and valid, or the command would not run), Redis, the S3 bucket and the store probe run
afresh (``app.bucket.probe``: it writes a few small objects under ``<S3_PREFIX>_relay/``, so run it with the
workers' credentials; the result refreshes the cache the workers and ``/health`` read), the write path that
S3_OBJECT_TAGS gives on that store, and whether Twilio accepts the credentials. Nothing secret is printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from app.bucket import probe as store_probe
from app.platform.s3_client import probe_bucket
from app.services import Services

CAPABILITY_TEXT = {
    "put_intact": "PutObject keeps the bytes written (HeadObject and GetObject agree)",
    "tagging_intact": "PutObjectTagging leaves the object intact",
    "tags_read_back": "GetObjectTagging answers the tags put",
    "put_checksum_enforced": "a wrong ChecksumSHA256 is refused on PutObject",
    "part_checksum_enforced": "a wrong ChecksumSHA256 is refused on UploadPart",
    "multipart_intact": "a multipart upload completes and holds its bytes",
    "multipart_etag_kept": "HeadObject answers CompleteMultipartUpload's ETag",
}


@dataclass(frozen=True)
class Finding:
    level: str  # ok, warn, fail
    topic: str
    text: str

    def line(self) -> str:
        return f"{self.level:<4}  {self.topic:<9} {self.text}"


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def check(svc: Services) -> Iterator[Finding]:
    """Every finding, in order; a failed step does not stop the ones that do not depend on it."""
    s = svc.settings
    yield Finding(
        "ok", "config", f"valid (bucket {s.s3_bucket}, prefix {s.s3_prefix!r}, S3_OBJECT_TAGS={s.s3_object_tags})"
    )
    try:
        svc.jobs.ping()
        yield Finding("ok", "redis", "answers")
    except Exception as exc:
        yield Finding("fail", "redis", _error(exc))
    yield from _s3(svc)
    try:
        svc.twilio.fetch_export_configuration("Messages")
        yield Finding("ok", "twilio", f"credentials of {s.twilio_account_sid} accepted")
    except Exception as exc:
        yield Finding("fail", "twilio", _error(exc))


def _s3(svc: Services) -> Iterator[Finding]:
    s, client = svc.settings, svc.s3_client()
    try:
        probe_bucket(client, s.s3_bucket)
        yield Finding("ok", "s3", f"bucket {s.s3_bucket} answers")
    except Exception as exc:
        yield Finding("fail", "s3", f"bucket {s.s3_bucket}: {_error(exc)}")
        return
    try:
        findings = svc.probes.store_findings(client, s.s3_bucket, s.s3_prefix, fresh=True)
    except Exception as exc:
        yield Finding("fail", "store", f"probe under {s.s3_prefix}{store_probe.PROBE_DIR} failed: {_error(exc)}")
        return
    for name, holds in findings.lines():
        level = "ok" if holds else "fail" if name in ("put_intact", "multipart_intact") else "warn"
        yield Finding(level, "store", f"{CAPABILITY_TEXT[name]}: {'yes' if holds else 'no'} ({name})")
    path = store_probe.decide(findings, s.s3_object_tags, s.s3_bucket)
    if path.refusal:
        yield Finding("fail", "store", path.refusal)
        return
    where = "object tags (and the job manifests)" if path.digest_in_tags else "the job manifests only"
    yield Finding("ok", "store", f"write path: sha256 and records in {where}")
