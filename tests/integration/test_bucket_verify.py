"""``relay verify`` and the corrupt-day rule (app/bucket/check.py, app/bucket/verify.py) in-process, against real
Redis, each
S3 server of the ``server`` fixture (read through the workers' sink, as the verify task reads it) and the Twilio
sandbox: what is read and reported, what is recorded, what a repair can and cannot do, and how the sweep and a
failed copy treat a corrupt day. The CLI, its task on a real worker and the repair's copies are
tests/e2e/test_bucket_checks.py."""

from __future__ import annotations

import gzip
from datetime import date
from typing import Any

import pytest

from app import create_app
from app.bucket import verify
from app.feeds import coverage, daily_exports, summary
from app.feeds.store import CoverageDay, Feed
from app.jobs.records import DayRecord, DayState, JobRecord
from app.platform.config import load_settings
from app.twilio.accounts import owner_of
from tests.conftest import make_env
from tests.days import day
from tests.integration import s3_calls
from workers.copy import VerifyingReader
from workers.sink import S3Sink, UploadResult

# Fixtures: a new bucket per test on the module's ``server``, and the workers' sink on it.
bucket, sink = s3_calls.server_bucket, s3_calls.server_sink

RT = "Calls"
LINES = b"".join(b'{"sid": "CA%d"}\n' % i for i in range(5))


@pytest.fixture
def app(redis_url, server, bucket, sandbox):
    return create_app(load_settings(make_env(redis_url, server, bucket, sandbox, "http://127.0.0.1:9")))


@pytest.fixture
def svc(app):
    svc = app.extensions["relay"]
    svc.feeds.put_feed(Feed(RT, since=day(20), account=svc.accounts.primary.sid))
    return svc


@pytest.fixture
def relay(svc, sink):
    """What ``relay verify`` has a worker do: the report, and its text (one line per problem, then the counts)."""

    def run(repair: bool = False, **which: Any) -> tuple[dict[str, Any], list[str]]:
        doc = verify.summary(verify.verify(svc, sink, verify.Selection(**which), repair=repair))
        return doc, verify.summary_text(doc).splitlines()

    return run


def copied(
    svc: Any, sink: S3Sink, iso: str, data: bytes = gzip.compress(LINES, mtime=0), **changes: Any
) -> UploadResult:
    """A day copied as the workers copy it, recorded as they record it (``changes``: to the record)."""
    meta = {"job_sid": "JS1", "day": iso, "resource_type": RT, "twilio_create_date": "2026-01-01T00:00:00Z"}
    result = sink.upload_verified(VerifyingReader([data], len(data)), sink.day_key(RT, iso, "JS1"), len(data), meta)
    fields = {"state": "copied", "job_sid": "JS1", "key": result.key, "size": result.size, "sha256": result.sha256}
    fields |= {"records": result.records, "etag": result.etag}
    svc.feeds.put_days(owner_of(RT, svc.accounts.primary.sid), {iso: CoverageDay(**(fields | changes))})
    return result


def state_of(svc: Any, iso: str) -> CoverageDay | None:
    return svc.feeds.get_day(owner_of(RT, svc.accounts.primary.sid), iso)


def test_intact_days_pass(svc, sink, relay):
    copied(svc, sink, day(5))
    copied(svc, sink, day(6), sha256=None, records=None)  # found in a listing: size and gzip only
    doc, text = relay()
    assert doc["problems"] == [] and text == [
        "verified 2 copied day(s): 2 ok (1 without a recorded sha256: size and gzip only); no problem found"
    ]


def test_records_that_differ_are_corrupt_and_from_to_bound_the_days_read(app, svc, sink, relay):
    copied(svc, sink, day(5), records=6)  # the object holds 5 records
    copied(svc, sink, day(9), sha256="0" * 64)
    doc, _ = relay(resource_type=RT, first=date.fromisoformat(day(6)), last=date.fromisoformat(day(5)))
    assert doc["checked"] == 1 and doc["counts"] == {"corrupt": 1}
    (problem,) = doc["problems"]
    assert (problem["day"], problem["detail"]) == (day(5), "5 records, the verified copy had 6")
    assert problem["repair"] is None
    assert state_of(svc, day(5)).state == "corrupt" and state_of(svc, day(9)).state == "copied"  # not read
    summary.refresh(svc)  # what the next poll does: /health reads its summaries (app/feeds/summary.py)
    (check,) = app.test_client().get("/health").get_json(force=True)["checks"]["feeds:lagDays"]
    assert check["status"] == "warn" and "1 corrupt day(s)" in check["output"]


def test_a_corrupt_day_whose_object_checks_out_is_copied_again(svc, sink, relay):
    """A corrupt record (say, from a listing on a store whose ETags changed) is restored by reading the bytes."""
    copied(svc, sink, day(5), state="corrupt", error="the bucket's object has ETag x, the verified copy had y")
    doc, text = relay()
    assert doc["problems"] == []
    assert text[0] == f"RESTORED   {RT} {day(5)}: was corrupt; the object is the verified copy again"
    rec = state_of(svc, day(5))
    assert rec.state == "copied" and rec.error is None


