"""Many accounts (issue 14): CPU and Redis round trips of one poll's planning for 200 accounts x 4 resource types.

    .venv/bin/python -m bench.accounts [--quick] [--accounts 200] [--days 366] [--polls 10] [--profile] [--no-submit]

The real code on a real redis-server (``devstack.redis_server.RedisServer``, AOF ``everysec`` as deployed) and
the Twilio sandbox (``devstack.sandbox_process.SandboxProcess``) over HTTP. The sandbox's default account is
the parent; ``add_subaccount`` gives it ``--accounts`` - 1 subaccounts (one family: one daily quota). The relay's
services are built by ``app.services.build_services`` from ``app.platform.config.load_settings`` with
``TWILIO_DISCOVER_SUBACCOUNTS=true`` (the accounts come from the sandbox's Accounts API, as in production),
``S3_KEY_TEMPLATE`` with ``account={account_sid}`` and ``SYNC_FEEDS`` naming the 4 resource types from
``--days`` days before today-2: the first poll step makes the 4 x accounts feeds, as a deployment's would.

Each sample is one call of

- ``app.feeds.planner.plan`` (``heal`` included): the poll's planning, target <= 1 s CPU;
- ``workers.tasks._keep_feeds_complete``: the poll's continuous-sync step (account list, SYNC_FEEDS applied to
  every account, reconcile and sweep due-checks per feed, then ``plan``), target <= 1 s CPU;
- ``app.feeds.coverage.report``: ``GET /api/coverage``, and each poll's feed summaries (``app.feeds.summary.refresh``,
  which ``/health``, the ``/metrics`` feed gauges and ``events.feeds_lagging`` read).

Cases: ``covered`` (every day of every feed copied, realistic records), ``missing`` (no day in coverage and the
family's quota for today used up: every day wanted, nothing can be submitted), ``sweeps_due`` (covered, and every
feed's Twilio day-list sweep due: the poll enqueues one sweep task per feed; the queue is emptied between
samples). Each runs first with ``SMALL_ACCOUNTS`` accounts, then the sandbox gets the other subaccounts and a
forced discovery refresh (measured) finds them: the difference in round trips is the per-account cost.
``covered`` is measured again with the same accounts listed in a ``TWILIO_ACCOUNTS_FILE`` (discovery off).
Without ``--no-submit``: the poll that spends a fresh day's quota on empty feeds (sandbox jobs; the same state
before each sample) and the polls while those jobs are in flight.

Measures as bench/planner.py (whose meter this reuses): process CPU (``time.process_time``), redis-server CPU
(psutil), wall time, round trips (a counting redis-py connection class), Redis commands (``INFO
commandstats``). Medians over ``--polls`` polls after one warm-up poll; ``--profile`` prints a cProfile of one
poll step per case at full size (not measured).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from app.feeds import coverage, declared, planner
from app.platform import clock
from app.platform.config import load_settings
from app.services import Services, build_services
from bench.common import BenchResult, Figure, workdir
from bench.planner import CountingConnection, Meter, copied_record, profile_text, sample
from devstack.redis_server import RedisServer
from devstack.sandbox_process import SandboxProcess

RESOURCE_TYPES = ("Messages", "Calls", "Conferences", "Participants")
ACCOUNTS = 200
SMALL_ACCOUNTS = 20
DAYS = 366
QUOTA = 366
TARGET_CPU_MS = 1000.0
KEY_TEMPLATE = "{prefix}account={account_sid}/{resource_type}/day={day}/{resource_type}-{day}.json.gz"
CASES = ("covered", "missing", "sweeps_due")


def relay_env(redis_url: str, sb: SandboxProcess, days: int, accounts_file: Path | None = None) -> dict[str, str]:
    since = clock.utc_today() - timedelta(days=2 + days - 1)
    env = {
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": sb.account_sid,
        "TWILIO_AUTH_TOKEN": sb.auth_token,
        "TWILIO_BULKEXPORTS_BASE_URL": sb.api_url,
        "TWILIO_API_BASE_URL": sb.api_url,
        "S3_BUCKET": "relay-bench-accounts",
        "S3_KEY_TEMPLATE": KEY_TEMPLATE,
        "TWILIO_DAILY_DAY_QUOTA": str(QUOTA),
        "SYNC_FEEDS": ",".join(f"{rt}:{since.isoformat()}" for rt in RESOURCE_TYPES),
        "SWEEP_INTERVAL_SECONDS": "3600",  # sweeps are made due on purpose (case sweeps_due), not by the clock
        "LOG_LEVEL": "WARNING",
    }
    if accounts_file is None:
        env["TWILIO_DISCOVER_SUBACCOUNTS"] = "true"
    else:
        env["TWILIO_ACCOUNTS_FILE"] = str(accounts_file)
    return env


def counted_services(env: dict[str, str]) -> Services:
    """The relay's own services, their Redis connections made by CountingConnection."""
    svc = build_services(load_settings(env))
    for client in (svc.feeds.r, svc.jobs.r, svc.rq_connection):
        client.connection_pool.connection_class = CountingConnection  # before any connection is made
    return svc


