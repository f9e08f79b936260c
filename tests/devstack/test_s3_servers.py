"""devstack's S3 servers: SeaweedFS (and rclone serve s3) as the tests, demo and bench start them, and how SeaweedFS
and moto answer the S3 calls the relay relies on (rclone's differences: tests/integration/test_store_probe.py).
/work/notes/seaweedfs-differences.md cites these tests for each difference from AWS S3."""

from __future__ import annotations

import base64
import hashlib
import struct
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
from botocore.exceptions import ClientError
from botocore.httpchecksum import AwsChunkedWrapper, Sha256Checksum

from devstack.procs import wait_until
from devstack.s3_server import GRPC_OFFSET, RcloneS3Server, S3Server, SeaweedS3Server

MiB = 1024 * 1024


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def b64_crc32(data: bytes) -> str:
    return base64.b64encode(struct.pack(">I", zlib.crc32(data))).decode()


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(params=["seaweedfs", "moto"])
def any_s3(request: pytest.FixtureRequest) -> S3Server:
    server: S3Server = request.getfixturevalue(f"{'seaweed' if request.param == 'seaweedfs' else 'moto'}_s3")
    return server


@pytest.fixture
def new_bucket() -> Iterator[Any]:
    """A factory: a fresh bucket on the given server, returning (client, name)."""

    def make(server: S3Server) -> tuple[Any, str]:
        client, name = server.client(), f"probe-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=name)
        return client, name

    yield make


# -- the server as devstack runs it ------------------------------------------------------------------------


def test_seaweedfs_listens_on_loopback_only_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with SeaweedS3Server(tmp_path, tls=True) as s3:
        proc = psutil.Process(s3.pid)
        listening = [c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert {addr.ip for addr in listening} == {"127.0.0.1"}, listening
        assert s3.port in {addr.port for addr in listening} and s3.endpoint_url.startswith("https://")
        assert set(s3.env()) == {
            "AWS_ENDPOINT_URL_S3",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_CA_BUNDLE",
        }
        pid, ports = s3.pid, dict(s3.ports)
        assert s3.data_dir.is_relative_to(tmp_path)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    leftovers = [p for port in ports.values() for p in Path("/tmp").glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock")]
    assert leftovers == []


def test_seaweedfs_checks_the_signature_and_creates_no_bucket_on_upload(seaweed_s3: SeaweedS3Server) -> None:
    import boto3

    wrong = boto3.session.Session().client(
        "s3",
        endpoint_url=seaweed_s3.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="not-the-secret",
        verify=seaweed_s3.ca_bundle,
    )
    with pytest.raises(ClientError) as denied:
        wrong.list_buckets()
    assert error_code(denied) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as missing:
        seaweed_s3.client().put_object(Bucket=f"missing-{uuid.uuid4().hex[:8]}", Key="k", Body=b"1")
    assert error_code(missing) == "NoSuchBucket"  # weed's default -s3.autoCreateBucket=true is switched off


def test_seaweedfs_restart_keeps_objects_uploads_and_write_counts(tmp_path: Path) -> None:
    with SeaweedS3Server(tmp_path) as s3:
        client = s3.client()
        client.create_bucket(Bucket="kept-bucket")
        client.put_object(Bucket="kept-bucket", Key="a", Body=b"1")
        upload = client.create_multipart_upload(Bucket="kept-bucket", Key="m")["UploadId"]
        port, pid = s3.port, s3.pid
        s3.restart()
        assert (s3.port, s3.pid != pid) == (port, True)
        # the volume server may answer InternalError for a moment after start (loading its volumes): poll
        body = wait_until(lambda: client.get_object(Bucket="kept-bucket", Key="a")["Body"].read(), what="the object")
        assert body == b"1"
        assert [u["UploadId"] for u in client.list_multipart_uploads(Bucket="kept-bucket")["Uploads"]] == [upload]
        assert s3.writes("kept-bucket", "a") == 1  # a graceful stop flushes the metadata log


def test_writes_count_what_made_an_object_visible(any_s3: S3Server, new_bucket: Any) -> None:
    client, bucket = new_bucket(any_s3)
    client.put_object(Bucket=bucket, Key="p", Body=b"1")
    client.put_object(Bucket=bucket, Key="p", Body=b"2")  # overwrite: a second write
    client.put_object_tagging(Bucket=bucket, Key="p", Tagging={"TagSet": [{"Key": "sha256", "Value": "ab"}]})
    client.copy_object(Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "p"})
    upload = client.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    part = client.upload_part(Bucket=bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"x")
    parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    client.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=upload, MultipartUpload=parts)
    client.delete_object(Bucket=bucket, Key="c")
    assert any_s3.writes_by_key(bucket) == {"p": 2, "c": 1, "m": 1}
    any_s3.reset_counts()
    assert any_s3.writes_by_key(bucket) == {}


