from datetime import date

import pytest

from app.jobs.lifecycle import plan_days
from app.jobs.records import JobRecord
from app.jobs.submission import SubmitRequest
from app.platform.days import split_range
from app.platform.errors import RequestError
from app.twilio.client import DayDetail, TwilioError, parse_details

TODAY = date(2026, 11, 29)


def body(**kw):
    return {"resource_type": "Calls", "start_day": "2026-11-01", "end_day": "2026-11-03"} | kw


def test_submit_request_valid():
    req = SubmitRequest.from_body(body(), today=TODAY)
    assert (req.resource_type, req.start_day, req.end_day) == ("Calls", date(2026, 11, 1), date(2026, 11, 3))
    assert "Calls" in req.friendly_name


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resource_type": "Faxes"}, "resource_type"),
        ({"start_day": "2026-11-1"}, "start_day"),
        ({"start_day": "2026-02-30"}, "real calendar day"),
        ({"start_day": "2026-11-05"}, "not be after"),
        ({"end_day": "2026-11-28"}, "at most 2026-11-27"),
        ({"email": "nope"}, "email"),
        ({"extra": 1}, "unknown field"),
        ({"friendly_name": 0}, "friendly_name"),  # was silently replaced by the default name
        ({"friendly_name": []}, "friendly_name"),
        ({"friendly_name": "x" * 201}, "friendly_name"),
    ],
)
def test_submit_request_rejects(change, message):
    with pytest.raises(RequestError, match=message):
        SubmitRequest.from_body(body(**change), today=TODAY)


def test_end_day_two_days_before_today_is_allowed():
    SubmitRequest.from_body(body(end_day="2026-11-27"), today=TODAY)


def test_split_range_366_day_chunks():
    chunks = split_range(date(2024, 1, 1), date(2025, 12, 31))
    assert [(s.isoformat(), e.isoformat()) for s, e in chunks] == [
        ("2024-01-01", "2024-12-31"),  # 2024 is a leap year: exactly 366 days
        ("2025-01-01", "2025-12-31"),
    ]
    assert split_range(date(2024, 1, 1), date(2024, 1, 1)) == [(date(2024, 1, 1), date(2024, 1, 1))]


def test_parse_details_every_known_shape():
    as_list = [{"status": "Completed", "count": 2, "days": ["2026-11-01", "2026-11-02"]}]
    assert parse_details(as_list)[0].days == ["2026-11-01", "2026-11-02"]
    legacy = {"0": {"status": "Submitted", "count": 1, "days": None}}
    assert parse_details(legacy) == [DayDetail("Submitted", None, 1)]
    assert parse_details(None) == []
    assert parse_details({"status": "Running", "count": 1, "days": ["2026-11-01"]})[0].status == "Running"
    with pytest.raises(TwilioError):
        parse_details([{"count": 1}])
    with pytest.raises(TwilioError):
        parse_details([{"status": "Completed", "days": ["yesterday"]}])


def job(start="2026-11-01", end="2026-11-03"):
    return JobRecord(job_sid="JS" + "0" * 32, resource_type="Calls", start_day=start, end_day=end)


def test_plan_listed_days_and_case_insensitive_statuses():
    plan = plan_days(
        job(),
        [
            DayDetail("COMPLETED", ["2026-11-01"], 1),
            DayDetail("Failed", ["2026-11-02"], 1),
            DayDetail("CompletedEmptyRecords", ["2026-11-03"], 1),
        ],
        None,
    )
    assert plan.statuses == {
        "2026-11-01": "completed",
        "2026-11-02": "failed",
        "2026-11-03": "completedemptyrecords",
    }
    assert plan.twilio_final


def test_plan_waits_while_days_are_running():
    plan = plan_days(job(), [DayDetail("Completed", ["2026-11-01"], 1), DayDetail("ErrorDuringRun", None, 2)], None)
    assert plan.statuses["2026-11-02"] == "errorduringrun"
    assert not plan.twilio_final