def add_subaccounts(sb: SandboxProcess, count: int, start: int) -> list[dict[str, Any]]:
    return [sb.add_subaccount(sb.account_sid, friendly_name=f"team-{n:03d}") for n in range(start, start + count)]


def accounts_file(path: Path, sb: SandboxProcess, subs: list[dict[str, Any]]) -> Path:
    """The same family as a TWILIO_ACCOUNTS_FILE: every subaccount with its token and its parent."""
    entries = [
        {"sid": s["sid"], "auth_token": s["auth_token"], "label": s["friendly_name"], "parent_sid": sb.account_sid}
        for s in subs
    ]
    path.write_text(json.dumps(entries))
    path.chmod(0o600)
    return path


def poll_step(svc: Services) -> Callable[[], object]:
    from workers import tasks  # the poller's step; imported here: it pulls in the worker's S3 and copy code

    return lambda: tasks._keep_feeds_complete(svc)


def make_feeds(svc: Services) -> list[str]:
    """What a poll step does first (unmeasured): discovery, then SYNC_FEEDS applied to every account served."""
    declared.apply_env_feeds(svc.feeds, svc.settings.sync, [a.sid for a in svc.accounts.all()])
    return [f.owner for f in svc.feeds.list_feeds()]


def seed(svc: Services, owners: list[str], days: int, case: str) -> None:
    """Coverage per case (every day copied, or none with today's family quota spent); reconcile and sweep
    marked just done (sweeps_due: never done)."""
    r, today = svc.feeds.r, clock.utc_today()
    first = today - timedelta(days=2 + days - 1)
    all_days = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    clear(svc, owners)
    with r.pipeline(transaction=False) as p:
        for owner in owners:
            rt = owner.rpartition(":")[2]
            p.hset("ber:syncstate", f"reconcile:{owner}", str(clock.now()))
            if case != "sweeps_due":
                p.hset("ber:syncstate", f"sweep:{owner}", str(clock.now()))
            if case != "missing":
                p.hset(f"ber:cov:{owner}", mapping={d: copied_record(rt, d).to_json() for d in all_days})
        p.execute()
    if case == "missing":
        svc.quota.reserve(today.isoformat(), QUOTA, family=svc.accounts.primary.family)


def clear(svc: Services, owners: list[str]) -> None:
    """Coverage, today's family quota and RQ's keys (queued tasks) back to nothing; feeds and accounts stay."""
    today, family = clock.utc_today().isoformat(), svc.accounts.primary.family
    svc.quota.release(today, svc.quota.used(today, family), family)
    keys = [*(f"ber:cov:{o}" for o in owners), *svc.rq_connection.scan_iter("rq:*", count=1000)]
    svc.feeds.r.delete(*keys)


def unsweep(svc: Services, owners: list[str]) -> Callable[[], None]:
    """Before each sweeps_due sample (unmeasured): the sweep tasks queued by the previous one gone, every sweep
    due again."""

    def reset() -> None:
        keys = list(svc.rq_connection.scan_iter("rq:*", count=1000))
        if keys:
            svc.rq_connection.delete(*keys)
        svc.feeds.r.hdel("ber:syncstate", *(f"sweep:{o}" for o in owners))

    return reset


def measure_case(
    svc: Services, meter: Meter, case: str, owners: list[str], days: int, polls: int, profile: bool = False
) -> dict[str, Any]:
    seed(svc, owners, days, case)
    out: dict[str, Any] = {}
    if case == "sweeps_due":
        out["poll_step"] = sample(meter, poll_step(svc), polls, before=unsweep(svc, owners))
        out["sweeps_queued"] = svc.enqueuer.control.count  # by the last sample: one per feed
        if profile:
            unsweep(svc, owners)()
    else:
        calls: dict[str, Callable[[], object]] = {
            "plan": lambda: planner.plan(svc, svc.feeds),
            "poll_step": poll_step(svc),
            "report": lambda: coverage.report(svc),
        }
        out = {name: sample(meter, call, polls) for name, call in calls.items()}
    if profile:
        out["profile"] = profile_text(poll_step(svc), 30)
    return out


