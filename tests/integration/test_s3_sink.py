"""S3Sink against real S3 servers over TLS: SeaweedFS (checks every checksum) and moto, each test on both.

Tests that need SeaweedFS alone say why: moto stores a PutObject or UploadPart whose body does not match its
``ChecksumSHA256``, and completes an upload whose part checksums are wrong, so it cannot show S3 refusing them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import random
import threading
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from app.platform.config import load_settings
from app.platform.s3_client import make_s3_client
from devstack.procs import free_port
from devstack.s3_server import MotoS3Server, RcloneS3Server, S3Server, SeaweedS3Server
from tests.integration.s3_calls import S3Calls, keeps_tags, open_uploads, path_settings, publish_manifest
from workers.copy import VerifyingReader
from workers.copy_errors import (
    CopyIntegrityError,
    PermanentCopyError,
    PermanentS3Error,
    RetryableCopyError,
    TransientS3Error,
)
from workers.sink import (
    UPLOAD_BUFFER_BUDGET,
    S3Sink,
    SinkSettings,
    StoredDay,
    classify_s3_error,
    composite_sha256,
    part_size_for,
    parts_in_memory,
)

MiB = 1024 * 1024
META = {
    "job_sid": "JS0123",
    "day": "2024-05-01",
    "resource_type": "Messages",
    "twilio_create_date": "2024-05-03",
}
MINIMAL_ENV = {"TWILIO_ACCOUNT_SID": "AC" + "a" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "S3_BUCKET": "b-x"}
SINGLE: dict[str, Any] = {}  # default settings: a small file goes up with one PutObject
MULTIPART = {"single_put_max": 0}  # every non-empty file through a multipart upload of the final key
PATHS = pytest.mark.parametrize("settings", [SINGLE, MULTIPART], ids=["single-put", "multipart"])
COPY_OPS = {"CopyObject", "UploadPartCopy"}


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def make_sink(client: Any, bucket: str, **settings: Any) -> S3Sink:
    return S3Sink(client, SinkSettings(bucket=bucket, **{"prefix": "twilio/", **path_settings(client), **settings}))


def day_file(size: int, seed: int = 1) -> bytes:
    """A gzip file of about ``size`` bytes (random content does not compress)."""
    rng = random.Random(seed)
    return gzip.compress(rng.randbytes(size), compresslevel=1, mtime=0)


def reader_for(data: bytes, expected: int | None = None, chunk: int = MiB) -> VerifyingReader:
    pieces = (data[i : i + chunk] for i in range(0, len(data), chunk))
    return VerifyingReader(pieces, len(data) if expected is None else expected)


def tags_of(client: Any, bucket: str, key: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}


def meta_of(head: dict[str, Any]) -> dict[str, str]:
    """User metadata as S3 names it (lower-case; rclone capitalises the names it answers)."""
    return {k.lower(): v for k, v in head["Metadata"].items()}


def assert_digest_kept(client: Any, bucket: str, key: str, sha256: str, records: int) -> None:
    """Where this store keeps the digest: the tags; on a store without safe tags (rclone) only the job manifest
    holds it (no request went to the object after it was written: see test_upload_verified_...)."""
    if keeps_tags(client):
        assert tags_of(client, bucket, key) == {"sha256": sha256, "records": str(records)}
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha256


def all_keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def assert_nothing_published(server: S3Server, client: Any, bucket: str) -> None:
    """No object, no open multipart upload, and the server never made an object visible in the bucket."""
    assert all_keys(client, bucket) == []
    assert open_uploads(client, bucket) == []
    assert server.writes_by_key(bucket) == {}


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- keys and settings -------------------------------------------------------------------------------


def test_day_key_default_template() -> None:
    sink = S3Sink(None, SinkSettings(bucket="b-x", prefix="twilio/"))
    assert sink.day_key("Messages", "2024-05-01", "JS1") == "twilio/Messages/day=2024-05-01/Messages-2024-05-01.json.gz"


def test_the_default_prefix_is_s3_prefix_default() -> None:
    """One default for the prefix: S3_PREFIX's (README, Configuration: empty)."""
    assert SinkSettings(bucket="b-x").prefix == load_settings(MINIMAL_ENV).s3_prefix == ""
    assert S3Sink(None, SinkSettings(bucket="b-x")).day_key("Calls", "2024-05-01", "JS1").startswith("Calls/day=")


def test_day_key_custom_template_and_date() -> None:
    settings = SinkSettings(bucket="b-x", prefix="", key_template="{prefix}{job_sid}/{resource_type}/{day}.gz")
    assert S3Sink(None, settings).day_key("Calls", date(2024, 1, 2), "JS9") == "JS9/Calls/2024-01-02.gz"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"key_template": "{prefix}{unknown}.gz"},
        {"sse": "aws:fancy"},
        {"kms_key_id": "k", "sse": "AES256"},
        {"multipart_concurrency": 0},
        {"single_put_max": -1},
        {"single_put_max": 6 * 1024 * MiB},
        {"bucket": ""},
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SinkSettings(**{"bucket": "b-x", **kwargs})