def test_plan_null_days_falls_back_to_range_and_day_files():
    plan = plan_days(
        job(),
        [DayDetail("Completed", None, 2), DayDetail("CompletedEmptyRecords", None, 1)],
        {"2026-11-01", "2026-11-03"},
    )
    assert plan.statuses == {
        "2026-11-01": "completed",
        "2026-11-02": "completedemptyrecords",
        "2026-11-03": "completed",
    }


def test_plan_null_details_means_submitted():
    plan = plan_days(job(), [], None)
    assert set(plan.statuses.values()) == {"submitted"} and not plan.twilio_final


def test_plan_detects_deletion():
    assert plan_days(job(), [DayDetail("DeletedByUserRequest", None, 3)], None).cancelled


def test_plan_days_missing_from_every_list_are_still_running():
    """Twilio listing only some days must never let the job finish without the others."""
    plan = plan_days(job(), [DayDetail("Completed", ["2026-11-01"], 1), DayDetail("Running", [], 0)], None)
    assert plan.statuses["2026-11-02"] == "running" and plan.statuses["2026-11-03"] == "running"
    assert not plan.twilio_final


def test_plan_ignores_days_outside_the_range():
    plan = plan_days(job(), [DayDetail("Completed", ["2026-10-01", "2026-11-01", "2026-11-02", "2026-11-03"], 4)], None)
    assert set(plan.statuses) == {"2026-11-01", "2026-11-02", "2026-11-03"}


def test_plan_null_days_with_failures_never_guesses_empty():
    plan = plan_days(job(), [DayDetail("Completed", None, 1), DayDetail("Failed", None, 2)], {"2026-11-01"})
    assert plan.statuses == {"2026-11-01": "completed", "2026-11-02": "failed", "2026-11-03": "failed"}
    assert "no file" in plan.failed_reasons["2026-11-02"]


def test_plan_unknown_status_counts_as_running():
    plan = plan_days(job(), [DayDetail("Queued", ["2026-11-01", "2026-11-02", "2026-11-03"], 3)], None)
    assert set(plan.statuses.values()) == {"running"} and not plan.twilio_final


def test_plan_null_days_without_listday_lets_fetchday_decide():
    """ListDay refused (files=None): a day that might have a file is tried, never failed or called empty unseen."""
    plan = plan_days(job(), [DayDetail("Completed", None, 1), DayDetail("Failed", None, 2)], None)
    assert set(plan.statuses.values()) == {"completed"} and not plan.failed_reasons


def test_parse_details_tolerates_benign_variants_and_refuses_the_rest():
    odd = [{"status": "Completed", "count": 2.0, "days": ["2026-11-01T00:00:00Z", "2026-11-02"]}]
    assert parse_details(odd) == [DayDetail("Completed", ["2026-11-01", "2026-11-02"], 2)]
    for bad in ({"status": "Completed", "count": 2.5}, {"status": "Completed", "days": ["2026-11-01x"]}):
        with pytest.raises(TwilioError):
            parse_details([bad])


def test_plan_days_left_out_of_final_lists_are_decided_once_the_counts_cover_the_range():
    """Seen: a job Completed with count 3 but only 2 days listed. Without the counts, waiting stays the safe answer."""
    listed = ["2026-11-01", "2026-11-02"]
    covered = plan_days(job(), [DayDetail("Completed", listed, 3)], {"2026-11-01", "2026-11-02", "2026-11-03"})
    assert covered.statuses["2026-11-03"] == "completed" and covered.twilio_final
    no_file = plan_days(job(), [DayDetail("Completed", listed, 3)], {"2026-11-01", "2026-11-02"})
    assert no_file.statuses["2026-11-03"] == "completed"  # never "empty" on a guess: FetchDay decides
    groups = [DayDetail("Completed", listed, 2), DayDetail("CompletedEmptyRecords", [], 1)]
    assert plan_days(job(), groups, {"2026-11-01", "2026-11-02"}).statuses["2026-11-03"] == "completedemptyrecords"
    uncounted = plan_days(job(), [DayDetail("Completed", listed, 2)], {"2026-11-01", "2026-11-02"})
    assert uncounted.statuses["2026-11-03"] == "running" and not uncounted.twilio_final
