"""Planner cost: CPU-ms and Redis round trips of one poll's planning for 4 feeds x 5 years (issue 11).

    .venv/bin/python -m bench.planner [--quick] [--days 1830] [--polls 20] [--profile] [--no-sandbox]

The real code on a real redis-server (``devstack.redis_server.RedisServer``, AOF ``everysec`` as deployed):
services built by ``app.services.build_services`` from settings loaded by ``app.platform.config.load_settings``, four
feeds (Messages, Calls, Conferences, Participants) of ``--days`` days each (1,830 = 5 years, ending today-2)
stored with ``FeedStore``, and each sample is one call of

- ``app.feeds.planner.plan`` (which runs ``app.feeds.planner.heal`` first): the poll's planning, the target figure;
- ``workers.tasks._keep_feeds_complete``: the poll's whole continuous-sync step (SYNC_FEEDS applied, the
  reconcile and sweep due-checks per feed, then ``plan``), with the reconcile and the sweep not due;
- ``app.feeds.coverage.report``: what ``GET /api/coverage`` (and ``relay coverage``) computes.

Cases:

- ``covered``: every day of every feed ``copied`` in coverage (a realistic record: job SID, key, size, sha256,
  records, create date), nothing to do.
- ``missing``: no day in coverage and today's quota counter used up (``QuotaStore.reserve``): every day is
  wanted and chunked, nothing can be submitted.
- ``backfill`` (needs the sandbox; ``--no-sandbox`` skips it): coverage empty and the quota free; the poll
  submits 366 days (4 jobs of ~92 days, newest first) to the Twilio sandbox over HTTP. Each sample starts from
  the same state (the quota counter and the in-flight marks are put back). Then ``in_flight``: the polls after
  it, 366 days in flight under 4 tracked jobs and the quota spent.

Measures: CPU time of this process (``time.process_time``: the planner is synchronous, so that is the
planner's own CPU, redis-py included), the redis-server's CPU (psutil), wall time, **round trips** counted by a
redis-py connection class that counts every ``send_packed_command`` (one per command or pipeline sent, health
checks included; a pipeline is one), and **commands** executed by Redis from ``INFO commandstats`` deltas
(read on a separate, uncounted connection; commands run inside Lua scripts are included). Each case runs the
same at 30-day feeds, so "round trips grow with days" shows as a difference. Medians over ``--polls`` polls
after one warm-up poll. ``--profile`` prints a cProfile of one poll per case (not measured).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import psutil
import redis

from app.feeds import coverage, planner
from app.feeds.store import CoverageDay, Feed
from app.platform import clock
from app.platform.config import load_settings
from app.services import Services, build_services
from bench.common import BenchResult, Figure, workdir
from devstack.redis_server import RedisServer
from devstack.sandbox_process import SandboxProcess

RESOURCE_TYPES = ("Messages", "Calls", "Conferences", "Participants")
FULL_DAYS = 1830
SMALL_DAYS = 30
TARGET_CPU_MS = 50.0
QUOTA = 366


class CountingConnection(redis.Connection):
    """A redis-py connection that counts round trips: each ``send_packed_command`` is one request sent and
    answered (a single command, or a whole pipeline), before its replies are read."""

    round_trips = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.round_trips += 1
        super().send_packed_command(command, check_health)


def _env(redis_url: str, sandbox: SandboxProcess | None) -> dict[str, str]:
    env = {
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": "AC" + "5a" * 16,
        "TWILIO_AUTH_TOKEN": "bench-auth-token",
        "S3_BUCKET": "relay-bench-planner",
        "TWILIO_DAILY_DAY_QUOTA": str(QUOTA),
        "LOG_LEVEL": "WARNING",
    }
    if sandbox is not None:
        env |= {
            "TWILIO_ACCOUNT_SID": sandbox.account_sid,
            "TWILIO_AUTH_TOKEN": sandbox.auth_token,
            "TWILIO_BULKEXPORTS_BASE_URL": sandbox.api_url,
        }
    return env


def counted_services(redis_url: str, sandbox: SandboxProcess | None) -> Services:
    """The relay's own services, their Redis connections made by CountingConnection."""
    svc = build_services(load_settings(_env(redis_url, sandbox)))
    for client in (svc.feeds.r, svc.jobs.r, svc.rq_connection):
        client.connection_pool.connection_class = CountingConnection  # before any connection is made
    return svc


def copied_record(rt: str, day: str) -> CoverageDay:
    """What record_job_day stores for a copied day (sizes and ids of realistic length)."""
    return CoverageDay(
        "copied",
        job_sid="JS" + "0123456789abcdef" * 2,
        key=f"twilio/{rt}/day={day}/{rt}-{day}.json.gz",
        size=12_345_678,
        sha256="ab" * 32,
        records=123_456,
        create_date=f"{day}T03:04:05Z",
    )


