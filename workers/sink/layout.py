"""``relay migrate-layout``'s writes: a verified day file copied server-side to the key another template gives it
(``app.bucket.migrate_layout.LayoutStore``), checked like every write."""

from __future__ import annotations

from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from workers.sink.errors import classify_s3_error
from workers.sink.objects import SinkObjects
from workers.sink.parts import part_size_for
from workers.sink.settings import SINGLE_PUT_LIMIT
from workers.sink.writes import GZIP_CONTENT_TYPE, check_published

COPY_OBJECT_MAX = SINGLE_PUT_LIMIT  # S3's CopyObject limit: bigger objects are copied in parts (UploadPartCopy)


def copy_within(
    objects: SinkObjects, old_key: str, new_key: str, size: int, sha256: str | None, records: int | None
) -> None:
    """Server-side copy of ``old_key`` to ``new_key`` (metadata kept): one CopyObject up to S3's 5 GiB limit,
    boto3's managed multipart copy (UploadPartCopy) above it; then the digest tags where the store keeps tags,
    and the HeadObject check of every write (``workers.sink.writes.check_published``: the copy deleted and an
    error if the new key does not hold it)."""
    etag = _copy(objects, old_key, new_key, size)
    if objects.settings.digest_in_tags and sha256:
        tags = {"sha256": sha256} | ({"records": str(records)} if records is not None else {})
        try:
            objects.client.put_object_tagging(
                Bucket=objects.bucket,
                Key=new_key,
                Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify_s3_error(exc, "PutObjectTagging", objects.bucket, new_key) from exc
    if etag and "-" in etag and not objects.settings.multipart_etag_kept:
        etag = None
    check_published(objects, new_key, "CopyObject", size, etag)


def _copy(objects: SinkObjects, old_key: str, new_key: str, size: int) -> str | None:
    """The copy itself; CopyObject's ETag (None for the managed copy, which answers none)."""
    extra: dict[str, Any] = objects.write_args()
    source = {"Bucket": objects.bucket, "Key": old_key}
    try:
        if size <= COPY_OBJECT_MAX:
            resp = objects.client.copy_object(
                Bucket=objects.bucket, Key=new_key, CopySource=source, MetadataDirective="COPY", **extra
            )
            return str(resp.get("CopyObjectResult", {}).get("ETag", "")).strip('"') or None
        stored = objects.head(old_key)
        extra |= {"Metadata": stored.metadata if stored else {}, "ContentType": GZIP_CONTENT_TYPE}
        part = part_size_for(size)
        config = TransferConfig(multipart_threshold=part, multipart_chunksize=part)
        objects.client.copy(source, objects.bucket, new_key, ExtraArgs=extra, Config=config)
        return None
    except (ClientError, BotoCoreError) as exc:
        raise classify_s3_error(exc, "CopyObject", objects.bucket, new_key) from exc
