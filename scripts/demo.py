"""`make demo`: one whole export job, then a feed catching up, end to end on embedded defaults (no root, no Docker,
no AWS, no Twilio).

Starts redis-server, a local S3 (SeaweedFS's `weed mini`, over TLS), the Twilio BulkExports sandbox, then the
service's own web, worker and poller processes from the Procfile.

1. One job: submitted through the real API; the sandbox finishes it and calls the signed webhook; the workers copy
   each day into S3. Prints what landed and the job's final state.
2. Continuous sync: a feed ``--feed-days`` days back (default 10) with a quota of ``--quota`` requested days per
   UTC day (default 4, in the sandbox and the relay alike). The sandbox's simulated calendar and the relay's clock
   (``devstack.calendar``) move on one day at a time; the poller alone submits, newest days first, within the
   quota; after each simulated day the ``relay coverage`` calendar is printed, until the feed is complete.

Stops everything, and exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

from devstack.calendar import Calendar
from devstack.procs import ManagedProcess, stop_all, wait_until
from devstack.relay import REPO_ROOT, process_env, start_process, start_web
from devstack.s3_server import S3Server
from devstack.sandbox_process import SandboxProcess
from devstack.stack import LocalStack, local_stack

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "demo-admin-token-please-change"
BUCKET = "relay-demo"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _days_ago(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


def _print_table(view: dict, s3: S3Server) -> None:
    print(f"\njob {view['job_sid']}  {view['resource_type']}  {view['start_day']}..{view['end_day']}")
    print(f"{'day':<12} {'state':<8} {'size':>9} {'records':>8}  {'sha256':<16}  key")
    client = s3.client()
    for d in view["days"]:
        if d["key"]:
            head = client.head_object(Bucket=BUCKET, Key=d["key"])  # what is really in S3, not what we recorded
            tags = client.get_object_tagging(Bucket=BUCKET, Key=d["key"])["TagSet"]  # sha256/records: tags
            size, sha = head["ContentLength"], next((t["Value"] for t in tags if t["Key"] == "sha256"), "")
        else:
            size, sha = 0, ""
        print(f"{d['day']:<12} {d['state']:<8} {size:>9} {d['records'] or 0:>8}  {sha[:16]:<16}  {d['key'] or '-'}")
    print(f"\nfinal state: {view['state']}   manifest: {view['manifest_key']}")


def run(
    workdir: Path, resource_type: str, days: int, feed_type: str, feed_days: int, quota: int, stay: bool = False
) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    procs: list[ManagedProcess] = []
    started = time.monotonic()
    print(f"demo: logs in {workdir}")
    settings = {"POLL_INTERVAL_SECONDS": "1", "WEB_CONCURRENCY": "2", "TWILIO_DAILY_DAY_QUOTA": str(quota)}
    offset_file = workdir / "clock-offset"  # the relay's calendar follows the sandbox's (part 2)
    with local_stack(workdir, BUCKET, ADMIN_TOKEN, RELAY_CLOCK_OFFSET_FILE=str(offset_file), **settings) as stack:
        s3, env = stack.s3, stack.env
        stack.sandbox.set_scenario(
            days={f"{resource_type}/{_days_ago(3 + days - 1)}": {"outcome": "empty_file"}},
            default_day_size=256 * 1024,
            daily_quota_days=quota,
        )
        try:
            web, url = start_web(env, workdir, port=stack.port)
            procs += [web, start_process("worker", env, workdir), start_process("poller", env, workdir)]
            print(f"demo: web {url}, worker and poller running")
            ok = one_job(url, s3, resource_type, days)
            ok = feed_catch_up(stack, url, Calendar(stack.sandbox, offset_file), feed_type, feed_days, quota) and ok
            health = requests.get(f"{url}/health", timeout=10).json()
            print(f"\nhealth: {health['status']}   demo took {time.monotonic() - started:.0f}s")
            if stay:
                stay_up(url, procs)
            return 0 if ok else 1
        except Exception as exc:
            print(f"demo FAILED: {exc}", file=sys.stderr)
            for p in procs:
                print(f"----- {p.name} -----\n{p.tail(30)}", file=sys.stderr)
            return 1
        finally:
            for p in procs:
                p.stop()
            stop_all()


def stay_up(url: str, procs: list[ManagedProcess]) -> None:
    """``make up``: keep the stack running for a person to look at, until Ctrl-C (or a process exits)."""
    print(
        f"\n== the local stack keeps running (Ctrl-C stops it) ==\n"
        f"console:  {url}/console   sign in with the admin token: {ADMIN_TOKEN}\n"
        f"API:      curl -H 'Authorization: Bearer {ADMIN_TOKEN}' {url}/api/coverage\n"
        f"health:   {url}/health    metrics: {url}/metrics"
    )
    try:
        wait_until(lambda: not all(p.alive() for p in procs), timeout=10**9, interval=1, what="Ctrl-C")
        print("demo: a process exited; stopping", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ndemo: stopping")


def one_job(url: str, s3: S3Server, resource_type: str, days: int) -> bool:
    """Part 1: one job through the API, finished by the sandbox, its webhook, the copies; True when done."""
    print(f"\n== part 1: one {days}-day {resource_type} export job ==")
    body = {"resource_type": resource_type, "start_day": _days_ago(3 + days - 1), "end_day": _days_ago(3)}
    r = requests.post(f"{url}/api/jobs", json=body, headers=HEADERS, timeout=30)
    r.raise_for_status()
    sid = r.json()["job_sid"]
    started = time.monotonic()

    def final() -> dict | None:
        view = requests.get(f"{url}/api/jobs/{sid}", headers=HEADERS, timeout=10).json()
        return view if view["state"] in ("done", "failed", "cancelled") else None

    view = wait_until(final, timeout=120, interval=0.5, what="the job to finish")
    assert isinstance(view, dict)
    print(
        f"demo: job finished in {time.monotonic() - started:.1f}s "
        f"({view['webhooks_received']} webhook delivery received)"
    )
    _print_table(view, s3)
    return bool(view["state"] == "done")


def feed_catch_up(stack: LocalStack, url: str, cal: Calendar, rt: str, feed_days: int, quota: int) -> bool:
    """Part 2: a feed ``feed_days`` back, ``quota`` days per simulated UTC day, the calendar moved a day at a time
    until the poller has brought every day in; the ``relay coverage`` calendar after each day."""
    sandbox = stack.sandbox
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50, default_day_size=16 * 1024)
    cal.set_today(datetime.now(UTC).date() + timedelta(days=1))  # forward: a fresh quota day for both clocks
    since = cal.today - timedelta(days=2 + feed_days - 1)
    print(f"\n== part 2: continuous sync: a {rt} feed from {since} ({feed_days} days), {quota} days/UTC day ==")
    r = requests.put(f"{url}/api/feeds/{rt}", json={"since": since.isoformat()}, headers=HEADERS, timeout=10)
    r.raise_for_status()
    first = cal.today
    for _ in range(math.ceil((feed_days - 1) / (quota - 1)) + 2):  # each new day adds one more to fetch
        wait_until(lambda: _day_settled(url, sandbox, cal.today, rt, quota), timeout=60, interval=0.3, what="a day")
        print(f"\n-- simulated day {(cal.today - first).days + 1}: relay coverage {rt} --")
        print(_coverage_text(stack.env, rt))
        if not _coverage(url, rt)["counts"]["missing"]:
            break
        cal.advance_days(1)
    feed = _coverage(url, rt)
    keys = _stored_days(stack.s3, rt)
    usage = {d: n for d, n in sandbox.quota_usage().items() if d >= first.isoformat()}
    print(f"\ndemo: {rt} complete: {feed['counts']['copied']} days copied, {len(keys)} day files in s3://{BUCKET}")
    print(f"demo: days requested per simulated UTC day (quota {quota}): {usage}")
    return not feed["counts"]["missing"] and not feed["counts"]["in_flight"] and feed["counts"]["copied"] == len(keys)


def _coverage(url: str, rt: str) -> dict:
    doc = requests.get(f"{url}/api/coverage", params={"resource_type": rt}, headers=HEADERS, timeout=10).json()
    return dict(doc["feeds"][0])


def _day_settled(url: str, sandbox: SandboxProcess, today: date, rt: str, quota: int) -> bool:
    """Nothing in flight, and today's quota spent or nothing missing: the simulated day has done what it can."""
    counts = _coverage(url, rt)["counts"]
    used = sandbox.quota_usage().get(today.isoformat(), 0)
    return not counts["in_flight"] and (used >= quota or not counts["missing"])


