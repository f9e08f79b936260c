"""Webhook intake throughput and latency, against the minimal correct handler on the same gunicorn configuration.

    .venv/bin/python -m bench.webhook_intake [--quick] [--connections 16] [--duration 8] [--rounds 3]
        [--compare-gthread] [--web-workers N] [--worker-connections N] [--profile]

Two servers side by side on 127.0.0.1, both the Procfile ``web`` line (gunicorn with deploy/gunicorn.conf.py: the
gevent worker class, one worker per usable CPU, JSON access log), sharing one Redis (AOF ``everysec`` as in
deploy/compose.yaml), with SeaweedFS and the Twilio sandbox behind the relay and no RQ worker:

- the relay (``app.wsgi:app``). One job is submitted through the real API and its webhook is delivered once,
  which queues its sync task; from then on every delivery is the steady state measured: a signed, valid,
  *duplicate* delivery (token lookup, HMAC-SHA1 signature check, delivery accounting, metrics, 204: whatever
  app/web/intake.py does for it). The queue is checked to still hold exactly that one sync after the load. The
  signature is computed once with twilio's ``RequestValidator.compute_signature``.
- the baseline, the *minimal correct handler* (bench/minimal_webhook.py): a Flask route that reads the token,
  does one Redis GET of its hash and answers 204, for the very same request bytes.

Targets (issue 13): relay webhook req/s >= 0.9 x the minimal handler's, relay webhook p99 <= 25 ms at 16
connections. The relay's ``/livez`` is measured too and its ratio kept as information. ``--compare-gthread``
adds a third server, the relay with the former gthread worker class (4 threads), for issue 12's "gevent must not
cost the webhook more than 10 %" (not in the default run).

The load generator (bench.loadgen) is a separate process: 16 threads, one persistent connection each, closed
loop. Phases go round-robin over (relay webhook, minimal webhook, relay /livez[, gthread ...]) ``--rounds``
times after one discarded warm-up round, so every endpoint sees the same machine state; figures aggregate the
rounds. CPU of each gunicorn (master + workers), Redis and the generator is accounted over each measured
window, so the report says which of them bound the figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from rq import Queue
from twilio.request_validator import RequestValidator

from app.platform.queueing import CONTROL_QUEUE
from bench.common import BenchResult, CpuMeter, Figure, child_env, percentile, workdir
from bench.minimal_webhook import TOKEN_PREFIX
from bench.profiling import PySpy, summarize
from devstack.procs import ManagedProcess, free_port, python_argv, stop_all
from devstack.relay import REPO_ROOT, process_env, procfile
from devstack.stack import local_stack

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
BUCKET = "relay-bench"
TARGET_VS_MINIMAL = 0.9  # issue 13: relay webhook req/s >= 0.9 x the minimal correct handler's
TARGET_P99_MS = 25.0
TARGET_VS_GTHREAD = 0.9  # issue 12: the async worker may cost the webhook at most 10 % of gthread's req/s
SHIPPED = "relay"  # deploy/gunicorn.conf.py as shipped (gevent)
MINIMAL = "minimal"  # bench/minimal_webhook.py on the same configuration
GTHREAD = "gthread"  # the relay on the former worker class (--compare-gthread)


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
                    f"  {event['name']:<16} {event['rps']:8.0f} req/s  p50 {event['p50_ms']:6.2f} ms  "
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


def _aggregate(phases: list[dict[str, Any]], name: str, server: str) -> dict[str, Any]:
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
    out["server_cpu_ms"] = out["cpu_ms_per_request"][server] + out["cpu_ms_per_request"]["redis"]
    out["loadgen_cpu_ms"] = round(1000 * sum(p["cpu"]["loadgen"] * p["seconds"] for p in mine) / ok, 3)
    return out


def run(
    quick: bool = False,
    connections: int = 16,
    duration: float | None = None,
    rounds: int | None = None,
    fsync: str = "everysec",
    profile: bool = False,
    web_workers: int | None = None,
    compare_gthread: bool = False,
    worker_connections: int | None = None,
    gc_probe: str = "",
) -> BenchResult:
    duration = duration or (2.0 if quick else 8.0)
    rounds = rounds or (1 if quick else 3)
    names = (SHIPPED, MINIMAL, GTHREAD) if compare_gthread else (SHIPPED, MINIMAL)
    result = BenchResult("webhook_intake")
    work = workdir("webhook_intake")
    # gunicorn.conf.py's default unless asked for another count; pinned either way against a stray env
    web_workers = web_workers or len(os.sched_getaffinity(0))
    env = {"WEB_CONCURRENCY": str(web_workers)}
    if worker_connections:
        env["GUNICORN_WORKER_CONNECTIONS"] = str(worker_connections)
    servers: dict[str, ManagedProcess] = {}
    try:
        with local_stack(work, BUCKET, ADMIN_TOKEN, fsync=fsync, **env) as stack:
            stack.sandbox.set_scenario(webhook={"drop": True})  # only our deliveries reach the web processes
            ports = {name: stack.port if name == SHIPPED else free_port() for name in names}
            for name in names:
                servers[name] = _start_server(stack.env, name, ports[name], work, gc_probe)
            sid, hook_path, hook_headers = _prepare_job(stack, ports[SHIPPED])
            token = parse_qs(urlsplit(hook_path).query)["token"][0]
            stack.redis.client().set(TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest(), sid)
            queue = Queue(CONTROL_QUEUE, connection=stack.redis.client())
            specs = _specs(names, ports, hook_path, hook_headers)
            groups = {f"gunicorn-{n}": [p.pid] for n, p in servers.items()} | {"redis": [stack.redis.pid]}
            print(
                f"webhook_intake: {', '.join(names)}; {connections} connections, {rounds} x {duration:.0f} s per "
                f"endpoint after a discarded warm-up round (the first {len(specs)} lines); load average "
                f"{os.getloadavg()[0]:.2f}; logs in {work}",
                flush=True,
            )
            # One extra round first, discarded: the first phase of a fresh server ran at about half the speed
            # of later ones (seen in every run), which flattered whichever endpoint was measured second.
            phases = _run_loadgen(
                stack.port, specs, connections, duration, 1.0, rounds + 1, groups, work / "loadgen.log"
            )
            phases = phases[len(specs) :]
            outcomes = _outcomes(ports[SHIPPED])
            if queue.job_ids != [f"sync-{sid}"]:
                raise RuntimeError(f"the load changed the queue: {queue.job_ids}")
            if profile:
                result.details["profile"] = {
                    n: _profile(
                        next(s for s in specs if s["name"] == f"{n}/webhook"), connections, duration, groups, work
                    )
                    for n in (SHIPPED, MINIMAL)
                }
    finally:
        for p in servers.values():
            p.stop()
        stop_all()
    m = {s["name"]: _aggregate(phases, s["name"], f"gunicorn-{s['name'].split('/')[0]}") for s in specs}
    result.add(*_figures(m, connections, compare_gthread))
    result.details |= {
        "connections": connections,
        "rounds": rounds,
        "seconds_per_phase": duration,
        "gunicorn_workers": web_workers,
        "worker_connections": worker_connections or "deploy/gunicorn.conf.py default",
        "redis_appendfsync": fsync,
        "measured": m,
        "webhook_outcomes_counted_by_the_relay": outcomes,
        "bound": _bound(m),
        **({"gc": {name: _gc_summary(work / name / "gc") for name in names}} if gc_probe else {}),
    }
    unexpected = {name: a["unexpected_status"] for name, a in m.items() if a["unexpected_status"]}
    if unexpected:
        result.error = f"unexpected statuses: {unexpected}"
    return result


def _start_server(env: dict[str, str], name: str, port: int, work: Path, gc_probe: str = "") -> ManagedProcess:
    """The Procfile web line (for the minimal handler with its app instead of the relay's), its own log and
    Prometheus directory (gunicorn.conf.py's on_starting wipes it). ``gc_probe`` ("on" or "nofreeze"): the same
    configuration through bench/gunicorn_gc_probe.py, logging every collection to ``work/<name>/gc``."""
    (work / name / "prometheus").mkdir(parents=True, exist_ok=True)
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(work / name / "prometheus")}
    if name == GTHREAD:
        extra["GUNICORN_WORKER_CLASS"] = "gthread"
    line = procfile()["web"]
    assert line.endswith(" app.wsgi:app") and " deploy/gunicorn.conf.py " in line, line
    command = line if name != MINIMAL else line.removesuffix("app.wsgi:app") + "bench.minimal_webhook:app"
    if gc_probe:
        (work / name / "gc").mkdir(exist_ok=True)
        command = command.replace(" deploy/gunicorn.conf.py ", " bench/gunicorn_gc_probe.py ")
        extra |= {
            "BENCH_GC_LOG_DIR": str(work / name / "gc"),
            "BENCH_GC_FREEZE": "0" if gc_probe == "nofreeze" else "1",
        }
    proc = ManagedProcess(
        name,
        ["bash", "-c", f"exec {command}"],
        work / name,
        env=process_env({**env, **extra, "PORT": str(port)}),
        cwd=REPO_ROOT,
    ).start()
    proc.wait_ready(lambda: requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200, timeout=30)
    return proc


def _prepare_job(stack: Any, port: int) -> tuple[str, str, dict[str, str]]:
    """Submit one job through the API; deliver its webhook twice (accepted, then duplicate); return the job sid,
    the webhook's path and query, and the headers of a signed delivery."""
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"resource_type": "Messages", "start_day": _day(3), "end_day": _day(3)}
    r = requests.post(f"{url}/api/jobs", json=body, headers=headers, timeout=30)
    r.raise_for_status()
    sid = r.json()["job_sid"]
    hook_url = stack.sandbox.job(sid)["webhook_url"]
    base = stack.env["PUBLIC_BASE_URL"]
    assert hook_url.startswith(base + "/hooks/bulkexport?token="), hook_url
    params = {"status": "completed"}
    hook_headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "X-Twilio-Signature": RequestValidator(stack.sandbox.auth_token).compute_signature(hook_url, params),
        "I-Twilio-Idempotency-Token": "bench",
    }
    path = hook_url[len(base) :]
    for expected in ("accepted", "duplicate"):
        resp = requests.post(url + path, data=params, headers=hook_headers, timeout=10)
        if resp.status_code != 204:
            raise RuntimeError(f"{expected} delivery answered {resp.status_code}: {resp.text[:200]}")
    job_ids = Queue(CONTROL_QUEUE, connection=stack.redis.client()).job_ids
    if job_ids != [f"sync-{sid}"]:
        raise RuntimeError(f"expected exactly the queued sync of {sid}, found {job_ids}")
    return sid, path, hook_headers


