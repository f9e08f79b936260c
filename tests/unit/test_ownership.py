"""Which Twilio jobs are ours: the one rule recovery, adoption of ambiguous creates and the create's own retry share."""

from __future__ import annotations

from app.jobs.ownership import Mark, mark_of, origin_of, record_of, token_ref
from app.jobs.records import hash_token
from app.twilio.client import TwilioJob

PREFIX = "https://relay.example.com/hooks/bulkexport?"
TOKEN = "t0k3n"


def job(url: str | None = None, name: str = "bulkexport-relay Calls 2026-11-01..2026-11-02") -> TwilioJob:
    return TwilioJob("JS" + "a" * 32, "Calls", "2026-11-01", "2026-11-02", name, url, "POST", [])


def test_a_job_with_our_webhook_is_ours_and_carries_its_token() -> None:
    mark = mark_of(job(f"{PREFIX}token={TOKEN}"), PREFIX)
    assert mark == Mark(token_hash=hash_token(TOKEN)) and mark.is_of(hash_token(TOKEN))
    assert not mark.is_of(hash_token("another"))


def test_another_deployments_webhook_is_not_ours_even_with_a_token() -> None:
    assert mark_of(job(f"https://other.example.com/hooks/bulkexport?token={TOKEN}"), PREFIX) is None


def test_a_job_without_a_webhook_is_ours_by_the_reference_ending_its_name() -> None:
    ref = token_ref(hash_token(TOKEN))
    mark = mark_of(job(None, f"my export {ref}"), PREFIX)
    assert mark == Mark(ref=ref) and mark.is_of(hash_token(TOKEN))
    assert mark_of(job(None, f"{ref} and more"), PREFIX) is None  # the reference must end the name
    assert mark_of(job(None, "bulkexport-relay feed Calls 2026-11-01..2026-11-02"), PREFIX) is None
    assert mark_of(job("https://other.example.com/x", f"x {ref}"), PREFIX) is None  # another webhook: not ours


def test_the_origin_is_told_by_the_planners_name() -> None:
    assert origin_of("bulkexport-relay feed Calls 2026-11-01..2026-11-02") == "feed"
    assert origin_of("my feed export") == "api"


def test_a_record_keeps_what_we_sent_over_twilios_echo() -> None:
    tj = job(name="")
    record = record_of(tj, "Calls", "AC" + "1" * 32, "api", "h", ("2026-10-01", "2026-10-02", "sent name"))
    assert (record.start_day, record.end_day, record.friendly_name) == ("2026-10-01", "2026-10-02", "sent name")
    assert record.created_at == record.updated_at > 0
