"""``S3Sink``: the one object the rest of the relay holds to write to (and read back from) the bucket; each of its
methods is one concept's module of this package."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from app.bucket.migrate_layout import HeldObject
from app.platform.s3_client import S3Client
from workers.sink import layout, manifests, reads
from workers.sink.janitor import Janitor
from workers.sink.objects import SinkObjects
from workers.sink.settings import SinkSettings
from workers.sink.values import StoredDay, UploadResult, VerifiedStream
from workers.sink.writes import DayWriter


class S3Sink(SinkObjects):
    """The only place that writes the relay's objects to S3 (the store probe's own small objects under
    ``<prefix>_relay/`` are ``app.bucket.probe``'s; the web's read-only bucket probe is
    ``app.platform.s3_client.probe_bucket``). Thread-safe as far as the boto3 client is.

    Implements ``app.jobs.lifecycle.ManifestStore`` (the job manifest), ``app.jobs.recovery.MarkerStore``,
    ``app.bucket.reconcile.BucketIndex``, ``app.bucket.verify.ObjectReader`` (``read_object``, from
    ``SinkObjects``) and ``app.bucket.migrate_layout.LayoutStore``."""

    def __init__(self, client: S3Client, settings: SinkSettings) -> None:
        super().__init__(client, settings)
        self.writer = DayWriter(self)
        self.janitor = Janitor(self)

    @property
    def staging_prefix(self) -> str:
        """Where older versions staged big files: only the janitor still looks there."""
        return self.settings.staging_prefix

    def day_key(self, resource_type: str, day: str | date, job_sid: str, account_sid: str = "") -> str:
        """The final key of a day file, from the settings' template."""
        return self.settings.day_key(resource_type, day, job_sid, account_sid)

    def manifest_key(self, resource_type: str, job_sid: str) -> str:
        """Where a job's manifest goes (``app.jobs.lifecycle.ManifestStore``)."""
        return self.settings.manifest_key(resource_type, job_sid)

    # -- writes ---------------------------------------------------------------------------------------------

    def upload_verified(
        self, reader: VerifiedStream, key: str, expected_size: int, metadata: Mapping[str, str]
    ) -> UploadResult:
        """``workers.sink.writes.DayWriter.upload_verified``: once, straight to ``key``, published once verified."""
        return self.writer.upload_verified(reader, key, expected_size, metadata)

    def put_json(self, key: str, obj: Any) -> None:
        """A small JSON document (the per-job manifest): ``workers.sink.manifests.put_json``."""
        manifests.put_json(self, key, obj)

    def read_marker(self) -> dict[str, Any] | None:
        """The bucket's copy of the registry marker (``app.jobs.recovery.MarkerStore``); None if there is none."""
        return manifests.read_marker(self)

    def write_marker(self, marker: dict[str, Any]) -> None:
        manifests.write_marker(self, marker)

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        """``workers.sink.janitor.Janitor.abort_stale_uploads``: how many stale uploads (and staged objects) went."""
        return self.janitor.abort_stale_uploads(older_than)

    # -- reads ----------------------------------------------------------------------------------------------

    def stored_day(self, key: str, expected_size: int | None, twilio_create_date: str | None) -> StoredDay | None:
        """The one "already stored?" decision of a day copy: ``workers.sink.reads.stored_day``."""
        return reads.stored_day(self, key, expected_size, twilio_create_date)

    def day_index(self, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int, str]]:
        """day -> (key, size, ETag) of the feed's day files (``app.bucket.reconcile.BucketIndex``)."""
        return reads.day_index(self, resource_type, account_sid)

    def holds(self, key: str) -> bool:
        """``app.bucket.reconcile.BucketIndex.holds``: a HEAD of ``key`` (S3 errors raise, classified)."""
        return self.head(key) is not None

    # -- layout migration (``app.bucket.migrate_layout.LayoutStore``) ----------------------------------------

    @property
    def keeps_tags(self) -> bool:
        return self.settings.digest_in_tags

    def held(self, key: str) -> HeldObject | None:
        """Size, ETag, sha256 and records of ``key``, read as ``stored_day`` reads them."""
        return reads.held(self, key)

    def copy_within(self, old_key: str, new_key: str, size: int, sha256: str | None, records: int | None) -> None:
        """Server-side copy to another key, then checked: ``workers.sink.layout.copy_within``."""
        layout.copy_within(self, old_key, new_key, size, sha256, records)
