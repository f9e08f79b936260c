"""A worker SIGKILLed mid-copy: the day still lands byte-exact, nothing partial is ever visible, and the janitor
leaves no stale multipart upload or staging object behind.

Recovery uses RQ's own abandoned-job handling: the killed worker stops heart-beating, its StartedJobRegistry
entry expires (job monitoring interval + 60 s, an RQ constant), a live worker's maintenance pass retries the job.
That floor makes this the slowest test of the suite (~1-2 minutes).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from devstack.procs import wait_until
from workers.sink import S3Sink, SinkSettings

pytestmark = pytest.mark.e2e


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def test_sigkill_mid_copy(make_stack, sandbox, s3, bucket):
    the_day = day(3)
    key = f"twilio/Calls/day={the_day}/Calls-{the_day}.json.gz"
    sandbox.set_scenario(default_day_size=12 * 1024 * 1024)
    stack = make_stack(workers=1, poller=True, RQ_JOB_MONITORING_INTERVAL="2", RQ_MAINTENANCE_INTERVAL="5")
    # Slow the first download down so there is time to kill the worker in the middle of it.
    sandbox.set_faults(files={"chunk_delay_ms": 100})
    r = stack.api("POST", "/api/jobs", json={"resource_type": "Calls", "start_day": the_day, "end_day": the_day})
    sid = r.json()["job_sid"]

    def copying() -> bool:
        return any(d["status"] == 200 and not d.get("finished_at") for d in sandbox.downloads())

    wait_until(copying, timeout=60, what="a download to be in flight")
    stack.procs["worker1"].kill()  # SIGKILL the worker (it runs the copy itself)
    client = s3.client()
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="twilio/Calls/")  # nothing partial
    sandbox.set_faults()  # the retry downloads at full speed
    stack.start_worker("worker2")
    view = stack.wait_job(sid, timeout=240)
    assert view["state"] == "done", view
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sandbox.expected_day("Calls", the_day)["sha256"]
    assert s3.writes(bucket, key) == 1
    # The janitor (same code the cron task runs) clears what the killed worker left behind.
    S3Sink(client, SinkSettings(bucket=bucket, prefix="twilio/")).abort_stale_uploads(timedelta(0))
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix="twilio/_staging/")