def test_part_size_fits_ten_thousand_parts_and_bounded_buffers() -> None:
    assert part_size_for(0) == part_size_for(20 * MiB) == 8 * MiB
    for size in (80 * 1024 * MiB, 200 * 1024 * MiB, 5 * 1024 * 1024 * MiB):
        part = part_size_for(size)
        assert part % MiB == 0 and part * 10_000 >= size
    # parts in memory (being sent, plus the one being read), well under 150 MiB
    part = part_size_for(5 * 1024 * MiB)
    assert part == 8 * MiB and parts_in_memory(part, concurrency=4) * part <= UPLOAD_BUFFER_BUDGET
    assert parts_in_memory(part, concurrency=8) * part <= UPLOAD_BUFFER_BUDGET
    assert parts_in_memory(part_size_for(200 * 1024 * MiB), concurrency=8) * part_size_for(200 * 1024 * MiB) <= 64 * MiB
    assert parts_in_memory(512 * MiB, concurrency=4) == 2  # one read while one is sent, whatever the part size


def test_composite_checksum_is_s3s() -> None:
    parts = [sha256_b64(b"a"), sha256_b64(b"b")]
    raw = base64.b64decode(parts[0]) + base64.b64decode(parts[1])
    assert composite_sha256(parts) == f"{sha256_b64(raw)}-2"


# -- uploads -----------------------------------------------------------------------------------------


