"""The planner (run by every poll): submit the missing days of every enabled feed, within Twilio's quota.

Newest first (yesterday's data before last year's backfill) and fair across feeds (each poll the quota left is
shared round-robin, so no feed starves). It never spends more than TWILIO_DAILY_DAY_QUOTA - FEED_QUOTA_RESERVE_DAYS
per UTC day (the reserve is for manual submissions); a long backfill simply continues on the next UTC days. It is
idempotent: a day is marked in flight *before* Twilio is asked (keyed by the submission's token), so a planner
that crashes or races another never asks for a day twice; ``heal`` settles in-flight marks whose job ended or
never came to be. Cost: a bounded number of Redis round trips per poll (not per day).

Decided in a pure function, carried out by a thin step: ``plan`` reads (feeds, coverage, quota), ``make_plan``
decides from what was read (``Plan``: per family, the feeds in turn order and the days they want) and
``submit_plan`` submits, sending each outcome back to the family's round-robin (``FamilyPlan.submissions``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from app.feeds import coverage
from app.feeds.store import CoverageDay, Feed, FeedStore
from app.jobs.ownership import FEED_NAME_PREFIX
from app.jobs.submission import SubmitRequest, submit
from app.platform import clock
from app.platform.config import FeedSettings
from app.platform.days import MAX_DAYS_PER_JOB, compact_ranges, newest_exportable_day
from app.platform.errors import QuotaExceeded
from app.twilio.accounts import note_outcome
from app.twilio.client import TwilioError

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

Range = tuple[date, date]
T = TypeVar("T")


@dataclass
class PlanReport:
    submitted: list[tuple[str, str, str]] = field(default_factory=list)  # (resource_type, start, end)
    waiting_for_quota: dict[str, int] = field(default_factory=dict)  # owner -> days left unsubmitted
    quota_left: int = 0  # of the family being planned
    quota_left_by_family: dict[str, int] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True)
class Submission:
    feed: Feed
    first: date
    last: date


@dataclass
class FamilyPlan:
    """One account family's share of the poll: its quota left today and what its feeds want (ranges newest first),
    the feeds in turn order (accounts interleaved)."""

    family: str
    quota_left: int
    feeds: dict[str, Feed]  # owner -> feed, in turn order
    wants: dict[str, deque[Range]]

    def submissions(self) -> Generator[Submission, bool | None, None]:
        """Round-robin: in each round every feed still wanting days may take an equal share of what is left,
        newest days first (one job per feed and round: 366 days for 4 feeds are 4 jobs, not a series of shrinking
        ones). Send back each submission's outcome: True submitted, False refused (that feed sits out this poll,
        the others go on), None the quota is spent (someone else spent it meanwhile: the family stops)."""
        turns = deque(o for o, w in self.wants.items() if w)
        left_in_round = 0
        while turns and self.quota_left > 0:
            left_in_round = left_in_round or len(turns)
            owner = turns.popleft()
            start, end = self.wants[owner][0]
            share = -(-self.quota_left // left_in_round)  # rounded up: the round's last turn takes the rest
            left_in_round -= 1
            take = min(share, (end - start).days + 1)
            first = end - timedelta(days=take - 1)
            outcome = yield Submission(self.feeds[owner], first, end)
            if outcome is None:
                self.quota_left = 0
                return
            if not outcome:
                continue
            self.quota_left -= take
            if first > start:
                self.wants[owner][0] = (start, first - timedelta(days=1))
            else:
                self.wants[owner].popleft()
            if self.wants[owner]:
                turns.append(owner)


@dataclass
class Plan:
    """What the feeds miss and how this poll's quota is shared (``make_plan``); ``submit_plan`` carries it out."""

    families: list[FamilyPlan]
    wants: dict[str, deque[Range]]  # every planned feed's ranges (the families' own, shrinking as they submit)
    limit: int  # of each family's daily quota, what feeds may spend
    at: float

    def waiting_for_quota(self) -> dict[str, int]:
        return {o: sum((e - s).days + 1 for s, e in w) for o, w in self.wants.items() if w}


