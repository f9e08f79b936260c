"""`make demo`: one whole export job, end to end, on embedded defaults (no root, no Docker, no AWS, no Twilio).

Starts redis-server, a local S3 (SeaweedFS's `weed mini`, over TLS), the Twilio BulkExports sandbox, then the
service's own web, worker and poller processes from the Procfile; submits a job through the real API; the sandbox
finishes it and calls the signed webhook; the workers copy each day into S3. Prints what landed and the job's final
state, stops everything, and exits non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from devstack.procs import ManagedProcess, stop_all, wait_until
from devstack.relay import start_process, start_web
from devstack.s3_server import S3Server
from devstack.stack import local_stack

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "demo-admin-token-please-change"
BUCKET = "relay-demo"


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


def run(workdir: Path, resource_type: str, days: int) -> int:
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    procs: list[ManagedProcess] = []
    print(f"demo: logs in {workdir}")
    with local_stack(workdir, BUCKET, ADMIN_TOKEN, POLL_INTERVAL_SECONDS="2", WEB_CONCURRENCY="2") as stack:
        s3, env = stack.s3, stack.env
        stack.sandbox.set_scenario(
            days={f"{resource_type}/{_days_ago(3 + days - 1)}": {"outcome": "empty_file"}}, default_day_size=256 * 1024
        )
        try:
            web, url = start_web(env, workdir, port=stack.port)
            procs += [web, start_process("worker", env, workdir), start_process("poller", env, workdir)]
            print(f"demo: web {url}, worker and poller running; submitting a {days}-day {resource_type} export")
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            body = {"resource_type": resource_type, "start_day": _days_ago(3 + days - 1), "end_day": _days_ago(3)}
            r = requests.post(f"{url}/api/jobs", json=body, headers=headers, timeout=30)
            r.raise_for_status()
            sid = r.json()["job_sid"]
            started = time.monotonic()

            def final() -> dict | None:
                view = requests.get(f"{url}/api/jobs/{sid}", headers=headers, timeout=10).json()
                return view if view["state"] in ("done", "failed", "cancelled") else None

            view = wait_until(final, timeout=120, interval=0.5, what="the job to finish")
            assert isinstance(view, dict)
            print(
                f"demo: job finished in {time.monotonic() - started:.1f}s "
                f"({view['webhooks_received']} webhook delivery received)"
            )
            _print_table(view, s3)
            health = requests.get(f"{url}/health", timeout=10).json()
            print(f"health: {health['status']}")
            return 0 if view["state"] == "done" else 1
        except Exception as exc:
            print(f"demo FAILED: {exc}", file=sys.stderr)
            for p in procs:
                print(f"----- {p.name} -----\n{p.tail(30)}", file=sys.stderr)
            return 1
        finally:
            for p in procs:
                p.stop()
            stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--resource-type", default="Messages")
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()
    sys.exit(run(args.workdir, args.resource_type, args.days))


if __name__ == "__main__":
    main()
