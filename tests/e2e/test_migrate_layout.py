"""``relay migrate-layout`` end to end: real gunicorn, an rq worker and the poller, Redis, SeaweedFS and the Twilio
sandbox. Days copied under the default key template are moved by the worker (the CLI queues the task and waits
for its report) to an account-partitioned template, the old objects deleted once the copies are verified and
recorded; then a stack started with that S3_KEY_TEMPLATE reconciles every day as copied (none missing or
corrupt) and exports nothing again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from devstack.procs import wait_until
from tests.e2e.test_bucket_checks import key_of, relay_cli
from tests.e2e.test_continuous_sync import RT, coverage_of, days_back, feed_env, submitted_days

pytestmark = pytest.mark.e2e

NEW = "{prefix}{resource_type}/account={account_sid}/day={day}/{resource_type}-{day}.json.gz"


def day_keys(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", []) if "/day=" in o["Key"]}


def test_days_moved_to_a_new_layout_stay_copied_after_the_switch(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    env = feed_env(calendar, SYNC_FEEDS=f"{RT}:{days_back(4, 4)[0]}", RECONCILE_INTERVAL_HOURS="1")
    stack = make_stack(workers=1, poller=True, **env)
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 3, timeout=60, what="the feed's three days")
    days = days_back(4, 2)
    old = {key_of(d) for d in days}
    assert day_keys(s3, bucket) == old
    relay = relay_cli(stack)

    r = relay("migrate-layout", "--to", NEW, "--dry-run")
    assert r.exit_code == 0, r.output
    assert [line.split()[0] for line in r.output.splitlines()[:-1]] == ["PLANNED"] * 3
    assert f"{key_of(days[0])} -> " in r.output and day_keys(s3, bucket) == old  # nothing changed

    r = relay("migrate-layout", "--to", "{prefix}{resource_type}.json.gz")
    assert r.exit_code != 0 and "must contain {resource_type} and {day}" in r.output

    r = relay("migrate-layout", "--to", NEW, "--delete-old", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["counts"] == {"moved": 3} and doc["deleted_old"] == 3 and doc["problems"] == []
    new = {m["day"]: m["new_key"] for m in doc["moves"]}
    assert day_keys(s3, bucket) == set(new.values())  # the old objects deleted, the copies there
    for d, key in new.items():
        body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sandbox.expected_day(RT, d)["sha256"]

    r = relay("migrate-layout", "--to", NEW, "--json")  # again: nothing to do
    assert r.exit_code == 0 and json.loads(r.output)["counts"] == {"done": 3}, r.output

    exported = sorted(submitted_days(sandbox))
    stack.stop()
    switched = make_stack(workers=1, poller=True, **env, S3_KEY_TEMPLATE=NEW)
    before = coverage_of(switched)["last_reconciled_at"]
    calendar.advance_seconds(2 * 3600)  # the reconciliation is due again (same UTC day)
    wait_until(lambda: coverage_of(switched)["last_reconciled_at"] != before, timeout=60, what="a reconciliation")
    feed = coverage_of(switched)
    assert feed["counts"]["copied"] == 3 and feed["counts"].get("missing", 0) == feed["counts"].get("corrupt", 0) == 0
    assert sorted(submitted_days(sandbox)) == exported  # nothing exported again
    assert day_keys(s3, bucket) == set(new.values())