@PATHS
def test_upload_verified_publishes_metadata_and_digest_tags(
    server: S3Server, client: Any, bucket: str, settings: dict[str, Any]
) -> None:
    """One rule for every size: what is known before the first byte in the metadata, sha256 and records in tags."""
    calls = S3Calls.record(client)
    sink = make_sink(client, bucket, **settings)
    data = gzip.compress(b'{"a": 1}\n{"b": 2}\n{"c": 3}', mtime=0)
    key = sink.day_key("Messages", "2024-05-01", "JS0123")
    result = sink.upload_verified(reader_for(data), key, len(data), META)
    sent = calls.ops()  # before the test's own requests

    assert (result.size, result.records) == (len(data), 3)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    head = client.head_object(Bucket=bucket, Key=key)
    assert meta_of(head) == {**META, "size": str(len(data))}
    assert_digest_kept(client, bucket, key, result.sha256, 3)
    assert head["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in head
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    assert all_keys(client, bucket) == [key] and open_uploads(client, bucket) == []
    assert server.writes_by_key(bucket) == {key: 1}
    # one HeadObject after the last write: the key still holds the verified object
    if settings is SINGLE:  # tags travel with the PutObject: atomic
        assert sent == {"PutObject": 1, "HeadObject": 1}
        stored = sink.head(key)
        if not isinstance(server, RcloneS3Server):  # rclone keeps no checksum
            assert stored is not None and stored.s3_sha256 == result.sha256  # the full-object SHA-256 S3 checked
    else:
        tagging = {"PutObjectTagging": 1} if keeps_tags(client) else {}  # never on a store whose tagging is unsafe
        assert sent == {
            "CreateMultipartUpload": 1,
            "UploadPart": 1,
            "CompleteMultipartUpload": 1,
            **tagging,
            "HeadObject": 1,
        }


def test_a_big_day_streams_once_into_a_multipart_upload_of_the_final_key(
    server: S3Server, client: Any, bucket: str
) -> None:
    """Each byte written once: parts of the final key, each with the SHA-256 of its body; no staging key, no copy."""
    calls = S3Calls.record(client)
    sink = make_sink(client, bucket, single_put_max=16 * MiB)
    data = day_file(20 * MiB)
    key = "twilio/Calls/day=2024-05-01/Calls-2024-05-01.json.gz"
    result = sink.upload_verified(reader_for(data), key, len(data), META)

    parts = calls.of("UploadPart")
    assert sorted(p.size for p in parts) == sorted([8 * MiB, 8 * MiB, len(data) - 16 * MiB])
    assert sum(p.size for p in parts) == len(data)  # each byte sent once
    assert all(p.checksum == p.body_sha256 for p in parts)  # our SHA-256 of exactly the bytes sent, on every part
    ops = calls.ops()
    assert ops["CreateMultipartUpload"] == ops["CompleteMultipartUpload"] == 1
    assert ops["PutObjectTagging"] == (1 if keeps_tags(client) else 0)
    assert not COPY_OPS & set(ops) and "PutObject" not in ops and "GetObject" not in ops  # no copy, no read-back
    assert ops["HeadObject"] == 1  # the one check that the key still holds the verified object
    assert server.writes_by_key(bucket) == {key: 1}  # the server's own count: one object made visible, here
    assert all_keys(client, bucket) == [key] and open_uploads(client, bucket) == []
    head = client.head_object(Bucket=bucket, Key=key)
    assert meta_of(head) == {**META, "size": str(len(data))}
    assert head["ContentType"] == "application/gzip" and head["ContentLength"] == len(data)
    assert_digest_kept(client, bucket, key, result.sha256, result.records)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    if isinstance(server, MotoS3Server):  # moto counts operations too: nothing but the multipart upload wrote
        final = server.counts()[f"{bucket}/{key}"]
        assert final["upload_part"] == 3 and final["complete_multipart_upload"] == 1
        assert not {"copy_object", "upload_part_copy", "put_object"} & set(final)


class GatedReader:
    """A VerifyingReader that hands out nothing past its first part until an UploadPart has been sent (or a
    deadline passes): proof that parts go up while the reader is still reading."""

    def __init__(self, data: bytes, part: int) -> None:
        self.inner = reader_for(data)
        self.part = part
        self.handed_out = 0
        self.part_sent = threading.Event()
        self.overlapped: bool | None = None

    def read(self, size: int | None = -1, /) -> bytes:
        if self.handed_out >= self.part and self.overlapped is None:
            self.overlapped = self.part_sent.wait(timeout=30)
        chunk = self.inner.read(size)
        self.handed_out += len(chunk)
        return chunk

    def digest(self) -> Any:
        return self.inner.digest()


def test_parts_go_up_while_the_reader_is_still_reading(client: Any, bucket: str) -> None:
    data = day_file(20 * MiB)
    reader = GatedReader(data, part=8 * MiB)
    client.meta.events.register("after-call.s3.UploadPart", lambda **_: reader.part_sent.set())
    make_sink(client, bucket, **MULTIPART).upload_verified(reader, "twilio/overlap.json.gz", len(data), META)
    assert reader.overlapped is True


@pytest.mark.parametrize(
    ("size", "settings"),
    [(1000, SINGLE), (1000, MULTIPART), (20 * MiB, MULTIPART)],
    ids=["single-put", "multipart-one-part", "multipart-three-parts"],
)
def test_a_reader_failing_at_the_last_bytes_leaves_nothing(
    server: S3Server, client: Any, bucket: str, size: int, settings: dict[str, Any]
) -> None:
    calls = S3Calls.record(client)
    sink = make_sink(client, bucket, **settings)
    data = bytearray(day_file(size))
    data[-8] ^= 0xFF  # CRC trailer: only detectable at the very end
    key = "twilio/Messages/bad.json.gz"
    with pytest.raises(CopyIntegrityError):
        sink.upload_verified(reader_for(bytes(data)), key, len(data), META)
    assert sink.head(key) is None
    assert_nothing_published(server, client, bucket)
    assert "CompleteMultipartUpload" not in calls.ops() and "PutObject" not in calls.ops()
    if settings is MULTIPART:
        assert calls.ops()["AbortMultipartUpload"] == 1
        parts = len(calls.of("UploadPart"))  # the last part is never handed out (an earlier one may be cancelled)
        assert 1 <= parts <= 2 if size > 16 * MiB else parts == 0


def test_an_interrupt_mid_upload_aborts_it(server: S3Server, client: Any, bucket: str) -> None:
    """KeyboardInterrupt (or RQ's job timeout) while parts are in flight: the upload is aborted, the error kept."""
    data = day_file(20 * MiB)
    inner = reader_for(data)

    class Interrupted:
        def read(self, size: int | None = -1, /) -> bytes:
            if inner.bytes_read >= 16 * MiB:
                raise KeyboardInterrupt
            return inner.read(size)

        def digest(self) -> Any:
            return inner.digest()

    calls = S3Calls.record(client)
    with pytest.raises(KeyboardInterrupt):
        make_sink(client, bucket, **MULTIPART).upload_verified(Interrupted(), "twilio/i.json.gz", len(data), META)
    assert calls.ops()["AbortMultipartUpload"] == 1 and calls.ops()["UploadPart"] >= 1
    assert_nothing_published(server, client, bucket)


def test_an_upload_aborted_under_us_fails_as_transient_and_leaves_nothing(
    server: S3Server, client: Any, bucket: str
) -> None:
    """The janitor (or a lifecycle rule) aborts the upload while parts go up: NoSuchUpload, retried later."""
    other = server.client()

    def abort_first(params: dict[str, Any], **_: Any) -> None:
        if params["PartNumber"] == 2:
            other.abort_multipart_upload(Bucket=bucket, Key=params["Key"], UploadId=params["UploadId"])

    client.meta.events.register("before-parameter-build.s3.UploadPart", abort_first)
    data = day_file(20 * MiB)
    with pytest.raises(TransientS3Error) as info:
        make_sink(client, bucket, **MULTIPART).upload_verified(reader_for(data), "twilio/a.json.gz", len(data), META)
    assert info.value.operation in ("UploadPart", "CompleteMultipartUpload")
    if isinstance(server, SeaweedS3Server):  # moto answers a part for an aborted upload with a bare HTTP 500
        assert info.value.code == "NoSuchUpload"
    assert_nothing_published(server, client, bucket)


@pytest.mark.parametrize("when", ["before-parameter-build", "before-send"])
@pytest.mark.parametrize("settings", [SINGLE, MULTIPART], ids=["single-put", "multipart"])
def test_a_part_corrupted_on_its_way_to_s3_is_refused_and_nothing_is_published(
    seaweed_s3: SeaweedS3Server, when: str, settings: dict[str, Any]
) -> None:
    """A byte flipped after our SHA-256 was computed: between the reader and botocore (``before-parameter-build``:
    botocore then signs the bad bytes), or on the wire (``before-send``). S3 re-hashes the body, answers BadDigest,
    nothing is published. SeaweedFS only: moto stores a body that does not match its ChecksumSHA256."""
    client = seaweed_s3.client()
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    operation = "PutObject" if settings is SINGLE else "UploadPart"
    corrupted: list[str] = []

    def flip_params(params: dict[str, Any], **_: Any) -> None:
        if not corrupted and params.get("PartNumber", 2) == 2:
            body = bytearray(params["Body"])
            body[100] ^= 0x01
            params["Body"] = bytes(body)
            corrupted.append(params["ChecksumSHA256"])

    def flip_wire(request: Any, **_: Any) -> None:
        if not corrupted and (operation == "PutObject" or "partNumber=2" in request.url):
            body = bytearray(request.body.read() if hasattr(request.body, "read") else request.body)
            body[100] ^= 0x01
            request.body = io.BytesIO(bytes(body))
            corrupted.append(request.headers["x-amz-checksum-sha256"].decode())

    client.meta.events.register(f"{when}.s3.{operation}", flip_params if when.startswith("before-param") else flip_wire)
    data = day_file(20 * MiB if settings is MULTIPART else 4096)
    sink = make_sink(client, bucket, **settings)
    with pytest.raises(TransientS3Error) as info:
        sink.upload_verified(reader_for(data), "twilio/x.json.gz", len(data), META)
    assert info.value.code == "BadDigest" and info.value.operation == operation
    assert isinstance(info.value, RetryableCopyError)
    if settings is SINGLE:
        assert corrupted == [sha256_b64(data)]  # the checksum S3 compared with was ours, of the verified bytes
    else:
        assert corrupted == [sha256_b64(data[8 * MiB : 16 * MiB])]
    assert_nothing_published(seaweed_s3, client, bucket)


@pytest.mark.parametrize(
    ("operation", "settings"),
    [("PutObject", SINGLE), ("UploadPart", MULTIPART), ("CompleteMultipartUpload", MULTIPART)],
)
def test_an_object_that_s3_hashes_differently_is_removed(
    server: S3Server, client: Any, bucket: str, operation: str, settings: dict[str, Any]
) -> None:
    """Real S3 refuses a body that does not match its checksum (BadDigest, above); should it ever answer with another
    checksum instead, nothing stays published. The answer is altered here, as no server does this by itself."""

    def wrong_checksum(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode() + ("-1" if "Complete" in operation else "")

    client.meta.events.register(f"after-call.s3.{operation}", wrong_checksum)
    data = day_file(2048)
    with pytest.raises(TransientS3Error, match=r"SHA-256|checksum"):
        make_sink(client, bucket, **settings).upload_verified(reader_for(data), "twilio/x.json.gz", len(data), META)
    assert all_keys(client, bucket) == [] and open_uploads(client, bucket) == []


@PATHS
def test_our_checksum_goes_with_every_write_whatever_the_checksum_setting(
    server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: dict[str, Any]
) -> None:
    """AWS_REQUEST_CHECKSUM_CALCULATION=when_required: botocore computes no checksum of its own, ours still goes
    with every PutObject/UploadPart (and is the SHA-256 of exactly the bytes sent)."""
    use_boto3_environment(server, monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    client = make_s3_client()
    assert client.meta.config.request_checksum_calculation == "when_required"
    calls = S3Calls.record(client)
    sink = make_sink(client, bucket, **settings)
    data = day_file(2048)
    result = sink.upload_verified(reader_for(data), "twilio/plain.json.gz", len(data), META)
    writes = calls.of("PutObject") + calls.of("UploadPart")
    assert len(writes) == 1 and writes[0].checksum == writes[0].body_sha256 == sha256_b64(data)
    publish_manifest(sink, META, result)
    assert sink.stored_day("twilio/plain.json.gz", len(data), META["twilio_create_date"]) is not None


# -- already stored? ---------------------------------------------------------------------------------


@PATHS
def test_stored_day_finds_the_same_file_so_it_is_written_once(
    server: S3Server, client: Any, bucket: str, settings: dict[str, Any]
) -> None:
    """The one "already stored?" check (the day copier asks it before downloading): the same Twilio file is found,
    its digest read from the tags (or, on a store without safe tags, from its job's manifest), so a second copy
    of it never reaches the write path."""
    sink = make_sink(client, bucket, **settings)
    data = day_file(4096)
    key = "twilio/Messages/same.json.gz"
    first = sink.upload_verified(reader_for(data), key, len(data), META)
    publish_manifest(sink, META, first)
    calls = S3Calls.record(client)
    stored = sink.stored_day(key, len(data), META["twilio_create_date"])
    assert stored == StoredDay(key, len(data), first.sha256, first.records)
    digest_read = {"GetObjectTagging": 1} if keeps_tags(client) else {"GetObject": 1}
    assert calls.ops() == {"HeadObject": 1, **digest_read}
    assert server.writes(bucket, key) == 1
    assert sorted(all_keys(client, bucket)) == sorted([key, sink.manifest_key("Messages", "JS0123")])


def test_without_its_manifest_an_untagged_object_is_not_taken_as_stored(client: Any, bucket: str) -> None:
    """On a store without safe tags the digest is in the job manifest only: before the manifest exists (the job
    is still running, or the worker died), the object is written again rather than recorded without a sha256."""
    sink = make_sink(client, bucket, digest_in_tags=False)
    data = day_file(2048)
    key = "twilio/Messages/nomanifest.json.gz"
    result = sink.upload_verified(reader_for(data), key, len(data), META)
    assert sink.stored_day(key, len(data), META["twilio_create_date"]) is None
    sink.put_json(sink.manifest_key("Messages", "JS0123"), {"days": [{"key": key, "size": len(data) + 1}]})
    assert sink.stored_day(key, len(data), META["twilio_create_date"]) is None  # another file's entry
    publish_manifest(sink, META, result)
    assert sink.stored_day(key, len(data), META["twilio_create_date"]) == StoredDay(
        key, len(data), result.sha256, result.records
    )


def test_stored_day_matches_size_and_create_date_before_reading_tags(client: Any, bucket: str) -> None:
    if not keeps_tags(client):
        pytest.skip("no tags on this store: test_without_its_manifest_an_untagged_object_is_not_taken_as_stored")
    sink = make_sink(client, bucket)
    data = day_file(2048)
    key = "twilio/Messages/v.json.gz"
    assert sink.stored_day(key, len(data), "2024-05-03") is None
    sink.upload_verified(reader_for(data), key, len(data), META)
    calls = S3Calls.record(client)
    assert sink.stored_day(key, len(data), "2024-05-03") is not None
    assert sink.stored_day(key, len(data), "2024-05-04") is None
    assert sink.stored_day(key, len(data) + 1, "2024-05-03") is None
    assert calls.ops() == {"HeadObject": 3, "GetObjectTagging": 1}  # tags only for the match
    assert sink.stored_day(key, len(data), None) is None
    assert sink.stored_day(key, None, "2024-05-03") is None
    assert len(calls.sent) == 4  # without a size or create_date: no request


def test_stored_day_reads_the_digest_of_older_versions_from_the_metadata(client: Any, bucket: str) -> None:
    """Objects written before the digest moved to tags carry sha256/records in their metadata."""
    data = day_file(2048)
    key = "twilio/Messages/old.json.gz"
    sha = hashlib.sha256(data).hexdigest()
    old_meta = {**META, "size": str(len(data)), "sha256": sha, "records": "7"}
    client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=old_meta, ContentType="application/gzip")
    stored = make_sink(client, bucket).stored_day(key, len(data), META["twilio_create_date"])
    assert stored == StoredDay(key, len(data), sha, 7)


def test_an_object_never_tagged_is_not_taken_as_stored(client: Any, bucket: str) -> None:
    """A worker that died between CompleteMultipartUpload and PutObjectTagging left an object without its digest:
    the day is copied again rather than recorded without a sha256."""
    if not keeps_tags(client):
        pytest.skip("no PutObjectTagging on this store: test_without_its_manifest_an_untagged_object_is_not_...")
    sink = make_sink(client, bucket, **MULTIPART)
    data = day_file(4096)
    key = "twilio/Messages/untagged.json.gz"

    def die(**_: Any) -> None:
        raise SystemExit("worker killed")

    client.meta.events.register("before-call.s3.PutObjectTagging", die)
    with pytest.raises(SystemExit):
        sink.upload_verified(reader_for(data), key, len(data), META)
    client.meta.events.unregister("before-call.s3.PutObjectTagging", die)
    assert sink.head(key) is not None and tags_of(client, bucket, key) == {}
    assert sink.stored_day(key, len(data), META["twilio_create_date"]) is None
    again = sink.upload_verified(reader_for(data), key, len(data), META)
    assert sink.stored_day(key, len(data), META["twilio_create_date"]) == StoredDay(
        key, len(data), again.sha256, again.records
    )


@PATHS
def test_new_content_replaces_the_old(server: S3Server, client: Any, bucket: str, settings: dict[str, Any]) -> None:
    sink = make_sink(client, bucket, **settings)
    key = "twilio/Messages/replaced.json.gz"
    old, new = day_file(4096, seed=1), day_file(4096, seed=2)
    sink.upload_verified(reader_for(old), key, len(old), META)
    result = sink.upload_verified(reader_for(new), key, len(new), META)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == new
    assert_digest_kept(client, bucket, key, result.sha256, result.records)
    assert server.writes(bucket, key) == 2


# -- encryption, storage class, manifest -------------------------------------------------------------


@PATHS
def test_sse_s3_and_storage_class_are_applied(client: Any, bucket: str, settings: dict[str, Any]) -> None:
    sink = make_sink(client, bucket, sse="AES256", storage_class="STANDARD_IA", **settings)
    data = day_file(2048)
    key = "twilio/Messages/enc.json.gz"
    sink.upload_verified(reader_for(data), key, len(data), META)
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"


@PATHS
def test_sse_kms_with_key_id_is_applied(moto_s3: MotoS3Server, settings: dict[str, Any]) -> None:
    """moto only: SeaweedFS has no KMS here (an aws:kms write answers InternalError)."""
    client = moto_s3.client()
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    key_id = "arn:aws:kms:us-east-1:123456789012:key/relay-test"
    sink = make_sink(client, bucket, sse="aws:kms", kms_key_id=key_id, **settings)
    data = day_file(2048)
    key = "twilio/Messages/kms.json.gz"
    sink.upload_verified(reader_for(data), key, len(data), META)
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("relay-test")


def test_put_json_uses_the_same_settings(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket, sse="AES256", storage_class="STANDARD_IA")
    sink.put_json("twilio/Messages/_manifests/JS1.json", {"job_sid": "JS1", "days": [1, 2]})
    obj = client.get_object(Bucket=bucket, Key="twilio/Messages/_manifests/JS1.json")
    assert obj["ContentType"] == "application/json"
    assert obj["ServerSideEncryption"] == "AES256" and obj["StorageClass"] == "STANDARD_IA"
    assert json.loads(obj["Body"].read()) == {"job_sid": "JS1", "days": [1, 2]}


def test_head_missing_key_is_none(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket)
    assert sink.head("twilio/nothing.json.gz") is None and sink.tags("twilio/nothing.json.gz") == {}


def test_empty_file_is_one_put_whatever_the_settings(client: Any, bucket: str) -> None:
    data = gzip.compress(b"", mtime=0)
    for settings, key in ((SINGLE, "twilio/e1.json.gz"), (MULTIPART, "twilio/e2.json.gz")):
        result = make_sink(client, bucket, **settings).upload_verified(reader_for(data), key, len(data), META)
        assert result.records == 0
        assert_digest_kept(client, bucket, key, hashlib.sha256(data).hexdigest(), 0)
    zero = make_sink(client, bucket, **MULTIPART).upload_verified(reader_for(b""), "twilio/e3", 0, META)
    assert zero.size == 0 and client.head_object(Bucket=bucket, Key="twilio/e3")["ContentLength"] == 0


# -- janitor -----------------------------------------------------------------------------------------


def test_janitor_aborts_stale_uploads_and_old_staging_objects(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket)
    client.create_multipart_upload(Bucket=bucket, Key="twilio/Messages/day=2024-05-01/x.json.gz")
    client.create_multipart_upload(Bucket=bucket, Key="twilio/_staging/abc/x.json.gz")  # from an older version
    client.create_multipart_upload(Bucket=bucket, Key="other/keep.json.gz")  # outside the prefix
    client.put_object(Bucket=bucket, Key="twilio/_staging/def/y.json.gz", Body=b"partial")  # from an older version
    client.put_object(Bucket=bucket, Key="twilio/Messages/final.json.gz", Body=b"keep me")

    # moto reports every upload as initiated in 2010, so "too young" needs a threshold of a century
    assert sink.abort_stale_uploads(timedelta(days=36500)) == 0
    assert len(open_uploads(client, bucket)) == 3

    assert sink.abort_stale_uploads(timedelta(0)) == 3
    assert [u["Key"] for u in open_uploads(client, bucket)] == ["other/keep.json.gz"]
    assert client.list_objects_v2(Bucket=bucket, Prefix="twilio/_staging/").get("Contents") is None
    assert sink.head("twilio/Messages/final.json.gz") is not None
    assert sink.abort_stale_uploads(timedelta(0)) == 0


def test_janitor_with_empty_prefix_leaves_other_writers_alone(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket, prefix="")
    client.create_multipart_upload(Bucket=bucket, Key="someone-else/upload.bin")
    client.create_multipart_upload(Bucket=bucket, Key="Messages/day=2024-05-01/Messages-2024-05-01.json.gz")
    client.create_multipart_upload(Bucket=bucket, Key="Messages/day=2024-05-01/Calls-2024-05-01.json.gz")
    client.create_multipart_upload(Bucket=bucket, Key="_staging/abc/x.json.gz")
    client.put_object(Bucket=bucket, Key="_staging/def/y.json.gz", Body=b"partial")
    assert sink.abort_stale_uploads(timedelta(0)) == 3
    assert sorted(u["Key"] for u in open_uploads(client, bucket)) == [
        "Messages/day=2024-05-01/Calls-2024-05-01.json.gz",  # not a key the template makes
        "someone-else/upload.bin",
    ]
    assert client.list_objects_v2(Bucket=bucket, Prefix="_staging/").get("Contents") is None


# -- errors ------------------------------------------------------------------------------------------


def test_check_bucket(client: Any, bucket: str) -> None:
    make_sink(client, bucket).check_bucket()
    with pytest.raises(PermanentS3Error, match="relay-missing-bucket") as info:
        make_sink(client, "relay-missing-bucket").check_bucket()
    assert isinstance(info.value, PermanentCopyError)


@pytest.mark.parametrize(
    ("settings", "operation"), [(SINGLE, "PutObject"), (MULTIPART, "CreateMultipartUpload")], ids=["single", "mp"]
)
def test_upload_to_missing_bucket_is_permanent(client: Any, settings: dict[str, Any], operation: str) -> None:
    sink = make_sink(client, "relay-no-such-bucket", **settings)
    data = day_file(1000)
    with pytest.raises(PermanentS3Error) as info:
        sink.upload_verified(reader_for(data), "twilio/x.json.gz", len(data), META)
    err = info.value
    assert err.bucket == "relay-no-such-bucket" and err.code == "NoSuchBucket" and err.operation == operation
    assert "relay-no-such-bucket" in str(err) and operation in str(err)


def test_unreachable_endpoint_is_transient() -> None:
    import boto3
    from botocore.config import Config

    dead = boto3.session.Session().client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2),
    )
    with pytest.raises(TransientS3Error, match="HeadBucket") as info:
        make_sink(dead, "relay-any").check_bucket()
    assert isinstance(info.value, RetryableCopyError)


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (client_error("AccessDenied", 403), PermanentS3Error),
        (client_error("NoSuchBucket", 404), PermanentS3Error),
        (client_error("InvalidAccessKeyId", 403), PermanentS3Error),
        (client_error("SlowDown", 503), TransientS3Error),
        (client_error("InternalError", 500), TransientS3Error),
        (client_error("RequestTimeout", 400), TransientS3Error),
        (client_error("BadDigest", 400), TransientS3Error),
        (client_error("NoSuchUpload", 404), TransientS3Error),
        (client_error("Whatever", 502), TransientS3Error),
        (client_error("TooManyRequests", 429), TransientS3Error),
        (EndpointConnectionError(endpoint_url="https://s3"), TransientS3Error),
        (NoCredentialsError(), PermanentS3Error),
    ],
)
def test_error_classification(exc: Exception, cls: type) -> None:
    err = classify_s3_error(exc, "PutObject", "bkt", "some/key")
    assert type(err) is cls
    assert "PutObject" in str(err) and "s3://bkt/some/key" in str(err)


