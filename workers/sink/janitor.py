"""The janitor's S3 side: abort the multipart uploads a killed worker left open, and delete what versions before
the streaming multipart path staged (see STAGING_DIR). The bucket's lifecycle rule does the same, later."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.platform import clock
from workers.sink.errors import classify_s3_error, is_no_such_upload
from workers.sink.objects import SinkObjects
from workers.sink.settings import key_pattern

log = logging.getLogger(__name__)


class Janitor:
    """``abort_stale_uploads`` and its listings; ``objects`` gives the client, the bucket and the settings."""

    def __init__(self, objects: SinkObjects) -> None:
        self.client = objects.client
        self.settings = objects.settings
        self.bucket = objects.bucket

    def abort_stale_uploads(self, older_than: timedelta) -> int:
        """Abort our incomplete multipart uploads (and delete older versions' staging objects) older than
        ``older_than``; returns how many were removed. Keep the threshold far above the longest copy.

        Ours: every upload under the prefix; with an empty prefix the whole bucket would be in scope, and other
        writers' uploads are not ours to abort: then only keys the key template can produce (and the old
        staging prefix) are (leave the rest to a lifecycle rule).
        """
        cutoff = clock.system_utc_now() - older_than  # S3 dates the uploads
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
                if is_no_such_upload(exc):
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
        staging = self.settings.staging_prefix
        return key.startswith(staging) or bool(key_pattern(self.settings, None)[0].fullmatch(key))

    def _iter_multipart_uploads(self) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.settings.prefix):
                yield from page.get("Uploads") or []
        except ClientError as exc:
            if is_no_such_upload(exc):
                return  # rclone's answer when there is no open upload at all
            raise classify_s3_error(exc, "ListMultipartUploads", self.bucket, self.settings.prefix) from exc
        except BotoCoreError as exc:
            raise classify_s3_error(exc, "ListMultipartUploads", self.bucket, self.settings.prefix) from exc

    def _delete_stale_staging(self, cutoff: datetime) -> int:
        """Staging objects left by versions before the streaming multipart path (see STAGING_DIR)."""
        stale: list[str] = []
        staging = self.settings.staging_prefix
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=staging):
                stale.extend(o["Key"] for o in page.get("Contents") or [] if o["LastModified"] <= cutoff)
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "ListObjectsV2", self.bucket, staging) from exc
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
            raise classify_s3_error(exc, "DeleteObjects", self.bucket, self.settings.staging_prefix) from exc
        for error in resp.get("Errors") or []:
            log.warning("could not delete staging object %s: %s", error.get("Key"), error.get("Code"))
        return len(resp.get("Deleted") or [])
