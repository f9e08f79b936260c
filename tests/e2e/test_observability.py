"""Metrics aggregated across gunicorn workers, and JSON logs with ids but without any secret."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.jobs.marks import MarkStore
from devstack.procs import wait_until
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(
        rf"^{re.escape(name)}(\{{{re.escape(want)}\}})? ([0-9.e+-]+)$"
        if want
        else rf"^{re.escape(name)} ([0-9.e+-]+)$",
        re.M,
    )
    match = pattern.search(text)
    return float(match.groups()[-1]) if match else 0.0


def test_metrics_aggregate_across_gunicorn_workers(make_stack):
    stack = make_stack(workers=0)  # WEB_CONCURRENCY=2
    prom = Path(stack.env["PROMETHEUS_MULTIPROC_DIR"])
    url = f"{stack.url}/hooks/bulkexport?token={'z' * 43}"
    sent = 0

    def send_batch() -> bool:
        """Concurrent connections, so both gunicorn workers accept some; done once both have written metrics."""
        nonlocal sent
        with ThreadPoolExecutor(8) as pool:
            codes = list(
                pool.map(
                    lambda _: (
                        requests.post(
                            url, data={"status": "completed"}, timeout=5, headers={"Connection": "close"}
                        ).status_code
                    ),
                    range(16),
                )
            )
        assert set(codes) == {404}
        sent += len(codes)
        return len({f.stem.split("_")[-1] for f in prom.glob("counter_*.db")}) >= 2

    wait_until(send_batch, timeout=60, interval=0, what="deliveries served by both gunicorn workers")
    for _ in range(4):  # whichever worker answers the scrape, it reports the sum over all workers
        text = requests.get(f"{stack.url}/metrics", timeout=5, headers={"Connection": "close"}).text
        assert metric(text, "relay_webhooks_total", outcome="rejected_token") == sent


def test_logs_are_json_with_ids_and_no_secrets(make_stack, sandbox, s3, bucket, redis_server):
    # No poller until the job is done: then only the webhook can start its sync, so its delivery is the
    # "accepted" one whose full request is logged (a delivery racing a poller's sync is a DEBUG duplicate).
    stack = make_stack(workers=1)
    r = stack.api("POST", "/api/jobs", json={"resource_type": "Calls", "start_day": day(4), "end_day": day(3)})
    sid = r.json()["job_sid"]
    view = stack.wait_job(sid)
    assert view["state"] == "done"
    marks = MarkStore(redis_server.client(decode_responses=True))
    marks.forget_last_poll()
    stack.start_poller()  # its log is scanned too
    wait_until(marks.last_poll, timeout=30, what="the poller to poll")
    (remote,) = [j for j in sandbox.jobs() if j["job_sid"] == sid]
    token = parse_qs(urlsplit(remote["webhook_url"]).query)["token"][0]
    signatures = [w["headers"].get("X-Twilio-Signature") for w in sandbox.webhooks() if w.get("headers")]
    secrets = [
        sandbox.auth_token,
        ADMIN_TOKEN,
        token,
        stack.env["AWS_SECRET_ACCESS_KEY"],
        *[s for s in signatures if s],
    ]
    links = [d.get("path", "") for d in sandbox.downloads()]
    for proc in stack.procs.values():
        proc.stop()
    records = []
    for name in ("web", "worker1", "poller"):
        text = (Path(stack.log_dir) / f"{name}.log").read_text()
        for secret in secrets:
            assert secret not in text, f"a secret leaked into the {name} log"
        assert "X-Amz-Signature=" not in text or "X-Amz-Signature=[redacted]" in text
        for line in text.splitlines():
            if line.strip():
                records.append(json.loads(line))  # every line is JSON
    assert links  # the presigned links existed, and none is in the logs (checked via the signature param)
    with_sid = [r for r in records if r.get("job_sid") == sid]
    assert any(r["logger"] == "app.web.intake" for r in with_sid)  # webhook log line carries the job
    assert any(r.get("day") and r.get("task_id") for r in with_sid)  # copy lines carry day and task id
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    assert access and all("token" not in r["msg"] for r in access)
    assert all(json.loads(r["msg"]).get("request_id") for r in access)


def test_cluster_metrics_count_worker_activity(make_stack, sandbox):
    """Work done in the RQ worker processes shows up in any web replica's scrape (counters kept in Redis)."""
    sandbox.set_scenario(days={f"Calls/{day(4)}": {"outcome": "empty_404"}}, default_day_size=50_000)
    stack = make_stack(workers=1)
    sid = stack.api(
        "POST", "/api/jobs", json={"resource_type": "Calls", "start_day": day(5), "end_day": day(3)}
    ).json()["job_sid"]
    view = stack.wait_job(sid)
    assert view["state"] == "done"

    def scrape_once_job_counted() -> str:
        """The worker counts the job just after marking it done, so the first scrape may come between."""
        text = requests.get(f"{stack.url}/metrics", timeout=5).text
        return text if metric(text, "relay_jobs_total", event="done") >= 1 else ""

    text = str(wait_until(scrape_once_job_counted, timeout=20, what="relay_jobs_total{event=done} counted"))
    assert metric(text, "relay_days_total", result="copied") == 2
    assert metric(text, "relay_days_total", result="empty") == 1
    assert metric(text, "relay_copy_bytes_total") == sum(d["size"] or 0 for d in view["days"])
    assert metric(text, "relay_copy_duration_seconds_count") == 2
    assert metric(text, "relay_jobs_total", event="done") == 1
    assert metric(text, "relay_twilio_api_calls_total", op="fetch_job", status="ok") >= 1
    assert metric(text, "relay_twilio_api_calls_total", op="create_job", status="ok") == 1
    assert metric(text, "relay_workers") == 1
    assert metric(text, "relay_queue_depth", queue="relay-copy") == 0