def test_rclone_listens_on_loopback_checks_signatures_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with RcloneS3Server(tmp_path, tls=True) as s3:
        proc = psutil.Process(s3.pid)
        listening = [c.laddr for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert {(addr.ip, addr.port) for addr in listening} == {("127.0.0.1", s3.port)}, listening
        assert s3.endpoint_url.startswith("https://") and s3.data_dir.is_relative_to(tmp_path)
        import boto3

        wrong = boto3.session.Session().client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="not-the-secret",
            verify=s3.ca_bundle,
        )
        with pytest.raises(ClientError):
            wrong.list_buckets()
        pid = s3.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_rclone_counts_writes_and_restart_keeps_objects_but_not_metadata(tmp_path: Path) -> None:
    """rclone keeps object metadata in memory only (its documentation): after a restart the relay's "already
    stored?" match fails and the day is written again, which is safe."""
    with RcloneS3Server(tmp_path) as s3:
        client = s3.client()
        client.create_bucket(Bucket="kept-bucket")
        client.put_object(Bucket="kept-bucket", Key="a/b", Body=b"1", Metadata={"size": "1"})
        client.put_object(Bucket="kept-bucket", Key="a/b", Body=b"22", Metadata={"size": "2"})
        upload = client.create_multipart_upload(Bucket="kept-bucket", Key="m")["UploadId"]
        part = client.upload_part(Bucket="kept-bucket", Key="m", UploadId=upload, PartNumber=1, Body=b"x")
        parts = {"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
        client.complete_multipart_upload(Bucket="kept-bucket", Key="m", UploadId=upload, MultipartUpload=parts)
        assert s3.writes_by_key("kept-bucket") == {"a/b": 2, "m": 1}
        assert client.head_object(Bucket="kept-bucket", Key="a/b")["Metadata"] == {"Size": "2"}  # capitalised
        port = s3.port
        s3.restart()
        assert s3.port == port
        assert client.get_object(Bucket="kept-bucket", Key="a/b")["Body"].read() == b"22"
        assert client.head_object(Bucket="kept-bucket", Key="a/b")["Metadata"] == {}
        s3.reset_counts()
        assert s3.writes_by_key("kept-bucket") == {}


# -- S3 behaviour the relay relies on: where SeaweedFS and moto agree, and where they do not ------------------


def test_put_with_a_wrong_sha256_is_refused_by_seaweedfs_only(any_s3: S3Server, new_bucket: Any) -> None:
    client, bucket = new_bucket(any_s3)
    body = b"day file" * 1000
    kwargs = {"Bucket": bucket, "Key": "k", "Body": body, "ChecksumAlgorithm": "SHA256"}
    if isinstance(any_s3, SeaweedS3Server):
        with pytest.raises(ClientError) as refused:
            client.put_object(**kwargs, ChecksumSHA256=b64_sha256(b"other bytes"))
        assert error_code(refused) == "BadDigest"
        assert "Contents" not in client.list_objects_v2(Bucket=bucket)  # nothing stored
    else:  # moto stores the body under the wrong checksum (botocore's response validation would catch it)
        client.put_object(**kwargs, ChecksumSHA256=b64_sha256(b"other bytes"))
        unchecked = any_s3.client(response_checksum_validation="when_required")
        assert unchecked.get_object(Bucket=bucket, Key="k")["Body"].read() == body


def test_corrupted_trailing_checksum_is_invalid_digest_on_seaweedfs(
    seaweed_s3: SeaweedS3Server, new_bucket: Any
) -> None:
    """Over HTTPS botocore sends a computed checksum as an aws-chunked trailer; here it is computed over other
    bytes. AWS answers a trailer mismatch with BadDigest; SeaweedFS with InvalidDigest."""
    client, bucket = new_bucket(seaweed_s3)

    class WrongSha256(Sha256Checksum):
        def __init__(self) -> None:
            super().__init__()
            self.update(b"corrupt")

    def corrupt_trailer(request: Any, **_: Any) -> None:
        assert isinstance(request.body, AwsChunkedWrapper)
        request.body._checksum_cls = WrongSha256
        request.body._reset()

    client.meta.events.register("before-send.s3.PutObject", corrupt_trailer)
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=bucket, Key="t", Body=b"x" * 100_000, ChecksumAlgorithm="SHA256")
    assert error_code(refused) == "InvalidDigest"
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)


