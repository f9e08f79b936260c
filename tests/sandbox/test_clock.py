"""The sandbox clock: settable "now"/"today", moving forward, and what reads it (EndDay rule, quota, create_date)."""

from __future__ import annotations

import pytest
import requests

from devstack.procs import wait_until
from devstack.sandbox_process import SandboxError, SandboxProcess
from tests.sandbox.conftest import TODAY
from tests.sandbox.test_api import assert_twilio_error


def create(api: requests.Session, sb: SandboxProcess, start: str, end: str, rt: str = "Calls") -> requests.Response:
    return api.post(
        f"{sb.api_url}/v1/Exports/{rt}/Jobs", data={"StartDay": start, "EndDay": end, "FriendlyName": "clock"}
    )


def test_set_today_puts_the_clock_at_midnight_utc_and_get_shows_it(sb: SandboxProcess) -> None:
    view = sb.set_today("2027-03-01")
    assert view["today"] == "2027-03-01" and view["now"].startswith("2027-03-01T00:00:0")
    assert sb.clock()["today"] == "2027-03-01"
    assert sb.get_scenario()["today"] == "2027-03-01"  # the scenario shows the clock's day


def test_advance_days_and_seconds_move_now_forward(sb: SandboxProcess) -> None:
    sb.set_now("2026-11-10T23:59:00Z")
    assert sb.advance_clock(30) >= 30
    assert sb.clock()["now"].startswith("2026-11-10T23:59:3")
    view = sb.advance_days(2)
    assert view["today"] == "2026-11-12" and view["now"].startswith("2026-11-12T23:59:3")


def test_moving_back_relabels_the_calendar_without_undoing_elapsed_time(sb: SandboxProcess) -> None:
    sb.set_today("2026-11-20")
    before = sb.clock()["offset_seconds"]
    view = sb.set_today("2026-11-05")
    assert view["today"] == "2026-11-05"
    assert view["offset_seconds"] == before  # elapsed (job/link) time never runs backwards


def test_clock_control_refuses_bad_bodies_and_changes_nothing(sb: SandboxProcess) -> None:
    before = sb.clock()["today"]
    for bad in (
        {"advance": -1},
        {"advance": "soon"},
        {"advance_days": 1.5},
        {"today": "2026/11/10"},
        {"today": "2026-02-30"},
        {"now": "yesterday"},
        {"now": "2026-11-10T10:00:00+02:00"},
        {"today": "2026-11-11", "advance": 5},
        {"later": 1},
    ):
        resp = requests.post(f"{sb.api_url}/_sandbox/clock", json=bad)
        assert resp.status_code == 400 and resp.json()["error"], bad
    assert sb.clock()["today"] == before


def test_end_day_rule_follows_the_simulated_today(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_today("2026-11-10")
    assert_twilio_error(create(api, sb, "2026-11-09", "2026-11-09"), 400, 20001)
    assert create(api, sb, "2026-11-08", "2026-11-08").status_code == 201
    sb.advance_days(1)  # 2026-11-11: the 9th becomes exportable
    assert create(api, sb, "2026-11-09", "2026-11-09").status_code == 201
    assert_twilio_error(create(api, sb, "2026-11-10", "2026-11-10"), 400, 20001)


def test_scenario_today_moves_the_clock_only_when_given(sb: SandboxProcess) -> None:
    sb.set_today("2026-11-10")
    sb.advance_days(3)
    sb.update_scenario(webhook={"copies": 2})  # a PATCH without today leaves the clock alone
    assert sb.clock()["today"] == "2026-11-13"
    sb.set_scenario(step_seconds=0.1)  # a PUT without today too
    assert sb.clock()["today"] == "2026-11-13"
    assert sb.update_scenario(today="2026-11-02")["today"] == "2026-11-02"


def test_reset_puts_the_clock_back_to_real_time(sb: SandboxProcess) -> None:
    sb.set_today("2031-01-01")
    sb.reset()
    assert sb.clock()["wall_offset_seconds"] == 0.0
    assert sb.clock()["today"] != "2031-01-01"


def test_quota_resets_at_simulated_midnight_and_is_shown_per_day(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(daily_quota_days=5)
    sb.set_now("2026-11-10T23:59:50Z")
    assert create(api, sb, "2026-11-01", "2026-11-04").status_code == 201
    assert create(api, sb, "2026-11-05", "2026-11-05").status_code == 201  # 5 of 5
    body = assert_twilio_error(create(api, sb, "2026-11-06", "2026-11-06"), 400, 20001)
    assert body["message"].startswith("Export quota exceeded")
    sb.advance_clock(15)  # 00:00:05 on the 11th: a new UTC day, a new count
    assert create(api, sb, "2026-11-06", "2026-11-08").status_code == 201
    usage = sb.quota()
    assert usage["days"] == {"2026-11-10": 5, "2026-11-11": 3}
    assert (usage["limit"], usage["today"], usage["used_today"]) == (5, "2026-11-11", 3)
    assert usage["family"] == sb.account_sid
    assert sb.quota_usage() == usage["days"]
    assert max(usage["days"].values()) <= usage["limit"]


def test_refused_jobs_do_not_count_against_the_quota(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(daily_quota_days=3, today=TODAY)
    assert create(api, sb, "2026-11-01", "2026-11-03").status_code == 201
    assert_twilio_error(create(api, sb, "2026-11-04", "2026-11-04"), 400, 20001)
    assert sb.quota_usage() == {TODAY: 3}


def test_create_date_and_job_times_follow_the_clock(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(step_seconds=0)
    sb.set_today("2027-01-15")
    resp = create(api, sb, "2027-01-01", "2027-01-01")
    sid = resp.json()["job_sid"]
    wait_until(lambda: sb.job(sid)["final"], timeout=10, what="job final")
    assert sb.job(sid)["created_at"].startswith("2027-01-15T00:00:")
    [day] = api.get(f"{sb.api_url}/v1/Exports/Calls/Days").json()["days"]
    assert day["create_date"] == "2027-01-15"


def test_moving_time_forward_finishes_running_jobs(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(step_seconds=3600, today=TODAY)
    sid = create(api, sb, "2026-11-01", "2026-11-02").json()["job_sid"]
    assert sb.job(sid)["status"] == "submitted"
    sb.advance_days(1)
    assert sb.job(sid)["final"]


def test_unknown_account_in_a_control_query_is_404(sb: SandboxProcess) -> None:
    with pytest.raises(SandboxError, match="-> 404"):
        sb.quota("AC" + "0" * 32)