def seed(svc: Services, days: int, case: str) -> None:
    """Four feeds of ``days`` days ending today-2; coverage per case; the reconcile and sweep just done."""
    svc.feeds.r.flushdb()
    today = clock.utc_today()
    since = today - timedelta(days=2 + days - 1)
    for rt in RESOURCE_TYPES:
        feed = Feed(rt, since.isoformat(), account=svc.accounts.primary.sid)  # plan() skips unserved accounts
        svc.feeds.put_feed(feed)
        for what in ("reconcile", "sweep"):
            svc.feeds.mark_run(what, feed.owner, clock.now())
        if case == "covered":
            all_days = [(since + timedelta(days=i)).isoformat() for i in range(days)]
            svc.feeds.put_days(feed.owner, {d: copied_record(rt, d) for d in all_days})
    if case in ("missing", "in_flight"):
        svc.quota.reserve(today.isoformat(), QUOTA)


class Meter:
    """CPU (this process, redis-server), wall time, round trips and Redis commands of one call."""

    def __init__(self, server: RedisServer) -> None:
        self.stats = server.client(decode_responses=True)  # not counted: a plain redis.Connection
        self.redis_proc = psutil.Process(server.pid)

    def _commands(self) -> int:
        info = self.stats.info("commandstats")
        return sum(int(v["calls"]) for k, v in info.items() if k != "cmdstat_info")

    def _redis_cpu(self) -> float:
        t = self.redis_proc.cpu_times()
        return float(t.user + t.system)

    def measure(self, call: Callable[[], object]) -> dict[str, float]:
        commands, rtt, rcpu = self._commands(), CountingConnection.round_trips, self._redis_cpu()
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {
            "cpu_ms": cpu * 1000,
            "wall_ms": wall * 1000,
            "redis_cpu_ms": (self._redis_cpu() - rcpu) * 1000,
            "round_trips": CountingConnection.round_trips - rtt,
            "commands": self._commands() - commands,
        }


def sample(meter: Meter, call: Callable[[], object], polls: int, before: Callable[[], None] | None = None) -> dict:
    """One warm-up call, then ``polls`` measured ones (``before`` runs unmeasured before each); medians (the
    redis-server's CPU: the mean)."""
    runs = []
    for i in range(polls + 1):
        if before is not None:
            before()
        m = meter.measure(call)
        if i:
            runs.append(m)
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["redis_cpu_ms"] = statistics.mean(r["redis_cpu_ms"] for r in runs)  # the OS counts it in 10-ms ticks
    out["cpu_ms_max"] = max(r["cpu_ms"] for r in runs)
    out["round_trips_range"] = [min(r["round_trips"] for r in runs), max(r["round_trips"] for r in runs)]
    return out


def profile_text(call: Callable[[], object], lines: int = 25) -> str:
    prof = cProfile.Profile()
    prof.runcall(call)
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def poll_step(svc: Services) -> Callable[[], object]:
    from workers import tasks  # the poller's step; imported here: it pulls in the worker's S3 and copy code

    return lambda: tasks._keep_feeds_complete(svc)


def measure_case(svc: Services, meter: Meter, case: str, days: int, polls: int, profile: bool) -> dict[str, Any]:
    seed(svc, days, case)
    calls: dict[str, Callable[[], object]] = {
        "plan": lambda: planner.plan(svc, svc.feeds),
        "poll_step": poll_step(svc),
        "report": lambda: coverage.report(svc),
    }
    out: dict[str, Any] = {name: sample(meter, call, polls) for name, call in calls.items()}
    if profile:
        out["profile"] = {name: profile_text(call) for name, call in calls.items() if name != "poll_step"}
    return out


