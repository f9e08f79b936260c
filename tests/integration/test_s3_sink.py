"""S3Sink against a real moto S3 server over TLS (so botocore sends aws-chunked bodies with checksums)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from app.s3_client import make_s3_client
from devstack.procs import free_port
from devstack.s3_server import MotoS3Server
from workers import s3_sink
from workers.copy import VerifyingReader
from workers.copy_errors import (
    CopyIntegrityError,
    PermanentCopyError,
    PermanentS3Error,
    RetryableCopyError,
    TransientS3Error,
)
from workers.s3_sink import (
    S3Sink,
    SinkSettings,
    StoredDay,
    classify_s3_error,
    part_size_for,
    upload_transfer_config,
)

MiB = 1024 * 1024
META = {
    "job_sid": "JS0123",
    "day": "2024-05-01",
    "resource_type": "Messages",
    "twilio_create_date": "2024-05-03",
}


# -- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def bucket(client: Any) -> str:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def make_sink(client: Any, bucket: str, **settings: Any) -> S3Sink:
    return S3Sink(client, SinkSettings(bucket=bucket, **settings))


def day_file(size: int, seed: int = 1) -> bytes:
    """A gzip file of about ``size`` bytes (random content does not compress)."""
    rng = random.Random(seed)
    return gzip.compress(rng.randbytes(size), compresslevel=1, mtime=0)


def reader_for(data: bytes, expected: int | None = None, chunk: int = MiB) -> VerifyingReader:
    pieces = (data[i : i + chunk] for i in range(0, len(data), chunk))
    return VerifyingReader(pieces, len(data) if expected is None else expected)


def staging_keys(client: Any, bucket: str, prefix: str = "twilio/") -> list[str]:
    resp = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}_staging/")
    return [o["Key"] for o in resp.get("Contents", [])]


def open_uploads(client: Any, bucket: str) -> list[dict[str, Any]]:
    return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def ops_under(server: MotoS3Server, bucket: str, prefix: str) -> dict[str, int]:
    """Sum of counted operations over every key under ``bucket/prefix``."""
    total: dict[str, int] = {}
    for key, ops in server.counts().items():
        if key.startswith(f"{bucket}/{prefix}"):
            for op, n in ops.items():
                total[op] = total.get(op, 0) + n
    return total


# -- keys and settings -------------------------------------------------------------------------------


def test_day_key_default_template() -> None:
    sink = S3Sink(None, SinkSettings(bucket="b-x"))
    assert sink.day_key("Messages", "2024-05-01", "JS1") == "twilio/Messages/day=2024-05-01/Messages-2024-05-01.json.gz"


def test_day_key_custom_template_and_date() -> None:
    from datetime import date

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
    config = upload_transfer_config(5 * 1024 * MiB, concurrency=4)
    assert config.multipart_chunksize == 8 * MiB
    # parts in memory (queued or being sent) + the one being filled, well under 150 MiB
    assert (config.max_in_memory_upload_chunks + 1) * config.multipart_chunksize <= 80 * MiB
    big = upload_transfer_config(200 * 1024 * MiB, concurrency=8)
    assert (big.max_in_memory_upload_chunks + 1) * big.multipart_chunksize <= 100 * MiB


# -- uploads -----------------------------------------------------------------------------------------


STAGED = {"single_put_max": 0}  # sends even small files through the staging path


@pytest.mark.parametrize("settings", [{}, STAGED], ids=["single-put", "staging"])
def test_upload_verified_publishes_with_full_metadata(
    server: MotoS3Server, client: Any, bucket: str, settings: dict[str, Any]
) -> None:
    sink = make_sink(client, bucket, **settings)
    data = gzip.compress(b'{"a": 1}\n{"b": 2}\n{"c": 3}', mtime=0)
    key = sink.day_key("Messages", "2024-05-01", "JS0123")
    result = sink.upload_verified(reader_for(data), key, len(data), META)

    assert (result.size, result.records) == (len(data), 3)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"] == {**META, "size": str(len(data)), "sha256": result.sha256, "records": "3"}
    assert head["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in head
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data
    stored = sink.head(key)
    assert stored is not None and stored.s3_sha256 == result.sha256  # the full-object SHA-256 S3 checked
    assert staging_keys(client, bucket) == [] and open_uploads(client, bucket) == []
    assert server.writes(bucket, key) == 1
    staged = ops_under(server, bucket, "twilio/_staging/")
    if settings:
        assert staged.get("aws_chunked", 0) >= 1  # checksummed over TLS
        assert server.counts()[f"{bucket}/{key}"].get("copy_object") == 1
    else:
        assert staged == {}  # one PutObject straight to the final key
        assert server.counts()[f"{bucket}/{key}"].get("put_object") == 1


def test_files_up_to_single_put_max_skip_staging(server: MotoS3Server, client: Any, bucket: str) -> None:
    small, big = day_file(1000, seed=3), day_file(3000, seed=4)
    sink = make_sink(client, bucket, single_put_max=len(small))
    sink.upload_verified(reader_for(small), "twilio/small.json.gz", len(small), META)
    assert ops_under(server, bucket, "twilio/_staging/") == {}
    sink.upload_verified(reader_for(big), "twilio/big.json.gz", len(big), META)
    assert ops_under(server, bucket, "twilio/_staging/").get("put_object") == 1
    assert client.get_object(Bucket=bucket, Key="twilio/big.json.gz")["Body"].read() == big


def test_multipart_upload_and_multipart_copy(
    server: MotoS3Server, client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_sink, "COPY_MULTIPART_THRESHOLD", 8 * MiB)
    monkeypatch.setattr(s3_sink, "COPY_PART_SIZE", 8 * MiB)
    sink = make_sink(client, bucket, **STAGED)
    data = day_file(20 * MiB)
    key = "twilio/Calls/big.json.gz"
    result = sink.upload_verified(reader_for(data), key, len(data), META)

    staged = ops_under(server, bucket, "twilio/_staging/")
    assert staged["upload_part"] == 3 and staged["complete_multipart_upload"] == 1
    assert staged["aws_chunked"] >= 3
    final = server.counts()[f"{bucket}/{key}"]
    assert final["upload_part_copy"] == 3 and final["complete_multipart_upload"] == 1
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["Metadata"]["sha256"] == result.sha256 == hashlib.sha256(data).hexdigest()
    assert head["ContentType"] == "application/gzip" and head["ContentLength"] == len(data)
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == result.sha256
    assert staging_keys(client, bucket) == [] and open_uploads(client, bucket) == []


@pytest.mark.parametrize(
    ("size", "settings"),
    [(1000, {}), (1000, STAGED), (20 * MiB, STAGED)],
    ids=["single-put", "staging-put", "staging-multipart"],
)
def test_failed_verification_leaves_nothing(client: Any, bucket: str, size: int, settings: dict[str, Any]) -> None:
    sink = make_sink(client, bucket, **settings)
    data = bytearray(day_file(size))
    data[-8] ^= 0xFF  # CRC trailer: only detectable at the very end
    key = "twilio/Messages/bad.json.gz"
    with pytest.raises(CopyIntegrityError):
        sink.upload_verified(reader_for(bytes(data)), key, len(data), META)
    assert sink.head(key) is None
    assert staging_keys(client, bucket) == [] and open_uploads(client, bucket) == []


def test_stored_day_finds_the_same_file_so_it_is_written_once(server: MotoS3Server, client: Any, bucket: str) -> None:
    """The one "already stored?" check (the day copier asks it before downloading): the same Twilio file is found
    with its digest, so a second copy of it never reaches the write path."""
    sink = make_sink(client, bucket)
    data = day_file(4096)
    key = "twilio/Messages/same.json.gz"
    first = sink.upload_verified(reader_for(data), key, len(data), META)
    stored = sink.stored_day(key, len(data), META["twilio_create_date"])
    assert stored == StoredDay(key, len(data), first.sha256, first.records)
    assert server.writes(bucket, key) == 1
    assert client.head_object(Bucket=bucket, Key=key)["Metadata"]["job_sid"] == "JS0123"
    assert staging_keys(client, bucket) == []


def test_new_content_replaces_the_old(server: MotoS3Server, client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket)
    key = "twilio/Messages/replaced.json.gz"
    old, new = day_file(4096, seed=1), day_file(4096, seed=2)
    sink.upload_verified(reader_for(old), key, len(old), META)
    sink.upload_verified(reader_for(new), key, len(new), META)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == new
    assert server.writes(bucket, key) == 2


def test_a_copy_that_s3_hashes_differently_is_removed(
    client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_sink, "_full_object_sha256", lambda head: "00" * 32)
    sink = make_sink(client, bucket, **STAGED)
    data = day_file(2048)
    with pytest.raises(TransientS3Error, match="SHA-256"):
        sink.upload_verified(reader_for(data), "twilio/x.json.gz", len(data), META)
    assert sink.head("twilio/x.json.gz") is None and staging_keys(client, bucket) == []


def test_a_put_refused_with_bad_digest_is_retried_and_leaves_nothing(server: MotoS3Server, bucket: str) -> None:
    """Real S3 re-hashes a PutObject body against ChecksumSHA256 and answers 400 BadDigest on a mismatch (a
    body corrupted on the way). moto does not check, so its answer is played here: the request must carry our
    SHA-256, the error must be a retryable one, and no object may exist."""
    client = server.client()
    seen: dict[str, str] = {}

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>BadDigest</Code>'
                b"<Message>The SHA256 you specified did not match the calculated checksum.</Message></Error>"
            )

    def refuse(request: Any, **_: Any) -> AWSResponse:
        seen["checksum"] = request.headers["x-amz-checksum-sha256"].decode()
        return AWSResponse(request.url, 400, {"Content-Type": "application/xml"}, Raw())

    client.meta.events.register("before-send.s3.PutObject", refuse)
    data = day_file(2048)
    with pytest.raises(TransientS3Error) as info:
        make_sink(client, bucket).upload_verified(reader_for(data), "twilio/x.json.gz", len(data), META)
    assert info.value.code == "BadDigest" and info.value.operation == "PutObject"
    assert seen["checksum"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert make_sink(server.client(), bucket).head("twilio/x.json.gz") is None


def test_a_put_that_s3_hashes_differently_is_removed(server: MotoS3Server, bucket: str) -> None:
    """Real S3 refuses a body that does not match ChecksumSHA256 (BadDigest); should it ever answer with
    another checksum instead, the object is removed. moto stores what it is sent, so its answer is altered."""
    client = server.client()  # its own client: the hook below must not leak into other tests

    def wrong_checksum(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ChecksumSHA256"] = base64.b64encode(b"\0" * 32).decode()

    client.meta.events.register("after-call.s3.PutObject", wrong_checksum)
    data = day_file(2048)
    with pytest.raises(TransientS3Error, match="SHA-256"):
        make_sink(client, bucket).upload_verified(reader_for(data), "twilio/x.json.gz", len(data), META)
    assert make_sink(server.client(), bucket).head("twilio/x.json.gz") is None


def test_stored_day_matches_size_and_create_date(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket)
    data = day_file(2048)
    key = "twilio/Messages/v.json.gz"
    assert sink.stored_day(key, len(data), "2024-05-03") is None
    sink.upload_verified(reader_for(data), key, len(data), META)
    assert sink.stored_day(key, len(data), "2024-05-03") is not None
    assert sink.stored_day(key, len(data), "2024-05-04") is None
    assert sink.stored_day(key, len(data) + 1, "2024-05-03") is None
    assert sink.stored_day(key, len(data), None) is None
    assert sink.stored_day(key, None, "2024-05-03") is None


def test_sse_s3_and_storage_class_are_applied(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket, sse="AES256", storage_class="STANDARD_IA")
    data = day_file(2048)
    key = "twilio/Messages/enc.json.gz"
    sink.upload_verified(reader_for(data), key, len(data), META)
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"


def test_sse_kms_with_key_id_is_applied(client: Any, bucket: str) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/relay-test"
    sink = make_sink(client, bucket, sse="aws:kms", kms_key_id=key_id)
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
    import json

    assert json.loads(obj["Body"].read()) == {"job_sid": "JS1", "days": [1, 2]}


def test_head_missing_key_is_none(client: Any, bucket: str) -> None:
    assert make_sink(client, bucket).head("twilio/nothing.json.gz") is None


# -- janitor -----------------------------------------------------------------------------------------


def test_janitor_aborts_stale_uploads_and_staging_objects(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket)
    client.create_multipart_upload(Bucket=bucket, Key="twilio/Messages/day=2024-05-01/x.json.gz")
    client.create_multipart_upload(Bucket=bucket, Key="twilio/_staging/abc/x.json.gz")
    client.create_multipart_upload(Bucket=bucket, Key="other/keep.json.gz")  # outside the prefix
    client.put_object(Bucket=bucket, Key="twilio/_staging/def/y.json.gz", Body=b"partial")
    client.put_object(Bucket=bucket, Key="twilio/Messages/final.json.gz", Body=b"keep me")

    # moto reports every upload as initiated in 2010, so "too young" needs a threshold of a century
    assert sink.abort_stale_uploads(timedelta(days=36500)) == 0
    assert len(open_uploads(client, bucket)) == 3

    assert sink.abort_stale_uploads(timedelta(0)) == 3
    assert [u["Key"] for u in open_uploads(client, bucket)] == ["other/keep.json.gz"]
    assert staging_keys(client, bucket) == []
    assert sink.head("twilio/Messages/final.json.gz") is not None
    assert sink.abort_stale_uploads(timedelta(0)) == 0


def test_janitor_with_empty_prefix_leaves_other_writers_alone(client: Any, bucket: str) -> None:
    sink = make_sink(client, bucket, prefix="")
    client.create_multipart_upload(Bucket=bucket, Key="someone-else/upload.bin")
    client.create_multipart_upload(Bucket=bucket, Key="_staging/abc/x.json.gz")
    client.put_object(Bucket=bucket, Key="_staging/def/y.json.gz", Body=b"partial")
    assert sink.abort_stale_uploads(timedelta(0)) == 2
    assert [u["Key"] for u in open_uploads(client, bucket)] == ["someone-else/upload.bin"]
    assert staging_keys(client, bucket, prefix="") == []


# -- errors ------------------------------------------------------------------------------------------


def test_check_bucket(client: Any, bucket: str) -> None:
    make_sink(client, bucket).check_bucket()
    with pytest.raises(PermanentS3Error, match="relay-missing-bucket") as info:
        make_sink(client, "relay-missing-bucket").check_bucket()
    assert isinstance(info.value, PermanentCopyError)


@pytest.mark.parametrize(("settings", "where"), [({}, "twilio/x.json.gz"), (STAGED, "_staging")])
def test_upload_to_missing_bucket_is_permanent(client: Any, settings: dict[str, Any], where: str) -> None:
    sink = make_sink(client, "relay-no-such-bucket", **settings)
    data = day_file(1000)
    with pytest.raises(PermanentS3Error) as info:
        sink.upload_verified(reader_for(data), "twilio/x.json.gz", len(data), META)
    err = info.value
    assert err.bucket == "relay-no-such-bucket" and err.code == "NoSuchBucket"
    assert "relay-no-such-bucket" in str(err) and where in str(err)


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


# -- the client factory ------------------------------------------------------------------------------


def use_boto3_environment(server: MotoS3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The server's AWS_* variables, and no config or credentials file of whoever runs the tests."""
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def test_make_s3_client_reads_boto3_environment(
    server: MotoS3Server, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_boto3_environment(server, monkeypatch, tmp_path)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "path")
    client = make_s3_client(max_pool_connections=7)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert client.meta.config.max_pool_connections == 7
    assert client.meta.config.s3 == {"addressing_style": "path"}
    client.put_object(Bucket=bucket, Key="probe", Body=b"x")
    assert client.get_object(Bucket=bucket, Key="probe")["Body"].read() == b"x"

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "9")
    assert make_s3_client().meta.config.retries["total_max_attempts"] == 9
    monkeypatch.setenv("AWS_S3_ADDRESSING_STYLE", "sideways")
    with pytest.raises(ValueError, match="AWS_S3_ADDRESSING_STYLE"):
        make_s3_client()


def test_checksum_mode_from_environment(
    server: MotoS3Server, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS_REQUEST_CHECKSUM_CALCULATION=when_required: no default checksum, so no aws-chunked body."""
    use_boto3_environment(server, monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    sink = make_sink(make_s3_client(), bucket)
    data = day_file(2048)
    sink.upload_verified(reader_for(data), "twilio/plain.json.gz", len(data), META)
    assert ops_under(server, bucket, "twilio/_staging/").get("aws_chunked", 0) == 0
    assert sink.head("twilio/plain.json.gz") is not None


def test_upload_fileobj_of_a_plain_stream_is_not_verified(client: Any, bucket: str) -> None:
    """The sink refuses a stream that cannot prove its digest (it would publish unverified bytes)."""

    class Plain(io.BytesIO):
        def digest(self) -> Any:
            raise CopyIntegrityError("no digest")

    with pytest.raises(CopyIntegrityError):
        make_sink(client, bucket).upload_verified(Plain(b"x"), "twilio/p.json.gz", 1, META)
    assert make_sink(client, bucket).head("twilio/p.json.gz") is None
    assert staging_keys(client, bucket) == []


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
