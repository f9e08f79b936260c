"""End to end: API -> Twilio sandbox -> signed webhook -> gunicorn -> RQ workers -> S3 (SeaweedFS over TLS; one test
also on moto and on rclone serve s3 over TLS; RELAY_E2E_S3=rclone runs them all on rclone)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from rq import Queue

from app.platform.queueing import CONTROL_QUEUE
from devstack.procs import wait_until
from devstack.s3_server import RcloneS3Server

pytestmark = pytest.mark.e2e


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def submit(stack, rt: str, start: int, end: int) -> str:
    r = stack.api("POST", "/api/jobs", json={"resource_type": rt, "start_day": day(start), "end_day": day(end)})
    assert r.status_code == 201, r.text
    return r.json()["job_sid"]


def s3_object(s3, bucket: str, key: str) -> tuple[bytes, dict]:
    obj = s3.client().get_object(Bucket=bucket, Key=key)
    return obj["Body"].read(), obj


def assert_day_in_s3(s3, bucket, sandbox, view_day: dict, rt: str) -> None:
    expected = sandbox.expected_day(rt, view_day["day"])
    body, obj = s3_object(s3, bucket, view_day["key"])
    assert len(body) == expected["size"]
    assert hashlib.sha256(body).hexdigest() == expected["sha256"] == view_day["sha256"]
    assert obj["ContentType"] == "application/gzip" and not obj.get("ContentEncoding")
    meta = {k.lower(): v for k, v in obj["Metadata"].items()}  # rclone capitalises metadata names
    if not isinstance(s3, RcloneS3Server):  # rclone's tagging is unsafe: the digest is in the job manifest only
        tagging = s3.client().get_object_tagging(Bucket=bucket, Key=view_day["key"])["TagSet"]
        tags = {t["Key"]: t["Value"] for t in tagging}
        assert tags["sha256"] == expected["sha256"] and int(tags["records"]) == expected["records"]  # digest: tags
    assert meta["day"] == view_day["day"] and meta["job_sid"] and meta["size"] == str(expected["size"])


def assert_manifest_digests(s3, bucket, sandbox, manifest: dict, rt: str) -> None:
    """The job manifest holds every copied day's digest (the one place a store without safe tags keeps it)."""
    for d in manifest["days"]:
        if d["state"] == "copied":
            expected = sandbox.expected_day(rt, d["day"])
            assert (d["sha256"], d["records"], d["size"]) == (expected["sha256"], expected["records"], expected["size"])


def test_livez_from_procfile_gunicorn(make_stack):
    stack = make_stack(workers=0)
    assert requests.get(f"{stack.url}/livez", timeout=5).json() == {"status": "ok"}


@pytest.mark.parametrize("s3", ["seaweedfs", "moto", "rclone"], indirect=True)  # every S3 server stays covered
def test_job_with_every_day_outcome(make_stack, sandbox, s3, bucket):
    days = {
        day(7): "completed",
        day(6): "empty_file",
        day(5): "empty_404",
        day(4): "error_then_completed",
        day(3): "failed",
    }
    sandbox.set_scenario(days={f"Calls/{d}": {"outcome": o} for d, o in days.items()}, default_day_size=20000)
    stack = make_stack(workers=2)
    sid = submit(stack, "Calls", 7, 3)
    view = stack.wait_job(sid)
    by_day = {d["day"]: d for d in view["days"]}
    assert view["state"] == "failed" and view["error"] == "1 day(s) failed"
    assert by_day[day(7)]["state"] == "copied"
    assert by_day[day(4)]["state"] == "copied"
    assert by_day[day(6)]["state"] == "empty" and by_day[day(6)]["records"] == 0
    assert by_day[day(5)]["state"] == "empty" and by_day[day(5)]["key"] is None
    assert by_day[day(3)]["state"] == "failed"
    for d in (day(7), day(4), day(6)):
        assert_day_in_s3(s3, bucket, sandbox, by_day[d], "Calls")
    for d in (day(7), day(4)):
        assert s3.writes(bucket, by_day[d]["key"]) == 1  # exactly one write of each day's object
    manifest = json.loads(s3_object(s3, bucket, view["manifest_key"])[0])
    assert manifest["failed_days"] == [day(3)] and manifest["state"] == "failed"
    assert sorted(manifest["empty_days"]) == sorted([day(5), day(6)])
    assert_manifest_digests(s3, bucket, sandbox, manifest, "Calls")


