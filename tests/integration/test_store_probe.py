"""The S3 store probe (app/bucket/probe.py) on three real servers, its Redis cache, ``relay doctor`` and /health.

rclone serve s3 is the store of issue 19: its PutObjectTagging replaces the object with the tagging XML. The
probe must find that (and SeaweedFS, moto as they are), the relay must then keep the digest out of the tags,
and forcing tags there (S3_OBJECT_TAGS=on) must refuse with one line.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from app import create_app
from app.bucket import probe as store_probe
from app.bucket.probe import StoreFindings, StoreRefused, decide, probe_store, store_findings
from app.platform.config import load_settings
from devstack.s3_server import RcloneS3Server, S3Server
from tests.conftest import ADMIN_TOKEN, make_env
from tests.integration import s3_calls
from tests.integration.s3_calls import S3Calls

bucket = s3_calls.server_bucket  # fixture: a new bucket per test on the module's ``server``

# What each server of the local stack does (module docstring of devstack/s3_server.py).
EXPECTED = {
    "seaweedfs": StoreFindings(True, True, True, True, True, True, True),
    "moto": StoreFindings(True, True, True, False, False, True, True),  # moto checks no request checksum
    "rclone": StoreFindings(True, False, True, False, False, True, False),
}


def server_name(server: S3Server) -> str:
    return {"SeaweedS3Server": "seaweedfs", "MotoS3Server": "moto", "RcloneS3Server": "rclone"}[type(server).__name__]


def test_the_probe_finds_what_each_store_does_and_leaves_nothing(server: S3Server, client: Any, bucket: str) -> None:
    found = probe_store(client, bucket, "twilio/")
    assert found.probed_at
    assert StoreFindings(**{**found.__dict__, "probed_at": ""}) == EXPECTED[server_name(server)]
    assert client.list_objects_v2(Bucket=bucket).get("Contents") is None  # probe objects deleted
    path = decide(found, "auto", bucket)
    assert path.refusal is None and path.digest_in_tags == (server_name(server) != "rclone")


def test_rclone_puts_the_tagging_xml_in_place_of_the_object(rclone_s3: RcloneS3Server) -> None:
    """Issue 19's reproduction, with boto3 alone: what the probe's tagging_intact=false stands for."""
    client = rclone_s3.client()
    name = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="k", Body=b"the verified day file")
    client.put_object_tagging(Bucket=name, Key="k", Tagging={"TagSet": [{"Key": "sha256", "Value": "abc"}]})
    body = client.get_object(Bucket=name, Key="k")["Body"].read()
    assert body.startswith(b"<Tagging xmlns=") and b"the verified day file" not in body


def test_forcing_tags_on_a_store_that_corrupts_them_refuses_with_one_line(
    rclone_s3: RcloneS3Server, redis_url: str, redis_server: Any
) -> None:
    client = rclone_s3.client()
    name = f"relay-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    r = redis_server.client()
    with pytest.raises(StoreRefused) as info:
        store_probe.write_path(r, client, name, "twilio/", "on")
    line = str(info.value)
    assert "\n" not in line and "tagging_intact=false" in line and "S3_OBJECT_TAGS" in line and name in line
    assert store_probe.write_path(r, client, name, "twilio/", "auto").digest_in_tags is False
    assert store_probe.write_path(r, client, name, "twilio/", "off").digest_in_tags is False


def test_findings_are_cached_and_replicas_starting_together_probe_once(
    seaweed_s3: S3Server, redis_url: str, redis_server: Any
) -> None:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    seaweed_s3.client().create_bucket(Bucket=name)
    clients = [seaweed_s3.client() for _ in range(3)]
    calls = [S3Calls.record(c) for c in clients]
    results: list[StoreFindings] = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(store_findings(redis_server.client(), c, name, "twilio/")))
        for c in clients
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 3 and len(set(results)) == 1  # the same findings, from one probe
    probes = sum(1 for c in calls if c.ops().get("CreateMultipartUpload"))
    assert probes == 1
    again = S3Calls.record(clients[0])
    assert store_findings(redis_server.client(), clients[0], name, "twilio/") == results[0]
    assert again.sent == []  # from the cache
    fresh = store_findings(redis_server.client(), clients[0], name, "twilio/", fresh=True)
    assert again.ops()["PutObject"] >= 1 and fresh.probed_at >= results[0].probed_at


# -- relay doctor and /health ------------------------------------------------------------------------------------


@pytest.fixture
def app_for(redis_url: str, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    def build(server: S3Server, bucket: str, **env: str) -> Any:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)  # the S3 client reads boto3's standard variables
        return create_app(
            load_settings(make_env(redis_url, server, bucket, sandbox, "https://relay.example.com", **env))
        )

    return build


def test_doctor_checks_the_whole_set_up_one_line_per_finding(
    app_for: Any, seaweed_s3: S3Server, rclone_s3: RcloneS3Server
) -> None:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    seaweed_s3.client().create_bucket(Bucket=name)
    r = app_for(seaweed_s3, name).test_cli_runner().invoke(args=["relay", "doctor"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert [line.split()[1] for line in lines] == ["config", "redis", "s3"] + ["store"] * 8 + ["twilio"]
    assert all(line.startswith("ok") for line in lines)
    assert "write path: sha256 and records in object tags" in r.output

    other = f"relay-{uuid.uuid4().hex[:12]}"
    rclone_s3.client().create_bucket(Bucket=other)
    r = app_for(rclone_s3, other, S3_OBJECT_TAGS="on").test_cli_runner().invoke(args=["relay", "doctor"])
    assert r.exit_code == 1
    assert any(line.startswith("warn") and "(tagging_intact)" in line for line in r.output.splitlines())
    (refusal,) = [line for line in r.output.splitlines() if line.startswith("fail")]
    assert "S3_OBJECT_TAGS=on" in refusal and "set S3_OBJECT_TAGS=auto or off" in refusal
    assert ADMIN_TOKEN not in r.output


def test_health_shows_the_store_verdict_and_its_detail_only_when_authenticated(
    app_for: Any, rclone_s3: RcloneS3Server
) -> None:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    rclone_s3.client().create_bucket(Bucket=name)
    app = app_for(rclone_s3, name, S3_OBJECT_TAGS="on")
    web = app.test_client()
    assert web.get("/health").get_json()["checks"]["s3:store"][0]["status"] == "warn"  # not probed yet
    assert web.get("/readyz").status_code == 200
    assert app.test_cli_runner().invoke(args=["relay", "doctor"]).exit_code == 1  # probes, fills the cache
    web.application.extensions["relay"].cache.clear()  # the 2-s health cache
    public = web.get("/health").get_json()["checks"]["s3:store"][0]
    assert public == {"status": "fail"}
    ready = web.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["failing"] == ["store"]
    private = web.get("/health", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).get_json()
    detail = private["checks"]["s3:store"][0]["detail"]
    assert detail["findings"]["tagging_intact"] is False and detail["S3_OBJECT_TAGS"] == "on"
    assert "S3_OBJECT_TAGS=on" in detail["notes"][0]
    wrong = web.get("/health", headers={"Authorization": "Bearer not-the-token"})  # the API's 401, counted
    assert wrong.status_code == 401 and b"findings" not in wrong.data