def test_a_corrupt_day_without_a_recorded_sha256_is_never_restored_by_a_read(svc, sink, relay):
    """Size and gzip alone cannot prove the verified copy: the day stays corrupt and is reported."""
    copied(svc, sink, day(5), state="corrupt", sha256=None, error="the bucket's object has another size")
    doc, _ = relay()
    (problem,) = doc["problems"]
    assert problem["day"] == day(5) and "no sha256 recorded" in problem["detail"]
    assert state_of(svc, day(5)).state == "corrupt"


def test_repair_says_what_it_cannot_repair_and_the_day_stays_corrupt(svc, sink, client, bucket, relay):
    result = copied(svc, sink, day(5))
    client.put_object(Bucket=bucket, Key=result.key, Body=b"not gzip at all")  # Twilio lists no file for it
    doc, text = relay(repair=True)
    assert len(doc["problems"]) == 1
    first, second = text[:2]
    assert first.startswith(f"CORRUPT    {RT} {day(5)}  {result.key}: not the intact gzip file copied: corrupt gzip")
    assert second == (
        "           repair: cannot repair: Twilio lists no file for it (kept 7 days); it stays corrupt; the console's "
        "Retry exports it again (one day of quota)"
    )
    assert state_of(svc, day(5)).state == "corrupt"


def listed_day(svc: Any, sandbox: Any, iso: str) -> str:
    """A file Twilio lists for ``iso`` (a job made elsewhere), tracked as a listed job whose copy finished."""
    job = svc.twilio_for(svc.accounts.primary.sid).create_job(RT, iso, iso, "elsewhere", None, "POST")
    sandbox.complete(job.job_sid)
    sid = daily_exports.copy_listed_day(svc, RT, iso, svc.accounts.primary).job_sid
    svc.days.put_day(sid, DayRecord(day=iso, state=DayState.COPIED, twilio_status="completed"))
    return sid


def test_the_sweep_copies_a_corrupt_day_again_through_the_job_that_copied_it(svc, sink, sandbox):
    sid = listed_day(svc, sandbox, day(5))
    copied(svc, sink, day(5), job_sid=sid, state="corrupt", error="the bucket's object is 240 bytes")
    assert daily_exports.sweep(svc, RT, svc.accounts.primary.sid) == [sid]
    assert svc.days.get_day(sid, day(5)).state == DayState.PENDING  # requeued: its copy is queued again
    assert state_of(svc, day(5)).state == "corrupt"  # until a copy replaces the object (not "in flight")


def test_a_vanished_day_is_copied_again_through_its_listed_job_and_held_in_flight(svc, sandbox):
    """The day is missing (its object vanished); its listed job copied it: asked again, it copies it once more,
    in flight meanwhile so that the planner spends no quota on it."""
    sid = listed_day(svc, sandbox, day(5))
    svc.feeds.drop_days(owner_of(RT, svc.accounts.primary.sid), [day(5)])
    assert daily_exports.sweep(svc, RT, svc.accounts.primary.sid) == [sid]
    assert svc.days.get_day(sid, day(5)).state == DayState.PENDING
    assert state_of(svc, day(5)).state == "in_flight" and state_of(svc, day(5)).job_sid == sid


def test_a_failed_copy_of_a_corrupt_day_is_not_started_again_by_each_sweep(svc, sink, sandbox):
    sid = listed_day(svc, sandbox, day(5))
    svc.days.put_day(sid, DayRecord(day=day(5), state=DayState.FAILED, error="gone"))
    copied(svc, sink, day(5), job_sid=sid, state="corrupt", error="the bucket's object is 240 bytes")
    daily_exports.sweep(svc, RT, svc.accounts.primary.sid)
    assert svc.days.get_day(sid, day(5)).state == DayState.FAILED  # visible; the console's Retry requeues it


def test_a_corrupt_day_whose_copy_failed_stays_corrupt_and_says_why(svc, sink):
    copied(svc, sink, day(5), state="corrupt", error="the bucket's object is 240 bytes")
    job = JobRecord(job_sid="JS" + "1" * 32, resource_type=RT, start_day=day(5), end_day=day(5))
    job.account_sid = svc.accounts.primary.sid
    failed = DayRecord(day=day(5), state=DayState.FAILED, error="LinkNotFoundError: the day file is gone")
    coverage.record_job_day(svc.feeds, svc.settings.sync, job, failed)
    rec = state_of(svc, day(5))
    assert rec.state == "corrupt" and rec.error == "not copied again: LinkNotFoundError: the day file is gone"


def test_the_cli_says_so_when_no_worker_reports(app, svc):
    """The objects are read by a worker (the web's role may not read them): without one, no report, exit 1."""
    r = app.test_cli_runner().invoke(args=["relay", "verify", "--feed", RT, "--wait", "1"])
    assert r.exit_code == 1
    assert r.output.startswith("error: verification task verify-")
    assert r.output.rstrip().endswith("no report yet (are workers running?)")