def wanted_days(feed: Feed, cov: dict[str, CoverageDay], daily: bool, settings: FeedSettings, now: float) -> list[str]:
    """Days of the feed a custom job should be asked for now: missing, or failed once and due for a retry."""
    today = datetime.fromtimestamp(now, UTC).date()
    newest = newest_exportable_day(today)  # the planner asks custom jobs
    if now % 86400 < settings.submit_delay_hours * 3600:
        newest -= timedelta(days=1)  # data may still arrive late at Twilio for the day that just became exportable
    window = coverage.feed_window(feed, daily, today)
    wanted = []
    for day in coverage.Window(window.first, min(window.last, newest)).days():
        rec = cov.get(day)
        if rec is not None and not (rec.state == "retry" and rec.next_try <= now):
            continue
        if daily and _daily_file_may_come(day, now, settings.daily_grace_hours):
            continue
        wanted.append(day)
    return wanted


def _daily_file_may_come(day: str, now: float, grace_hours: int) -> bool:
    """Twilio's daily export makes day D's file after D ends: wait ``grace_hours`` past that before paying quota."""
    day_end = (date.fromisoformat(day) - date(1970, 1, 1)).days * 86400 + 86400
    return now < day_end + grace_hours * 3600


def chunks_newest_first(days: list[str]) -> deque[Range]:
    out: deque[Range] = deque()
    for first, last in reversed(compact_ranges(days)):
        end, start = date.fromisoformat(last), date.fromisoformat(first)
        while end >= start:
            chunk_start = max(start, end - timedelta(days=MAX_DAYS_PER_JOB - 1))
            out.append((chunk_start, end))
            end = chunk_start - timedelta(days=1)
    return out


@dataclass(frozen=True)
class PlanInputs:
    """What the planner read: the feeds to plan (enabled, of active accounts), each account's quota family, the
    feeds' coverage and daily-export flags, and each family's quota used today."""

    feeds: list[Feed]
    family_of: dict[str, str]  # account SID -> quota family
    cov: dict[str, dict[str, CoverageDay]]
    daily: dict[str, bool]
    quota_used: dict[str, int]


def make_plan(inputs: PlanInputs, settings: FeedSettings, daily_quota: int, now: float) -> Plan:
    """The poll's plan, a pure function of what was read: the feeds' wanted days, in chunks newest first, and,
    per account family (each spends its own daily quota; sorted), the feeds in turn order: accounts alternate,
    and where the order starts rotates with the UTC day, so no account starves while another backfills years."""
    wants = {
        f.owner: chunks_newest_first(wanted_days(f, inputs.cov[f.owner], inputs.daily[f.owner], settings, now))
        for f in inputs.feeds
    }
    limit = daily_quota - settings.quota_reserve_days
    turn = datetime.fromtimestamp(now, UTC).date().toordinal()
    families = []
    for family in sorted({inputs.family_of[f.account] for f in inputs.feeds}):
        members = _interleaved([f for f in inputs.feeds if inputs.family_of[f.account] == family], turn)
        left = max(0, limit - inputs.quota_used.get(family, 0))
        families.append(
            FamilyPlan(family, left, {f.owner: f for f in members}, {f.owner: wants[f.owner] for f in members})
        )
    return Plan(families, wants, limit, now)


def plan(svc: Services, store: FeedStore, skip: frozenset[str] = frozenset()) -> PlanReport:
    """Submit what the enabled feeds miss (``skip``: owners not to plan now, e.g. never reconciled with S3): read,
    ``make_plan``, ``submit_plan``, and keep the plan's summary for the reports."""
    active = {a.sid: a for a in svc.accounts.all() if a.status == "active"}
    feeds = [f for f in store.list_feeds() if f.enabled and f.owner not in skip and f.account in active]
    if not feeds:
        return PlanReport()
    owners = [f.owner for f in feeds]
    daily = store.daily_enabled(owners)
    cov = store.day_states(owners)
    if heal(svc, store, owners, cov):
        cov = store.day_states(owners)  # read again only when heal settled something
    today = clock.utc_today().isoformat()
    family_of = {f.account: active[f.account].family for f in feeds}
    used = {family: svc.quota.used(today, family) for family in sorted(set(family_of.values()))}
    inputs = PlanInputs(feeds, family_of, cov, daily, used)
    report = submit_plan(svc, make_plan(inputs, svc.settings.sync, svc.settings.daily_day_quota, clock.now()))
    store.save_plan(
        {
            "at": report.at,
            "submitted": report.submitted,
            "waiting_for_quota": report.waiting_for_quota,
            "quota_left": report.quota_left_by_family,
        }
    )
    return report