@PATHS
def test_a_stream_that_cannot_prove_its_digest_is_not_published(
    server: S3Server, client: Any, bucket: str, settings: dict[str, Any]
) -> None:
    """The sink refuses a stream that cannot prove its digest (it would publish unverified bytes)."""

    class Plain(io.BytesIO):
        def digest(self) -> Any:
            raise CopyIntegrityError("no digest")

    data = day_file(1000)
    with pytest.raises(CopyIntegrityError):
        make_sink(client, bucket, **settings).upload_verified(Plain(data), "twilio/p.json.gz", len(data), META)
    assert_nothing_published(server, client, bucket)


# -- the client factory ------------------------------------------------------------------------------


def use_boto3_environment(server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The server's AWS_* variables, and no config or credentials file of whoever runs the tests."""
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def test_make_s3_client_reads_boto3_environment(
    server: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_boto3_environment(server, monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "path")
    client = make_s3_client(max_pool_connections=7)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert client.meta.config.max_pool_connections == 7
    assert client.meta.config.s3 == {"addressing_style": "path"}
    client.put_object(Bucket=bucket, Key="probe", Body=b"x", ChecksumSHA256=sha256_b64(b"x"))  # header, not chunked
    assert client.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"x"

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "9")
    assert make_s3_client().meta.config.retries["total_max_attempts"] == 9
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "sideways")
    with pytest.raises(ValueError, match="AWS_S3_ADDRESSING_STYLE"):
        make_s3_client()


