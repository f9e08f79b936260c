"""Redis loses the registry in the middle of a multi-day job (FLUSHALL, or a restart without persistence): the
poller notices (its marker is gone, the bucket's copy is not), rebuilds the job from Twilio's job list and
finishes it; every day ends in S3 exactly once and no day already in S3 is downloaded again."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest
import requests
from twilio.request_validator import RequestValidator

from app.jobs.marks import MarkStore
from devstack.procs import wait_until
from tests.chaos.conftest import Supervisor, assert_days_exact, data_key, day

pytestmark = pytest.mark.chaos

RT = "Messages"
DAYS = 10


def lose_registry(how: str, redis_server) -> None:
    if how == "flushall":
        redis_server.client().flushall()
        return
    redis_server.stop()  # and its data with it, as a Redis without persistence would
    for path in redis_server.workdir.glob("appendonly*"):  # appendonly.aof, or Redis 7's appendonlydir/
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in redis_server.workdir.glob("*.rdb"):
        path.unlink()
    redis_server.start()


def finished(stack, sid: str) -> dict | None:
    r = stack.api("GET", f"/api/jobs/{sid}")
    return r.json() if r.status_code == 200 and r.json()["state"] == "done" else None


@pytest.mark.parametrize("how", ["flushall", "restart_empty"])
def test_a_lost_registry_is_rebuilt_and_nothing_is_copied_twice(how, chaos_stack, sandbox, s3, bucket, redis_server):
    sandbox.update_scenario(step_seconds=0.4, days_per_step=2, default_day_size=200_000)
    stack = chaos_stack(workers=1, poller=True)
    client = s3.client()
    wait_until(lambda: client.list_objects_v2(Bucket=bucket, Prefix="twilio/_relay/").get("KeyCount"), what="marker")
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": day(DAYS + 1), "end_day": day(2)})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]

    def copied() -> list[str]:
        view = stack.api("GET", f"/api/jobs/{sid}").json()
        return [d["day"] for d in view.get("days", []) if d["state"] == "copied"]

    before = wait_until(lambda: (c := copied()) and 3 <= len(c) < DAYS and c, timeout=60, what="some days copied")
    with Supervisor(stack):  # a worker or poller that gives up while Redis is away is restarted, as in production
        lose_registry(how, redis_server)
        view = wait_until(lambda: finished(stack, sid), timeout=120, what="the job rebuilt from Twilio and finished")
    assert_days_exact(client, bucket, sandbox, RT, view)
    writes = s3.writes_by_key(bucket)
    assert all(writes.get(data_key(RT, d["day"])) == 1 for d in view["days"]), writes
    downloads = Counter(d["day"] for d in sandbox.downloads() if d["status"] == 200 and d.get("completed"))
    assert all(downloads[d] == 1 for d in before), downloads  # nothing already in S3 fetched again
    assert (
        MarkStore(redis_server.client(decode_responses=True)).marker().get("recovered_at")
    )  # rebuilt, not started afresh
    assert requests.get(f"{stack.url}/readyz", timeout=10).status_code == 200


def _delivery(hook_url: str, auth_token: str | None) -> int:
    """One completion webhook for the job behind ``hook_url``, signed with ``auth_token`` or unsigned (None)."""
    params = {"status": "completed"}
    headers = {}
    if auth_token:
        headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(hook_url, params)
    return requests.post(hook_url, data=params, headers=headers, timeout=10).status_code


def test_a_lost_registry_still_refuses_unsigned_webhooks_once_a_signed_one_was_seen(
    chaos_stack, sandbox, s3, bucket, redis_server
):
    """Issue 20: WEBHOOK_SIGNATURE=auto refuses unsigned deliveries once a signed one has been seen. That fact lived
    only in Redis, so after a lost registry the rebuilt jobs' tokens took unsigned deliveries again (anyone who
    read a webhook URL in a log could trigger syncs). It is now kept in the bucket's marker and restored."""
    sandbox.set_scenario(webhook={"drop": True})  # the only deliveries are the test's own
    stack = chaos_stack(workers=1, poller=True)
    client = s3.client()
    marker_key = "twilio/_relay/registry.json"

    def bucket_marker() -> dict:
        return json.loads(client.get_object(Bucket=bucket, Key=marker_key)["Body"].read())

    wait_until(bucket_marker, what="the registry marker in the bucket")
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": day(3), "end_day": day(3)})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    hook_url = sandbox.job(sid)["webhook_url"]
    assert _delivery(hook_url, None) == 204  # auto: unsigned accepted until a signed delivery is seen
    assert _delivery(hook_url, sandbox.auth_token) == 204
    assert _delivery(hook_url, None) == 403
    wait_until(lambda: bucket_marker().get("signed_webhook_seen_at"), what="the fact copied into the bucket")

    with Supervisor(stack):
        lose_registry("flushall", redis_server)
        wait_until(lambda: stack.api("GET", f"/api/jobs/{sid}").status_code == 200, timeout=60, what="recovery")
    assert _delivery(hook_url, None) == 403  # before the fix: 204, the rebuilt token took it
    assert _delivery(hook_url, sandbox.auth_token) == 204