def _specs(
    names: tuple[str, ...], ports: dict[str, int], hook_path: str, hook_headers: dict[str, str]
) -> list[dict[str, Any]]:
    """Every server's webhook (the same request bytes), and the relays' /livez."""
    specs: list[dict[str, Any]] = []
    for name in names:
        specs.append(
            {
                "name": f"{name}/webhook",
                "method": "POST",
                "path": hook_path,
                "headers": hook_headers,
                "body": "status=completed",
                "expect": 204,
                "port": ports[name],
            }
        )
    for name in names:
        if name != MINIMAL:
            specs.append(
                {"name": f"{name}/livez", "method": "GET", "path": "/livez", "expect": 200, "port": ports[name]}
            )
    return specs


def _outcomes(port: int) -> dict[str, float]:
    """The relay's own count of webhook outcomes (this server's Prometheus directory only)."""
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    outcomes = ("accepted", "duplicate", "early", "throttled", "rejected_signature", "rejected_token")
    return {o: _metric(metrics, "relay_webhooks_total", outcome=o) for o in outcomes}


def _figures(m: dict[str, dict[str, Any]], connections: int, compare_gthread: bool) -> list[Figure]:
    hook, minimal, livez = m[f"{SHIPPED}/webhook"], m[f"{MINIMAL}/webhook"], m[f"{SHIPPED}/livez"]
    at = f"{connections} connections"
    figures = [
        Figure("webhook req/s", hook["rps"], "req/s", note=f"relay, signed duplicate delivery, {at}"),
        Figure("minimal handler req/s", minimal["rps"], "req/s", note="token -> one Redis GET -> 204, same config"),
        Figure("webhook / minimal handler req/s", hook["rps"] / minimal["rps"], "x", TARGET_VS_MINIMAL, ">="),
        Figure("webhook p50", hook["p50_ms"], "ms"),
        Figure("webhook p99", hook["p99_ms"], "ms", TARGET_P99_MS, "<=", note=at),
        Figure("minimal handler p50", minimal["p50_ms"], "ms"),
        Figure("minimal handler p99", minimal["p99_ms"], "ms"),
        Figure("livez req/s", livez["rps"], "req/s", note="relay, same run"),
        Figure("webhook / livez req/s", hook["rps"] / livez["rps"], "x", note="informational"),
        Figure("livez p99", livez["p99_ms"], "ms"),
        Figure("server CPU ms per request, webhook", hook["server_cpu_ms"], "ms", note="gunicorn + redis"),
        Figure("server CPU ms per request, minimal handler", minimal["server_cpu_ms"], "ms", note="gunicorn + redis"),
        Figure("server CPU ms per request, livez", livez["server_cpu_ms"], "ms", note="gunicorn + redis"),
        Figure(
            "webhook / minimal handler, CPU-bound ceiling",
            _ceiling(minimal) / _ceiling(hook),
            "x",
            note="(server + load generator CPU per request) minimal / webhook: the ratio's best when CPU bound",
        ),
    ]
    if compare_gthread:
        old = m[f"{GTHREAD}/webhook"]
        figures += [
            Figure("gthread: webhook req/s", old["rps"], "req/s", note="the relay, former worker class"),
            Figure("gthread: webhook p99", old["p99_ms"], "ms"),
            Figure("gevent / gthread webhook req/s", hook["rps"] / old["rps"], "x", TARGET_VS_GTHREAD, ">="),
            Figure("gevent / gthread livez req/s", livez["rps"] / m[f"{GTHREAD}/livez"]["rps"], "x"),
        ]
    return figures


