"""Continuous sync end to end: feeds kept complete by the poller alone, against real gunicorn, rq workers, the
RQ cron poller, Redis, SeaweedFS and the Twilio sandbox, with the sandbox's calendar and the relay's moved in step.

The relay reads "now" from ``app.platform.clock``; ``RELAY_CLOCK_OFFSET_FILE`` holds the seconds to add, written here
after every move of the sandbox clock, so both agree on "today" (the quota day, the newest exportable day).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

from devstack.calendar import Calendar
from devstack.procs import wait_until
from devstack.relay import start_process
from tests.conftest import SIM_TODAY

pytestmark = pytest.mark.e2e

T0 = SIM_TODAY  # the simulated "today" (the calendar fixture sets it)
RT = "Messages"


def feed_env(calendar: Calendar, **extra: str) -> dict[str, str]:
    return {"RELAY_CLOCK_OFFSET_FILE": str(calendar.offset_file), "POLL_INTERVAL_SECONDS": "1", **extra}


def days_back(first: int, last: int) -> list[str]:
    """ISO days T0-first .. T0-last (first >= last), oldest first."""
    return [(T0 - timedelta(days=n)).isoformat() for n in range(first, last - 1, -1)]


def exportable_since(first: str, calendar: Calendar) -> list[str]:
    """Every day from ``first`` to the newest a custom job can ask for now (today-2)."""
    day, last, out = date.fromisoformat(first), calendar.today - timedelta(days=2), []
    while day <= last:
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def coverage_of(stack: Any, rt: str = RT) -> dict[str, Any]:
    doc = stack.api("GET", f"/api/coverage?resource_type={rt}").json()
    return doc["feeds"][0]


def states_by_day(feed: dict[str, Any]) -> dict[str, str]:
    out = {}
    for state, ranges in feed["ranges"].items():
        for first, last in ranges:
            day = date.fromisoformat(first)
            while day <= date.fromisoformat(last):
                out[day.isoformat()] = state
                day += timedelta(days=1)
    return out


def assert_in_s3_exactly_once(s3: Any, bucket: str, sandbox: Any, days: list[str], rt: str = RT) -> None:
    client = s3.client()
    writes = s3.writes_by_key(bucket)
    for day in days:
        key = f"twilio/{rt}/day={day}/{rt}-{day}.json.gz"
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sandbox.expected_day(rt, day)["sha256"], day
        assert writes.get(key) == 1, f"{key} written {writes.get(key)} times"


def submitted_days(sandbox: Any, rt: str = RT) -> list[str]:
    """Every day asked for in a custom job at the sandbox (a day twice means it was exported twice)."""
    out: list[str] = []
    for job in sandbox.jobs():
        if job["resource_type"] == rt:
            first, last = date.fromisoformat(job["start_day"]), date.fromisoformat(job["end_day"])
            out += [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    return out


def catch_up(stack: Any, calendar: Calendar, sandbox: Any, quota: int, max_days: int) -> Callable[[], None]:
    """Let each simulated day's quota be spent and its jobs copied, then move to the next day, until nothing is
    missing; returns the coverage sampler used along the way (for state-transition checks)."""
    seen: dict[str, list[str]] = {}

    def sample() -> dict[str, Any]:
        feed = coverage_of(stack)
        for day, state in states_by_day(feed).items():
            if not seen.get(day) or seen[day][-1] != state:
                seen.setdefault(day, []).append(state)
        return feed

    def day_settled() -> bool:
        feed = sample()
        used = sandbox.quota_usage().get(calendar.today.isoformat(), 0)
        return not feed["counts"]["in_flight"] and (used >= quota or not feed["counts"]["missing"])

    for _ in range(max_days):
        wait_until(day_settled, timeout=90, interval=0.3, what=f"{calendar.today}'s quota spent and copied")
        if not sample()["counts"]["missing"]:
            break
        calendar.advance_days(1)
    return lambda: seen  # type: ignore[return-value]


def test_a_forty_day_backfill_within_a_fifteen_day_quota(make_stack, calendar, sandbox, s3, bucket):
    # Twilio takes 3 steps of 0.5 s for a 15-day job, so a day stays in flight long enough to be seen so.
    sandbox.update_scenario(daily_quota_days=15, step_seconds=0.5, days_per_step=5)
    stack = make_stack(workers=2, poller=True, **feed_env(calendar, TWILIO_DAILY_DAY_QUOTA="15"))
    first = days_back(41, 41)[0]  # 40 days: T0-41 .. T0-2
    r = stack.api("PUT", f"/api/feeds/{RT}", json={"since": first})
    assert r.status_code == 200, r.text
    seen = catch_up(stack, calendar, sandbox, quota=15, max_days=6)()
    every_day = exportable_since(first, calendar)
    assert states_by_day(coverage_of(stack)) == dict.fromkeys(every_day, "copied")
    assert_in_s3_exactly_once(s3, bucket, sandbox, every_day)
    assert all(used <= 15 for used in sandbox.quota_usage().values()), sandbox.quota_usage()
    assert sorted(submitted_days(sandbox)) == every_day  # every day asked for once, none twice
    first_job = min(sandbox.jobs(), key=lambda j: j["created_at"])
    assert first_job["end_day"] == (T0 - timedelta(days=2)).isoformat()  # newest days first
    assert seen[first][:3] == ["missing", "in_flight", "copied"]


def test_a_new_day_is_copied_when_today_moves_on(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    stack = make_stack(workers=1, poller=True, **feed_env(calendar, SYNC_FEEDS=f"{RT}:{days_back(3, 3)[0]}"))
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 2, timeout=60, what="the feed's two days")
    calendar.advance_days(1)
    new_day = (T0 - timedelta(days=1)).isoformat()
    wait_until(lambda: states_by_day(coverage_of(stack)).get(new_day) == "copied", timeout=60, what="the new day")
    assert_in_s3_exactly_once(s3, bucket, sandbox, days_back(3, 1))
    assert coverage_of(stack)["managed_by"] == "env"


def test_daily_exports_arrive_without_custom_jobs_even_when_webhooks_are_lost(
    make_stack, calendar, sandbox, s3, bucket
):
    dropped = (T0 + timedelta(days=1)).isoformat()
    sandbox.update_scenario(editions=True, daily_webhook={"drop_days": [dropped]})
    env = feed_env(calendar, DAILY_EXPORT_GRACE_HOURS="72", SWEEP_INTERVAL_SECONDS="2")
    stack = make_stack(workers=1, poller=True, **env)
    r = stack.api("PUT", f"/api/daily/{RT}", json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] and r.json()["webhook"] == "relay", r.text
    calendar.advance_days(3)  # Twilio makes T0, T0+1 (webhook lost) and T0+2 by itself
    made = [(T0 + timedelta(days=i)).isoformat() for i in range(3)]
    assert [e["day"] for e in sandbox.daily_exports()] == made
    r = stack.api("PUT", f"/api/feeds/{RT}", json={"since": made[0]})
    assert r.status_code == 200, r.text
    wait_until(
        lambda: all(states_by_day(coverage_of(stack)).get(d) == "copied" for d in made),
        timeout=60,
        what="every daily export copied",
    )
    assert_in_s3_exactly_once(s3, bucket, sandbox, made)
    assert sandbox.jobs() == [] and sum(sandbox.quota_usage().values()) == 0  # no custom job, no quota
    hooks = [d for d in sandbox.webhooks() if d["kind"] == "daily" and not d["dropped"]]
    assert {d["day"] for d in hooks} == set(made) - {dropped}


def test_a_day_deleted_from_s3_comes_back_after_the_next_reconciliation(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    env = feed_env(calendar, SYNC_FEEDS=f"{RT}:{days_back(5, 5)[0]}", RECONCILE_INTERVAL_HOURS="1")
    stack = make_stack(workers=1, poller=True, **env)
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 4, timeout=60, what="the feed's four days")
    gone = days_back(4, 4)[0]
    s3.client().delete_object(Bucket=bucket, Key=f"twilio/{RT}/day={gone}/{RT}-{gone}.json.gz")
    calendar.advance_seconds(2 * 3600)  # the reconcile is due again (same UTC day)
    wait_until(lambda: states_by_day(coverage_of(stack)).get(gone) != "copied", timeout=30, what="the loss seen")
    wait_until(lambda: states_by_day(coverage_of(stack)).get(gone) == "copied", timeout=60, what="the day back")
    body = s3.client().get_object(Bucket=bucket, Key=f"twilio/{RT}/day={gone}/{RT}-{gone}.json.gz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sandbox.expected_day(RT, gone)["sha256"]
    # Brought back by a new export, or by the sweep finding Twilio's file of the first export still listed (no
    # quota spent): whichever comes first after the reconcile task; never asked for twice more.
    assert submitted_days(sandbox).count(gone) in (1, 2)


def test_two_pollers_never_submit_a_day_twice(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    stack = make_stack(workers=2, poller=True, **feed_env(calendar, SYNC_FEEDS=f"{RT}:{days_back(31, 31)[0]}"))
    stack.procs["poller2"] = start_process("poller", stack.env, stack.log_dir, name="poller2")
    started = time.monotonic()
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 30, timeout=90, what="the 30 days")

    def a_minute_passed_without_a_day_asked_twice() -> bool:
        days = submitted_days(sandbox)
        assert len(days) == len(set(days)), "a day was submitted twice"
        return time.monotonic() - started >= 60

    wait_until(a_minute_passed_without_a_day_asked_twice, timeout=90, interval=1, what="a minute of two pollers")
    assert sorted(submitted_days(sandbox)) == days_back(31, 2)
    assert_in_s3_exactly_once(s3, bucket, sandbox, days_back(31, 2))


def test_redis_lost_mid_backfill_exports_nothing_already_in_s3(make_stack, calendar, sandbox, s3, bucket, redis_server):
    sandbox.update_scenario(daily_quota_days=10, step_seconds=0.05, days_per_step=50)
    first = days_back(21, 21)[0]
    env = feed_env(calendar, SYNC_FEEDS=f"{RT}:{first}", TWILIO_DAILY_DAY_QUOTA="10")
    stack = make_stack(workers=1, poller=True, **env)
    wait_until(lambda: coverage_of(stack)["counts"]["copied"] == 10, timeout=60, what="the first UTC day's ten")
    before = {d for d, s in states_by_day(coverage_of(stack)).items() if s == "copied"}
    stack.stop()
    redis_server.client().flushall()
    stack = make_stack(workers=1, poller=True, **env)  # the relay starts again on an empty Redis
    catch_up(stack, calendar, sandbox, quota=10, max_days=5)
    every_day = exportable_since(first, calendar)
    assert states_by_day(coverage_of(stack)) == dict.fromkeys(every_day, "copied")
    assert_in_s3_exactly_once(s3, bucket, sandbox, every_day)
    asked = submitted_days(sandbox)
    assert before and all(asked.count(d) == 1 for d in before), "a day already in S3 was exported again"