def measure_discovery(svc: Services, meter: Meter, polls: int) -> dict[str, Any]:
    """A forced refresh of the subaccount list (Accounts API, paged by 100): every ACCOUNTS_REFRESH_SECONDS."""
    out = sample(meter, lambda: svc.accounts.refresh(force=True), polls)
    out["accounts"] = len(svc.accounts.all())
    return out


def submit_case(svc: Services, meter: Meter, owners: list[str], polls: int) -> dict[str, Any]:
    """The poll that spends a fresh UTC day's family quota on empty feeds (the same state before each sample),
    then the polls while those jobs are in flight (quota spent)."""
    seed(svc, owners, 1, "covered")  # marks reconcile and sweep as done
    submit = sample(meter, lambda: planner.plan(svc, svc.feeds), polls, before=lambda: clear(svc, owners))
    submitted = svc.feeds.last_plan()["submitted"]
    in_flight = {
        "plan": sample(meter, lambda: planner.plan(svc, svc.feeds), polls),
        "poll_step": sample(meter, poll_step(svc), polls),
    }
    held = {o: days for o, days in svc.feeds.day_states(owners).items() if days}
    return {
        "submit": submit,
        "jobs": len(submitted),
        "days": sum((date.fromisoformat(e) - date.fromisoformat(s)).days + 1 for _, s, e in submitted),
        "feeds_served": len(held),
        "accounts_served": len({o.rpartition(":")[0] for o in held}),
        "feeds_served_by_type": dict(Counter(o.rpartition(":")[2] for o in held)),
        "in_flight": in_flight,
    }