# -- the harness itself ---------------------------------------------------------------------------------


def test_plain_server_counts_and_restart_loses_state(tmp_path: Path) -> None:
    with MotoS3Server(tls=False, log_dir=tmp_path) as plain:
        assert plain.ca_bundle is None and "AWS_CA_BUNDLE" not in plain.env()
        assert plain.endpoint_url.startswith("http://")
        c = plain.client()
        c.create_bucket(Bucket="relay-plain")
        c.put_object(Bucket="relay-plain", Key="a/b", Body=b"x")
        c.put_object(Bucket="relay-plain", Key="a/b", Body=b"y")
        assert plain.writes("relay-plain", "a/b") == 2
        assert plain.counts()["relay-plain/a/b"].get("aws_chunked", 0) == 0  # checksum in a header over http
        plain.reset_counts()
        assert plain.counts() == {}
        port, pid = plain.port, plain.pid
        plain.restart()
        assert plain.port == port and plain.pid != pid
        assert "relay-plain" not in [b["Name"] for b in c.list_buckets()["Buckets"]]  # state is gone
        pid = plain.pid
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped and reaped on exit


# -- the check after every write (issue 19) --------------------------------------------------------------------


def last_write_of(client: Any, settings: dict[str, Any]) -> str:
    """The last request that touches a day file's key on this path (after which the HeadObject checks it)."""
    if settings is SINGLE:
        return "PutObject"
    return "PutObjectTagging" if keeps_tags(client) else "CompleteMultipartUpload"