def submit_plan(svc: Services, the_plan: Plan) -> PlanReport:
    """Carry out the plan: each family's submissions in turn, each one's outcome sent back to the plan."""
    report = PlanReport(at=the_plan.at)
    for family in the_plan.families:
        steps = family.submissions()
        step = next(steps, None)
        while step is not None:
            try:
                step = steps.send(_submit(svc, step, the_plan.limit, report))
            except StopIteration:
                step = None
        report.quota_left = report.quota_left_by_family[family.family] = family.quota_left
    report.waiting_for_quota = the_plan.waiting_for_quota()
    return report


def _interleaved(feeds: list[Feed], turn: int = 0) -> list[Feed]:
    """Feeds ordered so that accounts alternate: each account's first feed, then each one's second, ...

    ``turn`` (the UTC day's ordinal) rotates where each account's list and the list of accounts start: when the
    quota is smaller than the number of feeds, a different account and resource type go first each day, instead
    of the same ones (sorted first) every day while the others wait."""
    by_account: dict[str, list[Feed]] = {}
    for feed in sorted(feeds, key=lambda f: (f.account, f.resource_type)):
        by_account.setdefault(feed.account, []).append(feed)
    accounts = _rotated(list(by_account.values()), turn)
    ranked = [_rotated(fs, turn) for fs in accounts]
    return [fs[rank] for rank in range(max(map(len, ranked), default=0)) for fs in ranked if rank < len(fs)]


def _rotated(items: list[T], turn: int) -> list[T]:
    k = turn % len(items) if items else 0
    return items[k:] + items[:k]


def _submit(svc: Services, step: Submission, limit: int, report: PlanReport) -> bool | None:
    """One submission of the plan: True submitted, False refused by Twilio, None the quota was spent meanwhile."""
    feed, first, last = step.feed, step.first, step.last
    name = f"{FEED_NAME_PREFIX}{feed.resource_type} {first}..{last}"
    req = SubmitRequest(feed.resource_type, first, last, name, None, feed.account)
    try:
        result = submit(svc, req, quota_limit=limit, origin="feed")
    except QuotaExceeded:
        return None  # someone else spent it meanwhile
    except TwilioError as exc:
        note_outcome(svc.account_states, feed.account, exc)
        log.warning("feed submission refused: %s", exc, extra={"resource_type": feed.resource_type})
        return False
    note_outcome(svc.account_states, feed.account, None)
    if result.error is not None:
        log.warning("feed submission incomplete: %s", result.error, extra={"resource_type": feed.resource_type})
    report.submitted.append((feed.resource_type, first.isoformat(), last.isoformat()))
    log.info("feed days submitted", extra={"resource_type": feed.resource_type, "start": str(first), "end": str(last)})
    return True


def heal(
    svc: Services, store: FeedStore, owners: list[str], cov: dict[str, dict[str, CoverageDay]] | None = None
) -> bool:
    """Settle in-flight marks whose job is final, expired, or was never created (a crash between steps); ``cov``:
    the owners' coverage if already read. True when some mark changed."""
    changed = False
    for owner, days in (store.day_states(owners) if cov is None else cov).items():
        by_job: dict[str, list[str]] = {}
        for day, rec in days.items():
            if rec.state == "in_flight" and rec.job_sid:
                by_job.setdefault(rec.job_sid, []).append(day)
        for job_ref, job_days in by_job.items():
            changed = _heal_job(svc, store, owner, job_ref, job_days) or changed
    return changed


def _heal_job(svc: Services, store: FeedStore, owner: str, job_ref: str, days: list[str]) -> bool:
    adopted = job_ref.startswith("pending:")
    if adopted:
        token_hash = job_ref.removeprefix("pending:")
        if svc.tokens.pending_exists(token_hash):
            return False  # the submission's answer is awaited (or the poller will adopt it by token)
        sid = svc.tokens.job_for_token(token_hash)
        if sid is None:
            store.release_days(owner, job_ref, days)  # Twilio never created it: the days are missing again
            return True
        job_ref = sid
        store.mark_in_flight(owner, sid, days)
    job = svc.jobs.get_job(job_ref)
    if job is None:
        store.release_days(owner, job_ref, days)  # expired, or lost with its registry (S3 reconcile keeps what's there)
        return True
    if not job.state.final:
        return adopted  # the marks now name the job
    records = svc.days.get_days(job.job_sid)
    unfinished = [d for d in days if d not in records or not records[d].state.final]
    for day in set(days) - set(unfinished):
        coverage.record_job_day(store, svc.settings.sync, job, records[day])
    coverage.release_job(store, job, unfinished)
    return True
