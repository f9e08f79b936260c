"""Webhook attacks from issue 12 against the real gunicorn and rq worker (Procfile), Redis and the sandbox.

- An unsigned flood carrying a job's token (read from a load balancer log) queues at most one sync a minute.
- ``WEBHOOK_SIGNATURE=auto`` (the default): unsigned deliveries are refused once a signed one has been seen.
- Nothing of the request is parsed before the token is known: a 1,000-field form with an unknown token is a 404
  (the same form with a known token hits the webhook's field cap: 413).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from twilio.request_validator import RequestValidator

from devstack.procs import wait_until

pytestmark = pytest.mark.e2e


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def submit_job(stack, sandbox) -> tuple[str, str]:
    """A job whose real webhook never comes (dropped), so every delivery here is ours; its sid and hook URL."""
    sandbox.update_scenario(webhook={"drop": True}, step_seconds=0.05)
    r = stack.api("POST", "/api/jobs", json={"resource_type": "Calls", "start_day": day(3), "end_day": day(3)})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    hook = sandbox.job(sid)["webhook_url"]
    return sid, stack.url + "/hooks/bulkexport?" + urlsplit(hook).query


def fetches(sandbox, sid: str) -> int:
    return sum(1 for r in sandbox.requests() if r["path"].endswith(f"/Jobs/{sid}") and r["method"] == "GET")


def webhook_outcomes(stack) -> dict[str, float]:
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    prefix = 'relay_webhooks_total{outcome="'
    return {
        line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(prefix)
    }


def test_an_unsigned_flood_queues_at_most_one_sync(make_stack, sandbox, redis_server):
    stack = make_stack(workers=1, WEBHOOK_SIGNATURE="if-present")
    sid, hook = submit_job(stack, sandbox)
    assert [requests.post(hook, data={"status": "completed"}, timeout=10).status_code for _ in range(20)] == [204] * 20
    wait_until(lambda: fetches(sandbox, sid) >= 1, timeout=30, what="the one sync")
    sync_task = f"rq:job:sync-{sid}"
    wait_until(lambda: not redis_server.client().exists(sync_task), timeout=30, what="that sync to end")
    # The sync has ended: deliveries in the same minute are throttled, not queued (the poller takes the job when
    # the limit ends).
    assert [requests.get(hook, timeout=10).status_code for _ in range(10)] == [204] * 10
    wait_until(lambda: stack.api("GET", f"/api/jobs/{sid}").json()["webhooks_received"] == 30, what="30 counted")
    outcomes = webhook_outcomes(stack)
    assert outcomes["accepted"] == 1 and outcomes.get("duplicate", 0) + outcomes["throttled"] == 29, outcomes
    assert outcomes["throttled"] >= 10
    assert fetches(sandbox, sid) == 1  # one FetchJob at Twilio for 30 deliveries


def test_auto_policy_refuses_unsigned_deliveries_once_a_signed_one_was_seen(make_stack, sandbox):
    stack = make_stack(workers=1)  # WEBHOOK_SIGNATURE defaults to auto
    _, hook = submit_job(stack, sandbox)
    assert requests.get(hook, timeout=10).status_code == 204  # nothing signed seen yet: accepted
    public = stack.env["PUBLIC_BASE_URL"] + "/hooks/bulkexport?" + urlsplit(hook).query
    signature = RequestValidator(sandbox.auth_token).compute_signature(public, {"status": "completed"})
    signed = requests.post(hook, data={"status": "completed"}, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert signed.status_code == 204
    assert requests.get(hook, timeout=10).status_code == 403  # from now on an unsigned one is refused
    health = requests.get(f"{stack.url}/health", timeout=10).json()
    (policy,) = health["checks"]["webhooks:signaturePolicy"]
    assert policy["observedValue"] == "auto" and policy["output"].startswith("unsigned deliveries refused")


def test_nothing_is_parsed_before_the_token_is_known(make_stack, sandbox):
    stack = make_stack(workers=0, WEBHOOK_SIGNATURE="if-present")
    _, hook = submit_job(stack, sandbox)
    form = {f"f{i}": "x" for i in range(1000)}
    token = parse_qs(urlsplit(hook).query)["token"][0]
    unknown = hook.replace(token, "u" * len(token))
    assert requests.post(unknown, data=form, timeout=10).status_code == 404
    assert requests.post(hook, data=form, timeout=10).status_code == 413  # the known token meets the field cap
