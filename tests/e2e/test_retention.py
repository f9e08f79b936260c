"""Retention and deliberate deletions end to end (issue 22), against real gunicorn, rq workers, the RQ cron
poller, Redis, SeaweedFS and the Twilio sandbox, calendars moved in step: a day deleted through the API is erased
by a worker and never fetched again (no custom job asks for it, no quota is spent on it) while a day that vanished
from S3 without a tombstone comes back; REFETCH_VANISHED=never leaves it missing; a restore brings a deleted day
back; a feed with retain_days never asks for its older days; ``relay delete-day`` / ``restore-day`` /
``lifecycle-rule`` work in-process and remote."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from devstack.procs import wait_until
from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_continuous_sync import RT, coverage_of, days_back, feed_env, states_by_day, submitted_days

pytestmark = pytest.mark.e2e


def key_of(day: str) -> str:
    return f"twilio/{RT}/day={day}/{RT}-{day}.json.gz"


def held(s3: Any, bucket: str, day: str) -> bool:
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=key_of(day))
    return bool(listed.get("KeyCount"))


def state(stack: Any, day: str) -> str | None:
    return states_by_day(coverage_of(stack)).get(day)


def test_a_deleted_day_stays_deleted_while_a_vanished_one_comes_back(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    env = feed_env(calendar, SYNC_FEEDS=f"{RT}:{days_back(5, 5)[0]}", RECONCILE_INTERVAL_HOURS="1")
    stack = make_stack(workers=1, poller=True, **env)
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 4, timeout=60, what="the feed's four days")
    deleted, vanished = days_back(4, 4)[0], days_back(3, 3)[0]
    used_before = sum(sandbox.quota_usage().values())
    r = stack.api("DELETE", f"/api/days/{RT}/{deleted}", json={"reason": "owner's request"})
    assert r.status_code == 202 and r.json()["state"] == "deleted", r.text
    assert state(stack, deleted) == "deleted"  # at once, before the worker erased it
    wait_until(lambda: not held(s3, bucket, deleted), timeout=30, what="the worker erasing the deleted day")
    s3.client().delete_object(Bucket=bucket, Key=key_of(vanished))  # gone without a tombstone
    calendar.advance_seconds(2 * 3600)  # the reconcile is due again (same UTC day)
    wait_until(lambda: state(stack, vanished) != "copied", timeout=30, what="the vanished day seen")
    wait_until(lambda: state(stack, vanished) == "copied", timeout=60, what="the vanished day back")
    calendar.advance_seconds(2 * 3600)  # and one more reconcile, sweep and plan
    wait_until(
        lambda: (stack.api("GET", "/api/coverage").json()["feeds"][0]["last_reconciled_at"] or 0) > 0,
        timeout=30,
        what="a reconcile after the move",
    )
    assert state(stack, deleted) == "deleted" and not held(s3, bucket, deleted)
    assert submitted_days(sandbox).count(deleted) == 1  # never asked for again
    assert sum(sandbox.quota_usage().values()) - used_before <= 1  # at most the vanished day's export
    assert "vanished from S3 without a tombstone" in stack.logs()
    r = stack.api("POST", f"/api/days/{RT}/{deleted}/restore")
    assert r.status_code == 200, r.text
    wait_until(lambda: state(stack, deleted) == "copied", timeout=60, what="the restored day copied again")


def test_refetch_vanished_never_leaves_a_vanished_day_missing(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    env = feed_env(
        calendar, SYNC_FEEDS=f"{RT}:{days_back(4, 4)[0]}", RECONCILE_INTERVAL_HOURS="1", REFETCH_VANISHED="never"
    )
    stack = make_stack(workers=1, poller=True, **env)
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 3, timeout=60, what="the feed's three days")
    gone = days_back(3, 3)[0]
    s3.client().delete_object(Bucket=bucket, Key=key_of(gone))
    calendar.advance_seconds(2 * 3600)
    wait_until(lambda: state(stack, gone) == "missing", timeout=30, what="the vanished day missing")
    calendar.advance_seconds(2 * 3600)
    wait_until(lambda: "left missing, not fetched again" in stack.logs(), timeout=30, what="the reconcile's word")
    assert state(stack, gone) == "missing" and not held(s3, bucket, gone)
    assert submitted_days(sandbox).count(gone) == 1


def test_a_feed_with_retain_days_never_asks_for_older_days(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    since = days_back(10, 10)[0]
    stack = make_stack(workers=1, poller=True, **feed_env(calendar, SYNC_FEEDS=f"{RT}:{since}::4"))
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 3, timeout=60, what="the kept days")
    feed = coverage_of(stack)
    assert feed["retain_days"] == 4 and feed["counts"]["expired"] == 6
    assert sorted(submitted_days(sandbox)) == days_back(4, 2)
    rules = stack.api("GET", "/api/lifecycle-rule").json()["lifecycle_configuration"]["Rules"]
    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules] == [(f"twilio/{RT}/day=", 4)]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "app.cli.main", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_cli_deletes_restores_and_prints_the_rule_both_ways(make_stack, s3, bucket):
    stack = make_stack(workers=1)
    bare = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    local_env = {**bare, **{k: v for k, v in stack.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}}
    remote = ["--url", stack.url, "--token", ADMIN_TOKEN]
    day = days_back(6, 6)[0]
    s3.client().put_object(Bucket=bucket, Key=key_of(day), Body=b"x")
    r = run(local_env, "delete-day", RT, day, "--reason", "test", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["deleted_by"] == "cli"
    wait_until(lambda: not held(s3, bucket, day), timeout=30, what="the worker erasing it")
    r = run(bare, *remote, "restore-day", RT, day)
    assert r.returncode == 0 and "restored" in r.stdout, r.stderr
    r = run(bare, *remote, "delete-day", RT, day, "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["deleted_by"] == "cli", r.stderr
    assert run(local_env, "restore-day", RT, day).returncode == 0
    assert run(local_env, "restore-day", RT, day).returncode != 0  # not deleted any more
    stack.api("PUT", f"/api/feeds/{RT}", json={"since": day, "retain_days": 30})
    mine, theirs = run(local_env, "lifecycle-rule"), run(bare, *remote, "lifecycle-rule")
    assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
    assert json.loads(mine.stdout) == json.loads(theirs.stdout)
    assert json.loads(mine.stdout)["Rules"][0]["Expiration"] == {"Days": 30}
