"""/livez, /readyz and /health against real Redis and S3: each failing dependency is named."""

from __future__ import annotations

import time

import pytest

from app import create_app
from app.jobs.records import DayRecord, JobRecord
from app.platform.config import load_settings
from app.platform.version import version
from devstack.redis_server import RedisServer
from tests.conftest import ADMIN_TOKEN, make_env

PUBLIC = "https://relay.example.com"
SID = "JS" + "cd" * 16


@pytest.fixture
def make_client(redis_url, s3, bucket, sandbox, monkeypatch):
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)  # the S3 client reads boto3's standard variables

    def factory(redis: str = redis_url, **env):
        app = create_app(load_settings(make_env(redis, s3, bucket, sandbox, PUBLIC, **env)))
        client = app.test_client()
        client.svc = app.extensions["relay"]
        return client

    return factory


def test_livez_has_no_dependencies(make_client, tmp_path):
    with RedisServer(tmp_path / "r") as server:
        client = make_client(server.url)
        server.stop()
        assert client.get("/livez").status_code == 200


def test_readyz_ok(make_client):
    r = make_client().get("/readyz")
    assert r.status_code == 200 and r.get_json()["status"] == "ok"


def test_readyz_names_redis_when_down(make_client, tmp_path):
    with RedisServer(tmp_path / "r") as server:
        client = make_client(server.url)
        server.stop()
        r = client.get("/readyz")
        assert r.status_code == 503 and r.get_json()["failing"] == ["redis"]


def test_s3_trouble_fails_health_but_keeps_the_web_ready(make_client):
    """The web never writes to S3: an S3 outage must not take webhook intake out of the load balancer."""
    client = make_client(S3_BUCKET="no-such-bucket-here")
    r = client.get("/readyz")
    assert r.status_code == 200 and "s3" not in r.get_json()["checks"]
    (s3_check,) = client.get("/health").get_json(force=True)["checks"]["s3:bucket"]
    assert s3_check["status"] == "fail" and s3_check["output"].startswith("s3 unavailable (ClientError)")


def test_unauthenticated_health_names_no_endpoint_or_bucket(make_client, capsys):
    """Issue 12: /health is public, so an error's text (the endpoint, the bucket) goes to the log, not the answer."""
    client = make_client(S3_BUCKET="no-such-bucket-secretive")
    body = client.get("/health").get_data(as_text=True)
    assert "no-such-bucket-secretive" not in body and "127.0.0.1" not in body
    assert "health check s3 failed: ClientError" in capsys.readouterr().out  # the JSON log line, on stdout


def _track_uncopied_day(client, age_days: float) -> None:
    job = JobRecord(
        job_sid=SID,
        resource_type="Calls",
        start_day="2026-11-01",
        end_day="2026-11-01",
        created_at=time.time() - age_days * 86400,
    )
    client.svc.jobs.add_job(job)
    client.svc.days.ensure_days(SID, [DayRecord(day="2026-11-01", twilio_status="completed")])
    client.svc.marks.mark_poll()


def test_health_document_shape_and_no_workers_fails(make_client):
    client = make_client()
    client.svc.marks.mark_poll()
    r = client.get("/health")
    assert r.content_type == "application/health+json"
    doc = r.get_json(force=True)
    assert doc["status"] == "fail"  # no RQ worker registered
    assert doc["checks"]["workers:count"][0] == {"status": "fail", "observedValue": 0}
    for name in (
        "redis:responseTime",
        "s3:bucket",
        "queues:depth",
        "days:failed",
        "days:oldestUncopiedAge",
        "poller:lastRun",
    ):
        assert name in doc["checks"]


@pytest.mark.parametrize(("age_days", "expected"), [(1, "pass"), (5.5, "warn"), (6.5, "fail")])
def test_health_retention_warning(make_client, age_days, expected):
    client = make_client()
    _track_uncopied_day(client, age_days)
    doc = client.get("/health").get_json(force=True)
    check = doc["checks"]["days:oldestUncopiedAge"][0]
    assert check["status"] == expected
    assert check["observedValue"] == pytest.approx(age_days * 86400, abs=60)


def test_health_reports_stale_poller(make_client):
    client = make_client()
    doc = client.get("/health").get_json(force=True)
    assert doc["checks"]["poller:lastRun"][0]["status"] == "warn"  # never ran


def test_the_api_document_names_the_version_for_the_admin_token_only(make_client):
    client = make_client()
    assert client.get("/openapi.json").get_json()["info"]["version"] == "unpublished"
    named = client.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert named.get_json()["info"]["version"] == version()
    assert client.get("/openapi.json", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert version() not in client.get("/health").get_data(as_text=True)