@pytest.mark.parametrize("rt", ["Messages", "Calls", "Conferences", "Participants"])
def test_every_resource_type(make_stack, sandbox, s3, bucket, rt):
    stack = make_stack(workers=1)
    sid = submit(stack, rt, 4, 3)
    view = stack.wait_job(sid)
    assert view["state"] == "done"
    for d in view["days"]:
        assert d["key"] == f"twilio/{rt}/day={d['day']}/{rt}-{d['day']}.json.gz"
        assert_day_in_s3(s3, bucket, sandbox, d, rt)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_repeated_signed_webhooks_queue_one_sync(make_stack, sandbox, redis_server, method):
    """No worker runs here, so every sync the deliveries queued is still in the queue to count."""
    sandbox.set_scenario(webhook={"copies": 4})
    stack = make_stack(workers=0, WEBHOOK_METHOD=method, WEBHOOK_SIGNATURE="required")
    sid = submit(stack, "Messages", 3, 3)
    sandbox.complete(sid)

    def delivered() -> bool:
        hooks = [w for w in sandbox.webhooks() if w["job_sid"] == sid]
        return len(hooks) == 4 and all(w.get("status_code") == 204 for w in hooks)

    wait_until(delivered, timeout=30, what="4 signed deliveries answered 204")
    assert all(w["method"] == method for w in sandbox.webhooks())
    queue = Queue(CONTROL_QUEUE, connection=redis_server.client())
    assert queue.job_ids == [f"sync-{sid}"]


def test_missing_webhook_is_finished_by_poller(make_stack, sandbox, s3, bucket):
    sandbox.set_scenario(webhook={"drop": True})
    stack = make_stack(workers=1, poller=True)
    sid = submit(stack, "Conferences", 5, 4)
    view = stack.wait_job(sid)
    assert view["state"] == "done" and view["webhooks_received"] == 0
    assert all(d["state"] == "copied" for d in view["days"])


def test_faults_are_retried_and_days_land_byte_exact(make_stack, sandbox, s3, bucket):
    sandbox.set_scenario(default_day_size=300_000)
    stack = make_stack(workers=2, poller=True)
    sid = submit(stack, "Messages", 8, 3)
    sandbox.set_faults(api={"429": 3, "500": 2, "retry_after": 1}, files={"cut": 2, "expired": 1, "500": 1})
    view = stack.wait_job(sid, timeout=120)
    assert view["state"] == "done", view
    for d in view["days"]:
        assert_day_in_s3(s3, bucket, sandbox, d, "Messages")
    statuses = [d["status"] for d in sandbox.downloads()]
    assert 403 in statuses or any(not d.get("completed", True) for d in sandbox.downloads())


def test_adopted_job_is_copied_by_the_poller(make_stack, sandbox, s3, bucket):
    """A job created by another tool (webhook not ours) is tracked by sid and finished by the poller."""
    r = requests.post(
        f"{sandbox.api_url}/v1/Exports/Participants/Jobs",
        auth=(sandbox.account_sid, sandbox.auth_token),
        data={"StartDay": day(4), "EndDay": day(4), "FriendlyName": "made elsewhere"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    stack = make_stack(workers=1, poller=True)
    assert (
        stack.api("POST", "/api/jobs/track", json={"job_sid": sid, "resource_type": "Participants"}).status_code == 201
    )
    view = stack.wait_job(sid)
    assert view["state"] == "done" and view["origin"] == "adopted"
    assert_day_in_s3(s3, bucket, sandbox, view["days"][0], "Participants")


def test_exhausted_retries_fail_the_day_then_requeue_copies_it(make_stack, sandbox, s3, bucket, redis_server):
    from rq.registry import FailedJobRegistry

    stack = make_stack(workers=1, COPY_RETRY_INTERVALS="1,1")
    sandbox.set_faults(files={"500": 1000})  # every download of the link fails
    sid = submit(stack, "Calls", 3, 3)
    view = stack.wait_job(sid, timeout=120)
    (failed,) = view["days"]
    assert view["state"] == "failed" and failed["state"] == "failed" and failed["attempts"] == 3
    assert "500" in failed["error"] or "Transient" in failed["error"]
    # RQ runs our failure callback (which marks the day failed) before it files the task as failed, and the
    # callback counts the day just after saving it: both may trail the state the API shows by a moment.
    failed_registry = FailedJobRegistry("relay-copy", connection=redis_server.client())
    wait_until(
        lambda: f"copy-{sid}-Calls-{day(3)}" in failed_registry.get_job_ids(),
        timeout=20,
        what="the copy task in RQ's FailedJobRegistry",
    )
    wait_until(
        lambda: 'relay_days_total{result="failed"} 1.0' in requests.get(f"{stack.url}/metrics", timeout=5).text,
        timeout=20,
        what="the failed day counted in /metrics",
    )

    sandbox.set_faults()
    r = stack.api("POST", f"/api/jobs/{sid}/requeue")
    assert r.status_code == 200 and r.json()["requeued"] == [day(3)]
    view = stack.wait_job(sid, states=("done",), timeout=120)
    assert_day_in_s3(s3, bucket, sandbox, view["days"][0], "Calls")


def test_permanent_s3_error_fails_the_day_without_retries(make_stack, sandbox):
    """A missing bucket will not fix itself by waiting: fail at once (visible), requeue after fixing it."""
    stack = make_stack(workers=1, S3_BUCKET="no-such-bucket-anywhere", COPY_RETRY_INTERVALS="30,30,30")
    sid = submit(stack, "Calls", 3, 3)
    view = stack.wait_job(sid, timeout=60)
    (failed,) = view["days"]
    assert view["state"] == "failed" and failed["attempts"] == 1
    assert "NoSuchBucket" in failed["error"]
    assert "manifest not written" in view["error"] and view["manifest_key"] is None