def _coverage_text(env: dict[str, str], rt: str) -> str:
    """What an operator sees: ``flask --app app relay coverage RT`` against the running relay."""
    argv = [sys.executable, "-m", "flask", "--app", "app", "relay", "coverage", rt]
    cli_env = {**os.environ, **process_env(env)}
    done = subprocess.run(argv, env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    return done.stdout.rstrip() if done.returncode == 0 else f"(relay coverage failed: {done.stderr[-500:]})"


def _stored_days(s3: S3Server, rt: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"twilio/{rt}/day=")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--resource-type", default="Messages")
    parser.add_argument("--days", type=int, default=3, help="days of the one job (at most --quota)")
    parser.add_argument("--feed-resource-type", default="Calls")
    parser.add_argument("--feed-days", type=int, default=10, help="how far back the feed starts (default 10)")
    parser.add_argument("--quota", type=int, default=4, help="requested days per simulated UTC day (default 4)")
    parser.add_argument("--stay", action="store_true", help="keep the stack running afterwards (make up)")
    args = parser.parse_args()
    if not 2 <= args.quota <= 366 or not 1 <= args.days <= args.quota or not 1 <= args.feed_days <= 60:
        parser.error("need 1 <= --days <= --quota, 2 <= --quota <= 366 and 1 <= --feed-days <= 60")
    code = run(
        args.workdir, args.resource_type, args.days, args.feed_resource_type, args.feed_days, args.quota, args.stay
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