def test_multipart_checksums_per_part_and_full_object_on_seaweedfs(
    seaweed_s3: SeaweedS3Server, new_bucket: Any
) -> None:
    client, bucket = new_bucket(seaweed_s3)
    first, second = b"a" * (5 * MiB), b"b" * 1000

    def upload(algorithm: str, checksum_type: str, **part_checksums: str) -> tuple[str, list[dict[str, Any]]]:
        kw = {"ChecksumAlgorithm": algorithm, "ChecksumType": checksum_type}
        uid = client.create_multipart_upload(Bucket=bucket, Key=f"m-{algorithm}", **kw)["UploadId"]
        parts = []
        for number, data in ((1, first), (2, second)):
            value = part_checksums.get(f"p{number}") or (b64_sha256 if algorithm == "SHA256" else b64_crc32)(data)
            r = client.upload_part(
                Bucket=bucket, Key=f"m-{algorithm}", UploadId=uid, PartNumber=number, Body=data,
                **{f"Checksum{algorithm}": value},
            )  # fmt: skip
            parts.append({"PartNumber": number, "ETag": r["ETag"], f"Checksum{algorithm}": value})
        return uid, parts

    with pytest.raises(ClientError) as bad_part:  # a part whose SHA-256 does not match its bytes
        upload("SHA256", "COMPOSITE", p2=b64_sha256(b"not part 2"))
    assert error_code(bad_part) == "BadDigest"
    uid, parts = upload("SHA256", "COMPOSITE")
    wrong_list = [{**parts[0], "ChecksumSHA256": b64_sha256(b"not part 1")}, parts[1]]
    with pytest.raises(ClientError) as bad_list:  # the part checksums named at completion must match too
        client.complete_multipart_upload(
            Bucket=bucket, Key="m-SHA256", UploadId=uid, MultipartUpload={"Parts": wrong_list}
        )
    assert error_code(bad_list) == "BadDigest"
    done = client.complete_multipart_upload(
        Bucket=bucket, Key="m-SHA256", UploadId=uid, MultipartUpload={"Parts": parts}
    )
    assert done["ChecksumSHA256"].endswith("-2")  # composite: checksum of the part checksums, "-<parts>"
    uid, parts = upload("CRC32", "FULL_OBJECT")
    with pytest.raises(ClientError) as bad_whole:
        client.complete_multipart_upload(
            Bucket=bucket, Key="m-CRC32", UploadId=uid, MultipartUpload={"Parts": parts},
            ChecksumCRC32=b64_crc32(b"not the object"), ChecksumType="FULL_OBJECT",
        )  # fmt: skip
    assert error_code(bad_whole) == "BadDigest"
    done = client.complete_multipart_upload(
        Bucket=bucket, Key="m-CRC32", UploadId=uid, MultipartUpload={"Parts": parts},
        ChecksumCRC32=b64_crc32(first + second), ChecksumType="FULL_OBJECT",
    )  # fmt: skip
    head = client.head_object(Bucket=bucket, Key="m-CRC32", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (b64_crc32(first + second), "FULL_OBJECT")


def test_conditional_create_refuses_an_existing_key(any_s3: S3Server, new_bucket: Any) -> None:
    client, bucket = new_bucket(any_s3)
    client.put_object(Bucket=bucket, Key="once", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as put_again:
        client.put_object(Bucket=bucket, Key="once", Body=b"2", IfNoneMatch="*")
    upload = client.create_multipart_upload(Bucket=bucket, Key="once")["UploadId"]
    part = client.upload_part(Bucket=bucket, Key="once", UploadId=upload, PartNumber=1, Body=b"3")
    with pytest.raises(ClientError) as complete_again:
        client.complete_multipart_upload(
            Bucket=bucket, Key="once", UploadId=upload, IfNoneMatch="*",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )  # fmt: skip
    assert error_code(put_again) == error_code(complete_again) == "PreconditionFailed"
    assert client.get_object(Bucket=bucket, Key="once")["Body"].read() == b"1"


def test_tags_and_metadata_round_trip_through_copies(any_s3: S3Server, new_bucket: Any) -> None:
    client, bucket = new_bucket(any_s3)
    sha = "ab" * 32
    client.put_object(Bucket=bucket, Key="o", Body=b"1", Metadata={"job_sid": "JE1"}, ContentType="application/gzip")
    tags = [{"Key": "sha256", "Value": sha}, {"Key": "records", "Value": "12"}]
    client.put_object_tagging(Bucket=bucket, Key="o", Tagging={"TagSet": tags})
    got = client.get_object_tagging(Bucket=bucket, Key="o")["TagSet"]
    assert sorted(got, key=lambda t: t["Key"]) == sorted(tags, key=lambda t: t["Key"])
    client.copy_object(
        Bucket=bucket, Key="c", CopySource={"Bucket": bucket, "Key": "o"}, MetadataDirective="REPLACE",
        Metadata={"sha256": sha}, ContentType="application/gzip",
    )  # fmt: skip
    head = client.head_object(Bucket=bucket, Key="c")
    assert (head["Metadata"], head["ContentType"]) == ({"sha256": sha}, "application/gzip")
    assert len(client.get_object_tagging(Bucket=bucket, Key="c")["TagSet"]) == 2  # tags copied by default
    with pytest.raises(ClientError) as too_many:
        client.put_object_tagging(
            Bucket=bucket, Key="o", Tagging={"TagSet": [{"Key": f"t{i}", "Value": "v"} for i in range(11)]}
        )
    assert error_code(too_many) == ("InvalidTag" if isinstance(any_s3, SeaweedS3Server) else "BadRequest")


def test_uploads_listed_with_their_real_start_time_on_seaweedfs(any_s3: S3Server, new_bucket: Any) -> None:
    client, bucket = new_bucket(any_s3)
    upload = client.create_multipart_upload(Bucket=bucket, Key="open")["UploadId"]
    (listed,) = client.list_multipart_uploads(Bucket=bucket)["Uploads"]
    age = datetime.now(UTC) - listed["Initiated"]
    if isinstance(any_s3, SeaweedS3Server):
        assert timedelta(0) <= age < timedelta(minutes=5)
    else:
        assert listed["Initiated"].year == 2010  # moto: janitor tests need a threshold of 0 there
    client.abort_multipart_upload(Bucket=bucket, Key="open", UploadId=upload)
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_content_type_left_unset_is_sniffed_by_seaweedfs(any_s3: S3Server, new_bucket: Any) -> None:
    client, bucket = new_bucket(any_s3)
    client.put_object(Bucket=bucket, Key="g", Body=gzip_bytes())
    expected = "application/x-gzip" if isinstance(any_s3, SeaweedS3Server) else "binary/octet-stream"
    assert client.head_object(Bucket=bucket, Key="g")["ContentType"] == expected  # AWS: binary/octet-stream


def gzip_bytes() -> bytes:
    import gzip

    return gzip.compress(b'{"a": 1}\n')