@PATHS
def test_an_object_changed_right_after_its_last_write_is_an_anomaly_and_is_removed(
    server: S3Server, client: Any, bucket: str, settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Someone (a gateway, a proxy, another writer) changes the object between the relay's last write and its
    HeadObject: never returned as uploaded, ERROR with bucket/key/operation, the object deleted (the retry writes
    it again)."""
    operation = last_write_of(client, settings)
    other = server.client()
    key = "twilio/Messages/day=2024-05-01/altered.json.gz"

    def alter(**_: Any) -> None:
        other.put_object(Bucket=bucket, Key=key, Body=b"<Tagging/>", ChecksumSHA256=sha256_b64(b"<Tagging/>"))

    client.meta.events.register(f"after-call.s3.{operation}", alter)
    data = day_file(4096)
    with pytest.raises(TransientS3Error) as info:
        make_sink(client, bucket, **settings).upload_verified(reader_for(data), key, len(data), META)
    assert info.value.code == "StoreAnomaly" and info.value.operation == operation
    assert isinstance(info.value, RetryableCopyError)
    assert all_keys(client, bucket) == []
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert (record.bucket, record.key, record.operation, record.reason) == (bucket, key, operation, "size")


def test_a_tagging_that_fails_after_altering_the_object_is_checked_too(
    server: S3Server, client: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that replaces the body on PutObjectTagging and then drops the connection: the tagging's error is
    raised, and the altered object is found and deleted all the same (never left at the published key)."""
    if not keeps_tags(client):
        pytest.skip("no PutObjectTagging on this store: covered by the test after this one")
    other = server.client()
    key = "twilio/Messages/day=2024-05-02/altered.json.gz"

    def alter_then_fail(**_: Any) -> None:
        other.put_object(Bucket=bucket, Key=key, Body=b"<Tagging/>", ChecksumSHA256=sha256_b64(b"<Tagging/>"))
        raise EndpointConnectionError(endpoint_url=server.endpoint_url)

    client.meta.events.register("after-call.s3.PutObjectTagging", alter_then_fail)
    data = day_file(4096)
    with pytest.raises(TransientS3Error) as info:
        make_sink(client, bucket, single_put_max=0).upload_verified(reader_for(data), key, len(data), META)
    assert info.value.operation == "PutObjectTagging" and info.value.code != "StoreAnomaly"  # the tagging's error
    assert all_keys(client, bucket) == []
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert (record.key, record.operation, record.reason) == (key, "PutObjectTagging", "size")


def test_tags_forced_on_rclone_are_caught_by_the_check_after_tagging(rclone_s3: RcloneS3Server) -> None:
    """What issue 19 saw (S3_OBJECT_TAGS=on against rclone, whose PutObjectTagging replaces the object): the
    HeadObject after the tagging finds the tagging XML in place of the day file."""
    client = rclone_s3.client()
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    sink = make_sink(client, bucket, single_put_max=0, digest_in_tags=True, multipart_etag_kept=False)
    data = day_file(4096)
    with pytest.raises(TransientS3Error, match="changed after PutObjectTagging") as info:
        sink.upload_verified(reader_for(data), "twilio/Messages/big.json.gz", len(data), META)
    assert info.value.code == "StoreAnomaly"
    assert all_keys(client, bucket) == []


def test_a_manifest_changed_after_its_put_is_an_anomaly(server: S3Server, client: Any, bucket: str) -> None:
    other = server.client()
    key = "twilio/Messages/_manifests/JS1.json"

    def alter(**_: Any) -> None:
        other.put_object(Bucket=bucket, Key=key, Body=b"{}", ChecksumSHA256=sha256_b64(b"{}"))

    client.meta.events.register("after-call.s3.PutObject", alter)
    with pytest.raises(TransientS3Error, match="changed after PutObject"):
        make_sink(client, bucket).put_json(key, {"job_sid": "JS1", "days": []})
    assert all_keys(client, bucket) == []
