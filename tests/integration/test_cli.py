"""The `flask relay` CLI over the same domain functions, against real Redis and the sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.jobs.records import DayRecord, DayState
from app.platform.config import load_settings
from tests.conftest import make_env


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture
def cli(redis_url, s3, bucket, sandbox):
    app = create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, "https://relay.example.com")))
    runner = app.test_cli_runner()

    def run(*args: str):
        return runner.invoke(args=["relay", *args])

    run.svc = app.extensions["relay"]
    return run


def test_submit_list_status_cancel(cli, sandbox):
    r = cli("submit", "Calls", day(4), day(3), "--json")
    assert r.exit_code == 0, r.output
    (job,) = json.loads(r.output)
    sid = job["job_sid"]
    assert [j["job_sid"] for j in sandbox.jobs()] == [sid]
    r = cli("list")
    assert r.exit_code == 0 and sid in r.output and "(1 tracked)" in r.output
    r = cli("status", sid)
    assert r.exit_code == 0 and sid in r.output and "Calls" in r.output
    assert json.loads(cli("status", sid, "--json").output)["state"] == "waiting"
    r = cli("cancel", sid)
    assert r.exit_code == 0 and "cancelled" in r.output
    r = cli("cancel", sid)
    assert r.exit_code == 1 and "already cancelled" in r.output


def test_errors_are_one_line_with_their_exit_status(cli):
    r = cli("submit", "Faxes", day(4), day(3))
    assert r.exit_code == 1 and r.output.startswith("error: resource_type must be one of")
    r = cli("status", "JS" + "0" * 32)
    assert r.exit_code == 6 and "not tracked" in r.output  # not found
    r = cli("track", "JS" + "f" * 32)
    assert r.exit_code == 6 and "404" in r.output and len(r.output.splitlines()) == 1


def test_track_and_requeue(cli, sandbox):
    sid = json.loads(cli("submit", "Messages", day(3), day(3), "--json").output)[0]["job_sid"]
    cli.svc.jobs.r.flushall()
    r = cli("track", sid, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["origin"] == "adopted"
    cli.svc.days.put_day(sid, DayRecord(day=day(3), state=DayState.FAILED, error="boom"))
    r = cli("requeue", sid)
    assert r.exit_code == 0 and f"requeued 1 day(s): {day(3)}" in r.output
    assert cli.svc.days.get_day(sid, day(3)).state == DayState.PENDING
    assert cli("requeue", sid).output.strip() == "nothing to requeue"
