"""What the bucket already holds: the one "already stored?" decision of a day copy (``stored_day``), what a key
holds for ``relay migrate-layout`` (``held``), and the listing of a feed's day files (``day_index``).

sha256 and records are read from where this store keeps them (the package docstring): the object's tags, or the
job manifest named by the object's ``job_sid`` metadata; objects written by older versions had them in the
metadata, which is read too."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from app.bucket.migrate_layout import HeldObject
from workers.sink.errors import classify_s3_error
from workers.sink.objects import SinkObjects
from workers.sink.settings import key_pattern
from workers.sink.values import StoredDay, StoredObject


def stored_day(
    objects: SinkObjects, key: str, expected_size: int | None, twilio_create_date: str | None
) -> StoredDay | None:
    """What ``key`` holds if it is already this very Twilio file (same size and create_date, written by this
    sink, with its sha256), else None: the one "already stored?" decision of a day copy.

    The match comes from HeadObject's metadata; sha256 and records from where this store keeps them: the tags
    (GetObjectTagging), or the job manifest of the object's ``job_sid``; or the metadata for objects written by
    older versions. An object without a sha256 anywhere (its tagging never happened, or its job has no manifest
    yet) is not stored: it is written again. Without a size or create_date nothing can be matched: None, and no
    request is made."""
    if expected_size is None or not twilio_create_date:
        return None
    stored = objects.head(key)
    if stored is None or not holds_twilio_file(stored, expected_size, twilio_create_date):
        return None
    sha256, records = _digest(objects, key, stored)
    if not sha256:
        return None
    return StoredDay(key, stored.size, sha256, records, stored.etag or None)


def held(objects: SinkObjects, key: str) -> HeldObject | None:
    """Size, ETag, and sha256 / records from where this store keeps them (as ``stored_day`` reads them)."""
    stored = objects.head(key)
    if stored is None:
        return None
    sha256, records = _digest(objects, key, stored)
    return HeldObject(stored.size, stored.etag, sha256 or None, records)


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


def _digest(objects: SinkObjects, key: str, stored: StoredObject) -> tuple[str | None, int | None]:
    """(sha256, records) of ``key``: from its tags or its job's manifest, else from its metadata."""
    found = objects.tags(key) if objects.settings.digest_in_tags else _manifest_digest(objects, key, stored)
    source = found if found.get("sha256") else stored.metadata
    records = source.get("records", "")
    return source.get("sha256"), int(records) if records.isdigit() else None


def _manifest_digest(objects: SinkObjects, key: str, stored: StoredObject) -> dict[str, str]:
    """sha256 and records of ``key`` from the manifest of the job that wrote it ({} if none says so)."""
    job_sid, resource_type = stored.metadata.get("job_sid"), stored.metadata.get("resource_type")
    if not job_sid or not resource_type:
        return {}
    try:
        manifest = objects.get_json(objects.settings.manifest_key(resource_type, job_sid))
        days = manifest.get("days") if manifest is not None else None
    except (ValueError, AttributeError):
        days = None
    for day in days if isinstance(days, list) else []:
        if isinstance(day, dict) and day.get("key") == key and day.get("size") == stored.size:
            records = day.get("records")
            return {"sha256": str(day.get("sha256") or ""), "records": "" if records is None else str(records)}
    return {}


def day_index(objects: SinkObjects, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int, str]]:
    """day -> (key, size, ETag) of every day file of ``resource_type`` in the bucket
    (``app.bucket.reconcile.BucketIndex``): one paged ListObjectsV2 under the template's fixed prefix, keys matched
    against the template. The ETag is "" where the listing gives none."""
    pattern, prefix = key_pattern(objects.settings, resource_type, account_sid)
    found: dict[str, tuple[str, int, str]] = {}
    paginator = objects.client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=objects.bucket, Prefix=prefix):
            for obj in page.get("Contents") or []:
                match = pattern.fullmatch(obj["Key"])
                if match:
                    etag = str(obj.get("ETag") or "").strip('"')
                    found[match.group("day")] = (obj["Key"], int(obj["Size"]), etag)
    except (ClientError, BotoCoreError) as exc:
        raise classify_s3_error(exc, "ListObjectsV2", objects.bucket, prefix) from exc
    return found