def _gc_summary(directory: Path) -> dict[str, Any]:
    """Full collections of one server's workers over the whole run: how many, how long, objects tracked."""
    full = [
        json.loads(line)
        for log in sorted(directory.glob("gc-*.log"))
        for line in log.read_text().splitlines()
        if '"gen": 2' in line
    ]
    pauses = sorted(e["ms"] for e in full)
    return {
        "full_collections": len(full),
        "max_ms": pauses[-1] if pauses else 0.0,
        "median_ms": pauses[len(pauses) // 2] if pauses else 0.0,
        "objects_tracked_max": max((e.get("objects", 0) for e in full), default=0),
    }


def _ceiling(a: dict[str, Any]) -> float:
    """CPU ms per request of everything that shares the cores for it (gunicorn, Redis, the load generator)."""
    return float(a["server_cpu_ms"] + a["loadgen_cpu_ms"])


def _profile(
    spec: dict[str, Any], connections: int, duration: float, groups: dict[str, list[int]], work: Path
) -> list[str]:
    """One more load phase on ``spec``'s server under py-spy (gunicorn master and workers, CPU samples only:
    the figure is CPU bound); not measured."""
    server = spec["name"].split("/")[0]
    out = work / f"{server}-webhook.pyspy.txt"
    spy = PySpy(groups[f"gunicorn-{server}"][0], out, idle=False)
    if not spy.start():
        return []
    try:
        _run_loadgen(spec["port"], [spec], connections, duration, 1.0, 1, groups, work / "loadgen-profile.log")
    finally:
        spy.stop()
    text = summarize(out, top=40)
    (work / f"{server}-webhook-profile.txt").write_text(text + "\n")
    print(f"--- py-spy, {server} webhook ---\n{text}", flush=True)
    return text.splitlines()


def _bound(m: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Per endpoint: cores used by each process group over its phases, and the busiest."""
    out = {}
    for name, a in m.items():
        cpu = a["cpu_cores"]
        busiest = max(cpu, key=lambda k: cpu[k])
        parts = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
        out[name] = f"{sum(cpu.values()):.2f} of 2 cores busy ({parts}); busiest: {busiest}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--fsync", choices=("always", "everysec", "no"), default="everysec")
    parser.add_argument("--profile", action="store_true", help="py-spy each webhook once more (not measured)")
    parser.add_argument("--web-workers", type=int, help="gunicorn workers (default: deploy/gunicorn.conf.py's)")
    parser.add_argument("--compare-gthread", action="store_true", help="add the relay on gthread (issue 12)")
    parser.add_argument(
        "--gc-probe",
        choices=("on", "nofreeze"),
        help="log every garbage collection of the web workers (bench/gunicorn_gc_probe.py); nofreeze: without the "
        "shipped gc.freeze()",
    )
    parser.add_argument("--worker-connections", type=int, help="gevent's worker_connections (default: the config's)")
    args = parser.parse_args()
    if not 1 <= args.connections <= 256 or (args.rounds is not None and not 1 <= args.rounds <= 20):
        parser.error("--connections must be 1..256 and --rounds 1..20")
    res = run(
        args.quick,
        args.connections,
        args.duration,
        args.rounds,
        args.fsync,
        args.profile,
        args.web_workers,
        args.compare_gthread,
        args.worker_connections,
        args.gc_probe or "",
    )
    print(json.dumps(res.to_json(), indent=2))


if __name__ == "__main__":
    main()