def backfill_case(svc: Services, meter: Meter, days: int, polls: int, profile: bool) -> dict[str, Any]:
    """The poll that submits a day's quota to the sandbox (from the same state every time), then the polls
    while those days are in flight."""
    seed(svc, days, "backfill")
    owners = [Feed(rt, "2000-01-01", account=svc.accounts.primary.sid).owner for rt in RESOURCE_TYPES]
    quota_key_day = clock.utc_today().isoformat()

    def fresh() -> None:  # unmeasured: today's quota free again and the previous submission's marks dropped
        svc.quota.release(quota_key_day, svc.quota.used(quota_key_day))
        for owner in owners:
            svc.feeds.r.delete(f"ber:cov:{owner}")

    submit = sample(meter, lambda: planner.plan(svc, svc.feeds), max(3, polls // 4), before=fresh)
    submitted = svc.feeds.last_plan()["submitted"]
    in_flight = {
        "plan": sample(meter, lambda: planner.plan(svc, svc.feeds), polls),
        "report": sample(meter, lambda: coverage.report(svc), polls),
    }
    result = {"submit": submit, "submitted": submitted, "in_flight": in_flight}
    if profile:
        fresh()
        result["profile"] = {"submit": profile_text(lambda: planner.plan(svc, svc.feeds))}
    return result


def run(
    quick: bool = False, days: int = FULL_DAYS, polls: int | None = None, profile: bool = False, sandbox: bool = True
) -> BenchResult:
    polls = polls or (5 if quick else 20)
    logging.getLogger("app").setLevel(logging.WARNING)
    work = workdir("planner")
    res = BenchResult("planner")
    with ExitStack() as stack:
        server = stack.enter_context(RedisServer(work / "redis", fsync="everysec"))
        sb = stack.enter_context(SandboxProcess(log_path=work / "sandbox.log")) if sandbox else None
        if sb is not None:
            sb.set_scenario(step_seconds=3600, daily_quota_days=1_000_000)  # jobs stay in progress; no refusal
        svc = counted_services(server.url, sb)
        meter = Meter(server)
        details: dict[str, Any] = {"days_per_feed": days, "feeds": len(RESOURCE_TYPES), "polls": polls}
        for case in ("covered", "missing"):
            details[case] = measure_case(svc, meter, case, days, polls, profile)
            details[f"{case}_{SMALL_DAYS}_days"] = measure_case(svc, meter, case, SMALL_DAYS, polls, False)
        if sb is not None:
            details["backfill"] = backfill_case(svc, meter, days, polls, profile)
    res.details = details
    add_figures(res, details, days)
    return res


def add_figures(res: BenchResult, d: dict[str, Any], days: int) -> None:
    n = len(RESOURCE_TYPES)
    label = f"{n} x {days} days"
    for case in ("covered", "missing"):
        big, small = d[case], d[f"{case}_{SMALL_DAYS}_days"]
        res.add(
            Figure(f"plan CPU per poll, {case}", big["plan"]["cpu_ms"], "ms", TARGET_CPU_MS, "<=", label),
            Figure(f"plan round trips per poll, {case}", big["plan"]["round_trips"], "", note=label),
            Figure(
                f"plan round trips added by {days - SMALL_DAYS} more days per feed, {case}",
                big["plan"]["round_trips"] - small["plan"]["round_trips"],
                "",
                0,
                "<=",
                f"{days} vs {SMALL_DAYS} days per feed: bounded per feed, not per day",
            ),
            Figure(f"plan Redis commands per poll, {case}", big["plan"]["commands"], "", note="INFO commandstats"),
            Figure(f"plan redis-server CPU per poll, {case}", big["plan"]["redis_cpu_ms"], "ms", note="mean"),
            Figure(f"poll step CPU, {case}", big["poll_step"]["cpu_ms"], "ms", TARGET_CPU_MS, "<=", "plan + checks"),
            Figure(f"poll step round trips, {case}", big["poll_step"]["round_trips"], ""),
            Figure(f"coverage report CPU, {case}", big["report"]["cpu_ms"], "ms", note="GET /api/coverage"),
            Figure(f"coverage report round trips, {case}", big["report"]["round_trips"], ""),
        )
    if "backfill" in d:
        b = d["backfill"]
        res.add(
            Figure("plan CPU, poll submitting 366 days", b["submit"]["cpu_ms"], "ms", note="4 jobs to the sandbox"),
            Figure("plan round trips, poll submitting 366 days", b["submit"]["round_trips"], ""),
            Figure(
                "plan CPU per poll, 366 days in flight", b["in_flight"]["plan"]["cpu_ms"], "ms", TARGET_CPU_MS, "<="
            ),
            Figure("plan round trips per poll, 366 days in flight", b["in_flight"]["plan"]["round_trips"], ""),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer polls per figure")
    parser.add_argument("--days", type=int, default=FULL_DAYS, help="days per feed (default 1830: 5 years)")
    parser.add_argument("--polls", type=int, help="measured polls per figure (default 20; 5 with --quick)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one poll per case")
    parser.add_argument("--no-sandbox", action="store_true", help="skip the backfill case (no sandbox process)")
    args = parser.parse_args()
    if not SMALL_DAYS < args.days <= 20 * 366:
        parser.error(f"--days must be {SMALL_DAYS + 1}..{20 * 366}")
    if args.polls is not None and not 1 <= args.polls <= 1000:
        parser.error("--polls must be 1..1000")
    res = run(args.quick, args.days, args.polls, args.profile, not args.no_sandbox)
    profiles = _pop_profiles(res.details)
    for name, text in profiles.items():
        print(f"===== cProfile: {name} =====\n{text}", file=sys.stderr)
    print(json.dumps(res.to_json(), indent=2))
    sys.exit(0 if res.passed else 1)


def _pop_profiles(details: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for case, value in details.items():
        if isinstance(value, dict) and "profile" in value:
            for name, text in value.pop("profile").items():
                found[f"{case} {name}"] = text
    return found


if __name__ == "__main__":
    main()
