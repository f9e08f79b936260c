"""The bucket re-checked, not just listed (app/bucket/check.py), end to end: real gunicorn, rq workers and poller,
Redis, SeaweedFS and the Twilio sandbox, with the sandbox's calendar and the relay's moved in step.

- An object replaced after its copy (what rclone's PutObjectTagging did: the body became the tagging XML) is found
  by the next reconciliation, counted, and copied again from the file Twilio still lists: no new export.
- ``relay verify`` has a worker re-read the objects: a same-size tampered object (only its sha256 tells), a
  truncated one and a vanished one are reported, shown as corrupt / missing in coverage and the console
  calendar, and ``--repair`` has the workers copy them again; a second ``relay verify`` finds nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.platform.config import load_settings
from devstack.procs import wait_until
from tests.browser.pages import console_session
from tests.e2e.test_continuous_sync import RT, coverage_of, days_back, feed_env, states_by_day, submitted_days

pytestmark = pytest.mark.e2e


def key_of(day: str) -> str:
    return f"twilio/{RT}/day={day}/{RT}-{day}.json.gz"


def object_sha256(s3: Any, bucket: str, day: str) -> str:
    return hashlib.sha256(s3.client().get_object(Bucket=bucket, Key=key_of(day))["Body"].read()).hexdigest()


def problems_counted(stack: Any) -> dict[tuple[str, str], float]:
    text = requests.get(f"{stack.url}/metrics", timeout=10).text
    return {
        (s.labels["check"], s.labels["state"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "relay_bucket_problems_total"
    }


def relay_cli(stack: Any) -> Any:
    """``flask relay ...`` in this process, with the stack's settings (as an operator runs it in a container);
    ``relay verify`` queues its task for the stack's workers and waits for the report."""
    runner = create_app(load_settings(stack.env)).test_cli_runner()

    def run(*args: str) -> Any:
        return runner.invoke(args=["relay", *args])

    return run


def test_an_object_replaced_after_its_copy_is_found_corrupt_and_copied_again(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    env = feed_env(calendar, SYNC_FEEDS=f"{RT}:{days_back(4, 4)[0]}", RECONCILE_INTERVAL_HOURS="1")
    stack = make_stack(workers=1, poller=True, **env)
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 3, timeout=60, what="the feed's three days")
    hit = days_back(3, 3)[0]
    tagging_xml = b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet></TagSet></Tagging>'
    s3.client().put_object(Bucket=bucket, Key=key_of(hit), Body=tagging_xml)

    calendar.advance_seconds(2 * 3600)  # the reconciliation is due again (same UTC day)
    wait_until(lambda: problems_counted(stack).get(("reconcile", "corrupt")) == 1, timeout=60, what="the change seen")
    expected = sandbox.expected_day(RT, hit)["sha256"]
    wait_until(lambda: object_sha256(s3, bucket, hit) == expected, timeout=60, what="the day copied again")
    wait_until(lambda: states_by_day(coverage_of(stack)).get(hit) == "copied", timeout=30, what="the day copied")
    assert submitted_days(sandbox).count(hit) == 1  # copied again from Twilio's listed file: no new export


def test_relay_verify_finds_what_a_listing_cannot_and_repair_copies_it_again(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    stack = make_stack(workers=1, poller=True, **feed_env(calendar, SYNC_FEEDS=f"{RT}:{days_back(5, 5)[0]}"))
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 4, timeout=60, what="the feed's four days")
    stack.procs["poller"].stop()  # from here on only `relay verify --repair` may bring days back
    tampered, truncated, vanished, intact = days_back(5, 2)
    client = s3.client()
    original = client.get_object(Bucket=bucket, Key=key_of(tampered))
    body = bytearray(original["Body"].read())
    body[4] ^= 0x01  # the gzip header's MTIME: same size, still intact gzip, same records; only the sha256 tells
    # (and metadata and tags kept, so the copy's "already stored?" check would take it for the file)
    tags = client.get_object_tagging(Bucket=bucket, Key=key_of(tampered))["TagSet"]
    tagging = "&".join(f"{t['Key']}={t['Value']}" for t in tags)
    client.put_object(
        Bucket=bucket, Key=key_of(tampered), Body=bytes(body), Metadata=original["Metadata"], Tagging=tagging
    )
    cut = client.get_object(Bucket=bucket, Key=key_of(truncated))["Body"].read()
    client.put_object(Bucket=bucket, Key=key_of(truncated), Body=cut[: len(cut) // 2])

    relay = relay_cli(stack)
    r = relay("verify", "--feed", RT)
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    assert any(line.startswith(f"CORRUPT    {RT} {tampered}") and "sha256" in line for line in lines), r.output
    assert any(line.startswith(f"CORRUPT    {RT} {truncated}") and "truncated" in line for line in lines), r.output
    assert lines[-1] == "verified 4 copied day(s): 2 corrupt, 2 ok; 2 problem day(s)"
    states = states_by_day(coverage_of(stack))
    assert [states[d] for d in (tampered, truncated, vanished, intact)] == ["corrupt", "corrupt", "copied", "copied"]

    # The console calendar shows the state, its letter and its legend entry, and the day's detail says why.
    http, _ = console_session(stack.url)
    page = http.get(f"{stack.url}/console/feeds/{RT}/calendar?day={tampered}", timeout=10).text
    assert f'id="d-{tampered}" data-day="{tampered}" data-state="corrupt"' in page
    assert 'class="day s-corrupt" aria-hidden="true"><span class="l">X</span></span> corrupt (the bucket&#39;s' in page
    assert "sha256 " in page and f"Retry {tampered}" in page

    client.delete_object(Bucket=bucket, Key=key_of(vanished))
    r = relay("verify", "--feed", RT, "--repair", "--json")
    assert r.exit_code == 1, r.output
    problems = json.loads(r.output)["problems"]
    found = {tampered: "corrupt", truncated: "corrupt", vanished: "missing"}
    assert {p["day"]: p["outcome"] for p in problems} == found
    repairs = {p["day"]: p["repair"] for p in problems}
    assert all(text.startswith("copy queued: job JD") for text in repairs.values()), repairs
    for day in (tampered, truncated, vanished):
        expected = sandbox.expected_day(RT, day)["sha256"]
        wait_until(lambda d=day, e=expected: object_sha256(s3, bucket, d) == e, timeout=60, what=f"{day} repaired")
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 4, timeout=30, what="every day copied")
    r = relay("verify", "--feed", RT)
    assert r.exit_code == 0 and r.output.strip() == "verified 4 copied day(s): 4 ok; no problem found", r.output
    assert all(submitted_days(sandbox).count(d) == 1 for d in days_back(5, 2))  # no new export: no quota
    assert problems_counted(stack) == {("verify", "corrupt"): 2, ("verify", "missing"): 1}  # each found once
