"""What the bucket holds is what was verified, end to end (issue 19): a proxy between the relay and SeaweedFS
alters a day file right after the request that published it (PutObjectTagging after a multipart upload, as
``rclone serve s3`` does by itself; or the single PutObject). The day is never recorded as copied with the altered
object: the HeadObject after the write catches it (ERROR log, ``relay_store_anomalies_total``), the object is
deleted and the day's normal retry copies it again; if every attempt is altered, the day fails and ``day.failed``
is sent."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.procs import wait_until
from devstack.s3_server import S3Server
from tests.e2e.altering_proxy import AlteringProxy
from tests.event_receiver import EventReceiver

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"relay-e2e-store-anomaly-key-32by").decode()
# the operation the proxy alters after, and S3_SINGLE_PUT_MAX_MIB to take the path that sends it
PATHS = {"PutObjectTagging": "0", "PutObject": "16"}


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture
def s3(request: pytest.FixtureRequest, seaweed_s3: S3Server) -> Iterator[AlteringProxy]:
    operation, every_time = request.param
    with AlteringProxy(seaweed_s3, operation, every_time=every_time) as proxy:
        yield proxy


def submit_one_day(stack: Any) -> str:
    r = stack.api("POST", "/api/jobs", json={"resource_type": "Messages", "start_day": day(3), "end_day": day(3)})
    assert r.status_code == 201, r.text
    return str(r.json()["job_sid"])


@pytest.mark.parametrize("s3", [("PutObjectTagging", False), ("PutObject", False)], indirect=True, ids=str)
def test_an_object_altered_after_its_write_is_never_recorded_and_is_copied_again(
    make_stack: Any, sandbox: Any, s3: AlteringProxy, bucket: str
) -> None:
    sandbox.set_scenario(default_day_size=20000)
    stack = make_stack(workers=1, S3_SINGLE_PUT_MAX_MIB=PATHS[s3.operation], S3_OBJECT_TAGS="on")
    sid = submit_one_day(stack)
    view = stack.wait_job(sid)
    (d,) = view["days"]
    assert s3.altered == [f"{bucket}/{d['key']}"]  # the proxy did alter it, once
    expected = sandbox.expected_day("Messages", d["day"])
    body = s3.client().get_object(Bucket=bucket, Key=d["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == expected["sha256"] == d["sha256"]  # repaired, verified
    assert view["state"] == "done" and d["state"] == "copied" and d["attempts"] >= 2  # the first try not recorded
    worker_log = stack.procs["worker1"].tail(400)
    assert "not holding the verified object" in worker_log and s3.operation in worker_log and d["key"] in worker_log
    metrics = stack.api("GET", "/metrics").text
    assert f'relay_store_anomalies_total{{operation="{s3.operation}",reason="size"}} 1.0' in metrics


@pytest.mark.parametrize("s3", [("PutObjectTagging", True)], indirect=True, ids=str)
def test_a_day_altered_at_every_attempt_fails_loudly(
    make_stack: Any, sandbox: Any, s3: AlteringProxy, bucket: str
) -> None:
    sandbox.set_scenario(default_day_size=20000)
    with EventReceiver(SECRET) as receiver:
        stack = make_stack(
            workers=1,
            S3_SINGLE_PUT_MAX_MIB="0",
            S3_OBJECT_TAGS="on",
            COPY_RETRY_INTERVALS="1,1",
            NOTIFY_URL=receiver.url,
            NOTIFY_SECRET=SECRET,
        )
        sid = submit_one_day(stack)
        view = stack.wait_job(sid, timeout=120)
        (d,) = view["days"]
        assert view["state"] == "failed" and d["state"] == "failed" and d["sha256"] is None
        assert "changed after PutObjectTagging" in d["error"]
        assert s3.client().list_objects_v2(Bucket=bucket, Prefix="twilio/Messages/day=").get("KeyCount") == 0
        wait_until(lambda: receiver.of_type("day.failed"), timeout=60, what="day.failed")
    (event,) = receiver.of_type("day.failed")
    assert event["data"]["job_sid"] == sid
    assert (
        'relay_store_anomalies_total{operation="PutObjectTagging",reason="size"} 3.0'
        in stack.api("GET", "/metrics").text
    )
