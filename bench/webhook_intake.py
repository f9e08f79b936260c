"""Webhook intake throughput and latency, against the same server's ``/livez`` in the same run.

    .venv/bin/python -m bench.webhook_intake [--quick] [--connections 16] [--duration 8] [--rounds 3]

The server is the Procfile ``web`` line (gunicorn with deploy/gunicorn.conf.py, its default worker count
one per usable CPU) on 127.0.0.1, with Redis (AOF ``everysec`` as in deploy/compose.yaml), moto S3 and the Twilio
sandbox behind it, and no RQ worker. One job is submitted through the real API and its webhook is delivered
once, which queues its sync task; from then on every delivery is the steady state this measures: a signed,
valid, *duplicate* delivery (token and sync-status lookup, HMAC-SHA1 signature check, webhook counter, log
line, 204: whatever app/intake.py does for it). The queue is checked to still hold exactly that one sync.
The signature is computed once with twilio's ``RequestValidator.compute_signature`` (Twilio signs the URL it
calls plus the form parameters).

The load generator (bench.loadgen) is a second process: 16 threads, one persistent connection each, closed
loop. Phases alternate ``/livez`` and the webhook ``--rounds`` times; figures aggregate the rounds. CPU of
gunicorn (master + workers), Redis and the generator is accounted over each measured window, so the report
says which of them bound the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from rq import Queue
from twilio.request_validator import RequestValidator

from app.queueing import CONTROL_QUEUE
from bench.common import BenchResult, CpuMeter, Figure, child_env, percentile, workdir
from bench.profiling import PySpy, summarize
from devstack.procs import ManagedProcess, python_argv, stop_all
from devstack.relay import start_web
from devstack.stack import local_stack

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
BUCKET = "relay-bench"
TARGET_RATIO = 0.8
TARGET_P99_MS = 25.0


def _day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _run_loadgen(
    port: int,
    specs: list[dict[str, Any]],
    connections: int,
    duration: float,
    warmup: float,
    rounds: int,
    cpu_groups: dict[str, list[int]],
    log_path: Path,
) -> list[dict[str, Any]]:
    """Run bench.loadgen; account CPU per measured window; return its phases (each with ``cpu``)."""
    argv = python_argv(
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--rounds",
        str(rounds),
        *[a for s in specs for a in ("--spec", json.dumps(s))],
    )
    deadline = rounds * len(specs) * (warmup + duration + 25) + 30
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, env=child_env(), start_new_session=True)
    watchdog = threading.Timer(deadline, proc.kill)  # bounds the run whatever happens
    watchdog.start()
    cpu_per_phase: list[dict[str, float]] = []
    meter = CpuMeter({**cpu_groups, "loadgen": [proc.pid]})
    done: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            event = json.loads(raw)
            if event["event"] == "measure":
                meter.start()
            elif event["event"] == "stop":
                cpu_per_phase.append(meter.stop())
            elif event["event"] == "end":
                print(
                    f"  {event['name']:<8} {event['rps']:8.0f} req/s  p50 {event['p50_ms']:6.2f} ms  "
                    f"p99 {event['p99_ms']:6.2f} ms  unexpected {event['unexpected_status']}  errors {event['errors']}",
                    flush=True,
                )
            elif event["event"] == "done":
                done = event
        proc.wait(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    if done is None or proc.returncode != 0:
        raise RuntimeError(f"load generator failed (exit {proc.returncode}); see {log_path}")
    phases: list[dict[str, Any]] = done["phases"]
    for phase, cpu in zip(phases, cpu_per_phase, strict=True):
        phase["cpu"] = cpu
    return phases


def _aggregate(phases: list[dict[str, Any]], name: str) -> dict[str, Any]:
    mine = [p for p in phases if p["name"] == name]
    latencies = sorted(x for p in mine for x in p["latencies_ms"])
    seconds = sum(p["seconds"] for p in mine)
    cpu_keys = mine[0]["cpu"].keys()
    out: dict[str, Any] = {
        "rps": sum(p["ok"] for p in mine) / seconds,
        "requests": len(latencies),
        "ok": sum(p["ok"] for p in mine),
        "unexpected_status": sum(p["unexpected_status"] for p in mine),
        "errors": sum(sum(p["errors"].values()) for p in mine),
        "connects": sum(p["connects"] for p in mine),
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "rps_per_round": [round(p["rps"], 1) for p in mine],
        "cpu_cores": {k: round(sum(p["cpu"][k] for p in mine) / len(mine), 2) for k in cpu_keys},
    }
    ok = max(out["ok"], 1)
    # CPU milliseconds each server process group spent per answered request (whole measured windows).
    out["cpu_ms_per_request"] = {
        k: round(1000 * sum(p["cpu"][k] * p["seconds"] for p in mine) / ok, 3)
        for k in cpu_keys
        if k not in ("other", "loadgen")
    }
    return out


def run(
    quick: bool = False,
    connections: int = 16,
    duration: float | None = None,
    rounds: int | None = None,
    fsync: str = "everysec",
    profile: bool = False,
    web_workers: int | None = None,
) -> BenchResult:
    duration = duration or (2.0 if quick else 8.0)
    rounds = rounds or (1 if quick else 3)
    warmup = 1.0
    result = BenchResult("webhook_intake")
    work = workdir("webhook_intake")
    procs: list[ManagedProcess] = []
    profile_text = ""
    print(
        f"webhook_intake: {connections} connections, {rounds} x {duration:.0f} s per endpoint after a discarded "
        f"warm-up round (the first two lines); logs in {work}"
    )
    try:
        # gunicorn.conf.py's default unless asked for another count; pinned either way against a stray env
        web_workers = web_workers or len(os.sched_getaffinity(0))
        with local_stack(work, BUCKET, ADMIN_TOKEN, fsync=fsync, WEB_CONCURRENCY=str(web_workers)) as stack:
            redis_server, sandbox, port = stack.redis, stack.sandbox, stack.port
            sandbox.set_scenario(webhook={"drop": True})  # only our deliveries reach the web process
            base = f"http://127.0.0.1:{port}"
            web, url = start_web(stack.env, work, port=port)
            procs.append(web)
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            body = {"resource_type": "Messages", "start_day": _day(3), "end_day": _day(3)}
            r = requests.post(f"{url}/api/jobs", json=body, headers=headers, timeout=30)
            r.raise_for_status()
            sid = r.json()["job_sid"]
            hook_url = sandbox.job(sid)["webhook_url"]
            assert hook_url.startswith(base + "/hooks/bulkexport?token="), hook_url
            params = {"status": "completed"}
            signature = RequestValidator(sandbox.auth_token).compute_signature(hook_url, params)
            hook_headers = {
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": "bench",
            }
            for expected in ("accepted", "duplicate"):
                resp = requests.post(hook_url, data=params, headers=hook_headers, timeout=10)
                if resp.status_code != 204:
                    raise RuntimeError(f"{expected} delivery answered {resp.status_code}: {resp.text[:200]}")
            queue = Queue(CONTROL_QUEUE, connection=redis_server.client())
            if queue.job_ids != [f"sync-{sid}"]:
                raise RuntimeError(f"expected exactly the queued sync of {sid}, found {queue.job_ids}")
            path = hook_url[len(base) :]
            specs = [
                {"name": "livez", "method": "GET", "path": "/livez", "expect": 200},
                {
                    "name": "webhook",
                    "method": "POST",
                    "path": path,
                    "headers": hook_headers,
                    "body": "status=completed",
                    "expect": 204,
                },
            ]
            groups = {"gunicorn": [web.pid], "redis": [redis_server.pid]}
            # One extra round first, discarded: the first phase of a fresh server ran at about half the speed
            # of later ones (seen in every run), which flattered whichever endpoint was measured second.
            phases = _run_loadgen(port, specs, connections, duration, warmup, rounds + 1, groups, work / "loadgen.log")
            phases = phases[len(specs) :]
            metrics = requests.get(f"{url}/metrics", timeout=10).text
            if profile:
                profile_text = _profile(port, specs[1], connections, duration, groups, work)
            outcomes = {
                o: _metric(metrics, "relay_webhooks_total", outcome=o) for o in ("accepted", "duplicate", "early")
            }
            if queue.job_ids != [f"sync-{sid}"]:
                raise RuntimeError(f"the load changed the queue: {queue.job_ids}")
            hooks = _aggregate(phases, "webhook")
            livez = _aggregate(phases, "livez")
    finally:
        for p in procs:
            p.stop()
        stop_all()
    ratio = hooks["rps"] / livez["rps"]
    result.add(
        Figure("webhook req/s", hooks["rps"], "req/s", note=f"{connections} connections"),
        Figure("livez req/s", livez["rps"], "req/s", note="same server, same run"),
        Figure("webhook/livez throughput", ratio, "x", TARGET_RATIO, ">="),
        Figure("webhook p50", hooks["p50_ms"], "ms"),
        Figure("webhook p99", hooks["p99_ms"], "ms", TARGET_P99_MS, "<=", note=f"{connections} connections"),
        Figure("livez p50", livez["p50_ms"], "ms"),
        Figure("livez p99", livez["p99_ms"], "ms"),
    )
    hook_cpu = hooks["cpu_ms_per_request"]["gunicorn"] + hooks["cpu_ms_per_request"]["redis"]
    livez_cpu = livez["cpu_ms_per_request"]["gunicorn"] + livez["cpu_ms_per_request"]["redis"]
    result.add(
        Figure(
            "server CPU per request: livez/webhook",
            livez_cpu / hook_cpu,
            "x",
            note="gunicorn+redis CPU ms per request; the ratio's ceiling when CPU bound",
        )
    )
    result.details = {
        "connections": connections,
        "rounds": rounds,
        "seconds_per_phase": duration,
        "gunicorn_workers": web_workers,
        "redis_appendfsync": fsync,
        "webhook": hooks,
        "livez": livez,
        "webhook_outcomes_counted_by_the_server": outcomes,
        "requests_per_connection": {
            "webhook": round(hooks["requests"] / max(hooks["connects"], 1), 1),
            "livez": round(livez["requests"] / max(livez["connects"], 1), 1),
        },
        "bound": _bound(hooks, livez),
    }
    if profile_text:
        result.details["profile"] = profile_text.splitlines()
    if hooks["unexpected_status"] or livez["unexpected_status"]:
        result.error = f"unexpected statuses: webhook {hooks['unexpected_status']}, livez {livez['unexpected_status']}"
    return result


def _profile(
    port: int, spec: dict[str, Any], connections: int, duration: float, groups: dict[str, list[int]], work: Path
) -> str:
    """Webhook load once more, under py-spy (gunicorn master and workers, CPU samples); not measured."""
    out = work / "webhook.pyspy.txt"
    spy = PySpy(groups["gunicorn"][0], out, idle=False)  # CPU samples: the figure is CPU bound
    if not spy.start():
        return ""
    try:
        _run_loadgen(port, [spec], connections, duration, 1.0, 1, groups, work / "loadgen-profile.log")
    finally:
        spy.stop()
    text = summarize(out, top=30, only="bulkexport_webhook")
    (work / "webhook-profile.txt").write_text(text + "\n")
    print(text, flush=True)
    return text


def _bound(hooks: dict[str, Any], livez: dict[str, Any]) -> str:
    cpu = hooks["cpu_cores"]
    busiest = max(cpu, key=lambda k: cpu[k])
    total = sum(cpu.values())
    return (
        f"webhook phases used {total:.2f} of 2 cores ({', '.join(f'{k} {v:.2f}' for k, v in cpu.items())}); "
        f"busiest: {busiest}. livez phases: " + ", ".join(f"{k} {v:.2f}" for k, v in livez["cpu_cores"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--fsync", choices=("always", "everysec", "no"), default="everysec")
    parser.add_argument("--profile", action="store_true", help="one more webhook run under py-spy (not measured)")
    parser.add_argument("--web-workers", type=int, help="gunicorn workers (default: deploy/gunicorn.conf.py's)")
    args = parser.parse_args()
    res = run(args.quick, args.connections, args.duration, args.rounds, args.fsync, args.profile, args.web_workers)
    print(json.dumps(res.to_json(), indent=2))


if __name__ == "__main__":
    main()
