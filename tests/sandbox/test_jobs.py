"""Job progression: statuses over (sandbox) time, per-day outcomes, deletion, the Days they produce."""

from __future__ import annotations

from typing import Any

import requests

from devstack.procs import wait_until
from devstack.sandbox_process import SandboxProcess

STEP = 100.0  # seconds per step; time only moves through advance_clock, so nothing depends on real timing
OUTCOMES = {
    "2026-11-01": "completed",
    "2026-11-02": "empty_file",
    "2026-11-03": "empty_404",
    "2026-11-04": "error_then_completed",
    "2026-11-05": "failed",
}


def details_by_day(job: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for group in job["details"]:
        assert group["count"] == len(group["days"])
        for day in group["days"]:
            out[day] = group["status"]
    return out


def fetch(api: requests.Session, sb: SandboxProcess, sid: str) -> dict[str, Any]:
    resp = api.get(f"{sb.api_url}/v1/Exports/Jobs/{sid}")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def listed_days(api: requests.Session, sb: SandboxProcess, rt: str = "Calls") -> dict[str, dict[str, Any]]:
    body = api.get(f"{sb.api_url}/v1/Exports/{rt}/Days", params={"PageSize": 400}).json()
    return {d["day"]: d for d in body["days"]}


def create(api: requests.Session, sb: SandboxProcess, start: str, end: str, name: str = "job") -> str:
    resp = api.post(
        f"{sb.api_url}/v1/Exports/Calls/Jobs", data={"StartDay": start, "EndDay": end, "FriendlyName": name}
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["job_sid"])


def test_statuses_progress_step_by_step_for_every_outcome(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(
        today="2026-11-10", step_seconds=STEP, error_steps=2, days={f"Calls/{d}": o for d, o in OUTCOMES.items()}
    )
    sid = create(api, sb, "2026-11-01", "2026-11-05")

    job = fetch(api, sb, sid)
    assert details_by_day(job) == dict.fromkeys(OUTCOMES, "Submitted")
    assert job["details"] == [{"status": "Submitted", "count": 5, "days": list(OUTCOMES)}]
    assert job["job_queue_position"] == "1"
    assert listed_days(api, sb) == {}

    sb.advance_clock(STEP)
    assert set(details_by_day(fetch(api, sb, sid)).values()) == {"Running"}

    sb.advance_clock(STEP)
    assert details_by_day(fetch(api, sb, sid)) == {
        "2026-11-01": "Completed",
        "2026-11-02": "CompletedEmptyRecords",
        "2026-11-03": "CompletedEmptyRecords",
        "2026-11-04": "ErrorDuringRun",
        "2026-11-05": "Failed",
    }
    assert set(listed_days(api, sb)) == {"2026-11-01", "2026-11-02"}  # empty_404 and failed have no file
    assert not sb.job(sid)["final"] and sb.job(sid)["status"] == "running"

    sb.advance_clock(STEP)
    assert details_by_day(fetch(api, sb, sid))["2026-11-04"] == "ErrorDuringRun"  # still retrying

    sb.advance_clock(STEP)
    job = fetch(api, sb, sid)
    assert details_by_day(job)["2026-11-04"] == "Completed"
    assert [g["status"] for g in job["details"]] == ["Completed", "CompletedEmptyRecords", "Failed"]
    assert job["job_queue_position"] == "0"
    assert sb.job(sid)["final"] and sb.job(sid)["status"] == "final"
    assert set(listed_days(api, sb)) == {"2026-11-01", "2026-11-02", "2026-11-04"}


def test_big_jobs_finish_their_days_in_batches(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=STEP, days_per_step=10)
    sid = create(api, sb, "2026-10-01", "2026-10-25")  # 25 days: batches of 10, 10, 5
    sb.advance_clock(2 * STEP)
    counts = {g["status"]: g["count"] for g in fetch(api, sb, sid)["details"]}
    assert counts == {"Running": 15, "Completed": 10}
    sb.advance_clock(2 * STEP)
    assert fetch(api, sb, sid)["details"][0]["count"] == 25
    assert len(listed_days(api, sb)) == 25


def test_queue_position_counts_unfinished_jobs_ahead(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=STEP)
    first = create(api, sb, "2026-11-01", "2026-11-01")
    second = create(api, sb, "2026-11-02", "2026-11-02")
    assert fetch(api, sb, second)["job_queue_position"] == "2"
    sb.complete(first)
    assert fetch(api, sb, second)["job_queue_position"] == "1"
    assert fetch(api, sb, first)["job_queue_position"] == "0"


def test_complete_finishes_a_job_now(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=3600, days={"2026-11-02": "error_then_completed"})
    sid = create(api, sb, "2026-11-01", "2026-11-02")
    view = sb.complete(sid)
    assert view["final"] and view["days"]["2026-11-02"]["status"] == "Completed"
    assert details_by_day(fetch(api, sb, sid)) == {"2026-11-01": "Completed", "2026-11-02": "Completed"}
    assert set(listed_days(api, sb)) == {"2026-11-01", "2026-11-02"}


def test_delete_cancels_unfinished_days_and_keeps_the_job_listed(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=STEP, days_per_step=1)
    sid = create(api, sb, "2026-11-01", "2026-11-03")
    sb.advance_clock(2 * STEP)  # day 1 done, days 2 and 3 running
    resp = api.delete(f"{sb.api_url}/v1/Exports/Jobs/{sid}")
    assert resp.status_code == 204 and resp.content == b""
    assert details_by_day(fetch(api, sb, sid)) == {
        "2026-11-01": "Completed",
        "2026-11-02": "RunningToBeDeleted",
        "2026-11-03": "RunningToBeDeleted",
    }
    sb.advance_clock(STEP)
    assert details_by_day(fetch(api, sb, sid))["2026-11-03"] == "DeletedByUserRequest"
    sb.advance_clock(10 * STEP)
    assert set(listed_days(api, sb)) == {"2026-11-01"}  # what finished before the delete stays
    jobs = api.get(f"{sb.api_url}/v1/Exports/Calls/Jobs").json()["jobs"]
    assert [j["job_sid"] for j in jobs] == [sid]
    assert api.delete(f"{sb.api_url}/v1/Exports/Jobs/{sid}").status_code == 204  # idempotent
    assert sb.job(sid)["status"] == "deleted"


def test_later_export_of_the_same_day_replaces_the_file(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0)
    create(api, sb, "2026-11-01", "2026-11-02", "first")
    wait_until(lambda: len(listed_days(api, sb)) == 2, timeout=10)
    create(api, sb, "2026-11-02", "2026-11-03", "second")
    wait_until(lambda: len(listed_days(api, sb)) == 3, timeout=10)
    body = api.get(f"{sb.api_url}/v1/Exports/Calls/Days").json()["days"]
    assert [(d["day"], d["friendly_name"]) for d in body] == [
        ("2026-11-01", "first"),
        ("2026-11-02", "second"),  # regenerated, so listed after the first job's day
        ("2026-11-03", "second"),
    ]
    assert {d["create_date"] for d in body} == {"2026-11-10"}  # generated "today" (the pinned day)


def test_day_rules_per_type_and_size_overrides(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(
        today="2026-11-10",
        step_seconds=0,
        default_day_size=2000,
        days={"Calls/2026-11-01": {"size": 9999}, "2026-11-01": {"outcome": "failed"}},
    )
    create(api, sb, "2026-11-01", "2026-11-01")
    resp = api.post(
        f"{sb.api_url}/v1/Exports/Messages/Jobs",
        data={"StartDay": "2026-11-01", "EndDay": "2026-11-02", "FriendlyName": "m"},
    )
    assert resp.status_code == 201
    wait_until(lambda: all(j["final"] for j in sb.jobs()), timeout=10)
    assert {d: v["size"] for d, v in listed_days(api, sb, "Calls").items()} == {"2026-11-01": 9999}
    assert {d: v["size"] for d, v in listed_days(api, sb, "Messages").items()} == {"2026-11-02": 2000}


def test_jobs_progress_on_their_own_in_real_time(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0.05, days={"2026-11-02": "error_then_completed"})
    sid = create(api, sb, "2026-11-01", "2026-11-03")
    wait_until(lambda: sb.job(sid)["final"], timeout=20, what="job to finish by itself")
    assert details_by_day(fetch(api, sb, sid)) == dict.fromkeys(("2026-11-01", "2026-11-02", "2026-11-03"), "Completed")


def test_scenario_control_validates_and_merges(sb: SandboxProcess) -> None:
    merged = sb.update_scenario(days={"2026-11-01": "failed"}, webhook={"copies": 2})
    merged = sb.update_scenario(days={"Calls/2026-11-02": {"outcome": "empty_404", "size": 5}})
    assert merged["days"] == {
        "2026-11-01": {"outcome": "failed", "size": 4096},
        "Calls/2026-11-02": {"outcome": "empty_404", "size": 5},
    }
    assert merged["webhook"]["copies"] == 2 and merged["today"] == "2026-11-10"
    for bad in ({"days": {"2026-11-01": "exploded"}}, {"nope": 1}, {"step_seconds": -1}, {"webhook": {"body": "xml"}}):
        resp = requests.put(f"{sb.api_url}/_sandbox/scenario", json=bad)
        assert resp.status_code == 400 and resp.json()["error"]
    assert sb.get_scenario() == merged  # rejected payloads change nothing