def run(
    quick: bool = False,
    accounts: int = ACCOUNTS,
    days: int | None = None,
    polls: int | None = None,
    profile: bool = False,
    submit: bool = True,
) -> BenchResult:
    days = days or (60 if quick else DAYS)
    polls = polls or (3 if quick else 10)
    logging.getLogger("app").setLevel(logging.WARNING)
    work = workdir("accounts")
    res = BenchResult("accounts")
    details: dict[str, Any] = {"accounts": accounts, "small_accounts": SMALL_ACCOUNTS, "days_per_feed": days}
    details |= {"resource_types": len(RESOURCE_TYPES), "polls": polls, "quota": QUOTA}
    with ExitStack() as stack:
        server = stack.enter_context(RedisServer(work / "redis", fsync="everysec"))
        sb = stack.enter_context(SandboxProcess(log_path=work / "sandbox.log"))
        sb.set_scenario(step_seconds=3600, daily_quota_days=1_000_000)  # jobs stay in progress; no refusal
        subs = add_subaccounts(sb, SMALL_ACCOUNTS - 1, 0)
        svc, meter = counted_services(relay_env(server.url, sb, days)), Meter(server)
        owners = make_feeds(svc)
        details["small"] = {case: measure_case(svc, meter, case, owners, days, polls) for case in CASES}
        details["small"]["feeds"] = len(owners)
        subs += add_subaccounts(sb, accounts - SMALL_ACCOUNTS, SMALL_ACCOUNTS - 1)
        details["discovery"] = measure_discovery(svc, meter, polls)
        owners = make_feeds(svc)
        details["feeds"] = len(owners)
        for case in CASES:
            details[case] = measure_case(svc, meter, case, owners, days, polls, profile)
        file_svc = counted_services(relay_env(server.url, sb, days, accounts_file(work / "accounts.json", sb, subs)))
        details["file_covered"] = measure_case(file_svc, meter, "covered", owners, days, polls)
        if submit:
            details["submit"] = submit_case(svc, meter, owners, max(2, polls // 3))
    res.details = details
    add_figures(res, details)
    return res


def add_figures(res: BenchResult, d: dict[str, Any]) -> None:
    for case in ("covered", "missing"):
        res.add(*case_figures(d, case))
    sweeps, listed, found = d["sweeps_due"], d["file_covered"], d["discovery"]
    res.add(
        Figure("poll step CPU, every sweep due", sweeps["poll_step"]["cpu_ms"], "ms", TARGET_CPU_MS, "<="),
        Figure("poll step round trips, every sweep due", sweeps["poll_step"]["round_trips"], ""),
        Figure(
            "poll step CPU, covered, accounts from TWILIO_ACCOUNTS_FILE",
            listed["poll_step"]["cpu_ms"],
            "ms",
            TARGET_CPU_MS,
            "<=",
        ),
        Figure("discovery refresh CPU", found["cpu_ms"], "ms", note=f"{found['accounts']} accounts"),
        Figure("discovery refresh wall time", found["wall_ms"], "ms", note="Accounts API, pages of 100"),
    )
    if "submit" in d:
        res.add(*submit_figures(d["submit"]))


def _added(name: str, big: dict[str, Any], small: dict[str, Any], step: str, note: str) -> Figure:
    """Round trips the extra accounts add to ``step`` (target 0: bounded per poll, not per account)."""
    return Figure(name, big[step]["round_trips"] - small[step]["round_trips"], "", 0, "<=", note)


def case_figures(d: dict[str, Any], case: str) -> list[Figure]:
    label = f"{d['accounts']} accounts x {d['resource_types']} = {d['feeds']} feeds of {d['days_per_feed']} days"
    more, big, small = d["accounts"] - d["small_accounts"], d[case], d["small"][case]
    bounded = f"{d['accounts']} vs {d['small_accounts']} accounts: bounded per poll, not per feed"
    return [
        Figure(f"plan CPU per poll, {case}", big["plan"]["cpu_ms"], "ms", TARGET_CPU_MS, "<=", label),
        Figure(f"plan round trips per poll, {case}", big["plan"]["round_trips"], ""),
        _added(f"plan round trips added by {more} more accounts, {case}", big, small, "plan", bounded),
        Figure(f"plan redis-server CPU per poll, {case}", big["plan"]["redis_cpu_ms"], "ms", note="mean"),
        Figure(f"poll step CPU, {case}", big["poll_step"]["cpu_ms"], "ms", TARGET_CPU_MS, "<=", "plan + checks"),
        Figure(f"poll step round trips, {case}", big["poll_step"]["round_trips"], ""),
        _added(f"poll step round trips added by {more} more accounts, {case}", big, small, "poll_step", bounded),
        Figure(f"coverage report CPU, {case}", big["report"]["cpu_ms"], "ms", note="GET /api/coverage, /metrics"),
        Figure(f"coverage report round trips, {case}", big["report"]["round_trips"], ""),
    ]


def submit_figures(s: dict[str, Any]) -> list[Figure]:
    jobs = s["jobs"]
    return [
        Figure(
            "plan CPU, poll spending a fresh day's quota",
            s["submit"]["cpu_ms"],
            "ms",
            TARGET_CPU_MS,
            "<=",
            f"{jobs} jobs, {s['days']} days, to the sandbox: once per UTC day",
        ),
        Figure("plan wall time, poll spending a fresh day's quota", s["submit"]["wall_ms"], "ms"),
        Figure("plan round trips, poll spending a fresh day's quota", s["submit"]["round_trips"], ""),
        Figure(
            f"plan CPU per poll, {jobs} jobs in flight", s["in_flight"]["plan"]["cpu_ms"], "ms", TARGET_CPU_MS, "<="
        ),
        Figure(f"plan round trips per poll, {jobs} jobs in flight", s["in_flight"]["plan"]["round_trips"], ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60-day feeds, 3 polls per figure")
    parser.add_argument("--accounts", type=int, default=ACCOUNTS, help="accounts in the family (default 200)")
    parser.add_argument("--days", type=int, help=f"days per feed (default {DAYS}; 60 with --quick)")
    parser.add_argument("--polls", type=int, help="measured polls per figure (default 10; 3 with --quick)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one poll step per case")
    parser.add_argument("--no-submit", action="store_true", help="skip the polls that submit to the sandbox")
    args = parser.parse_args()
    if not SMALL_ACCOUNTS < args.accounts <= 1000:
        parser.error(f"--accounts must be {SMALL_ACCOUNTS + 1}..1000")
    if args.days is not None and not 1 <= args.days <= 5 * 366:
        parser.error(f"--days must be 1..{5 * 366}")
    if args.polls is not None and not 1 <= args.polls <= 100:
        parser.error("--polls must be 1..100")
    res = run(args.quick, args.accounts, args.days, args.polls, args.profile, not args.no_submit)
    for case in CASES:
        text = res.details.get(case, {}).pop("profile", None)
        if text:
            print(f"===== cProfile: poll step, {case} =====\n{text}", file=sys.stderr)
    print(json.dumps(res.to_json(), indent=2))
    sys.exit(0 if res.passed else 1)


if __name__ == "__main__":
    main()
