"""Fan-out of one long job: webhook -> sync -> one copy task per day -> manifest, with 2 RQ workers.

    .venv/bin/python -m bench.fanout [--quick] [--days 366] [--day-kib 100]

The whole service as deployed: gunicorn (Procfile ``web``) and two ``rq worker`` processes (Procfile
``worker``), Redis (AOF ``everysec``), SeaweedFS S3 over TLS and the Twilio sandbox. A job of ``--days`` days
(default 366, the sandbox's and the relay's daily quota) of ``--day-kib`` KiB each is submitted through
the API; the sandbox is told to hold it, then to finish every day at once (``complete``), which fires the
signed webhook. The clock runs from that moment to the moment the API reports the job ``done`` (the
manifest is written just before): ``T_e2e``.

Raw transfer time ``T_raw``: afterwards, in this process, the same day files are moved one after another
with no relay code at all: a fresh FetchDay link per day (not timed, as it is Twilio API work the relay
also does, counted in the overhead) then a timed GET of the file and a boto3 ``put_object`` of its bytes
to the same S3 server, over kept-alive connections. That is done twice: once sequentially, and once
by two threads at once (every link fetched first, untimed), the same concurrency as the two workers.
The per-day overhead, ``(T_e2e - T_raw) / days``, is reported against the two-stream ``T_raw`` (the
target figure: what the relay costs per day beyond moving the bytes with the same parallelism) and,
for reference, against the sequential one (which two overlapping workers can beat).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.common import BenchResult, CpuMeter, Figure, workdir
from bench.profiling import PySpy, summarize
from devstack.procs import ManagedProcess, stop_all, wait_until
from devstack.redis_server import RedisServer
from devstack.relay import REPO_ROOT, process_env, procfile, start_web
from devstack.s3_server import S3Server
from devstack.sandbox_process import SandboxProcess
from devstack.stack import local_stack

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
BUCKET = "relay-bench-fanout"
RESOURCE_TYPE = "Messages"
TARGET_OVERHEAD_MS = 30.0


def _day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


SHIPPED_WORKER_CLASS = "workers.inprocess_worker.InProcessWorker"
VARIANTS: dict[str, tuple[str, str]] = {  # name: (rq --config module, --worker-class)
    "shipped": ("workers.rq_settings", SHIPPED_WORKER_CLASS),
    "forking_worker": ("workers.rq_settings", "rq.worker.Worker"),  # RQ's default: a work horse per task
}


def run(
    quick: bool = False,
    days: int | None = None,
    day_kib: int = 100,
    fsync: str = "everysec",
    variants: bool = True,
    profile: bool = False,
) -> BenchResult:
    n_days = days or (60 if quick else 366)
    day_size = day_kib * 1024
    result = BenchResult("fanout")
    work = workdir("fanout")
    procs: list[ManagedProcess] = []
    runs: dict[str, dict[str, Any]] = {}
    raw: dict[str, Any] = {}
    print(f"fanout: {n_days} days x {day_kib} KiB, web + 2 workers; logs in {work}")
    try:
        with local_stack(work, BUCKET, ADMIN_TOKEN, fsync=fsync) as stack:
            redis_server, s3, sandbox, env = stack.redis, stack.s3, stack.sandbox, stack.env
            web, url = start_web(env, work, port=stack.port)
            procs.append(web)
            names = list(VARIANTS) if variants else ["shipped"]
            for index, name in enumerate(names):
                if index:  # a fresh slate: quotas, jobs, files, objects
                    redis_server.client().flushall()
                    sandbox.reset()
                    _clean_bucket(s3)
                    s3.reset_counts()
                spy = profile and index == len(names) - 1  # the last variant, under py-spy (figure not used)
                runs[name] = _one_job(name, env, url, work, redis_server, s3, sandbox, web, n_days, day_size, spy)
                if index == 0:
                    raw = _raw_transfer(sandbox, s3, runs[name]["day_list"], day_size)
                    # CPU of the servers over the two-stream transfer (link fetching included), per day: what the
                    # sandbox and SeaweedFS cost without the relay, next to the relay run's cpu_ms_per_day
                    meter = CpuMeter({"s3": [s3.pid], "sandbox": [sandbox.pid or 0]})
                    meter.start()
                    t_meter = time.monotonic()
                    raw["parallel"] = _raw_parallel(sandbox, s3, runs[name]["day_list"], day_size, streams=2)
                    cores = meter.stop()
                    wall = time.monotonic() - t_meter
                    per_day = {k: round(v * wall / n_days * 1000, 1) for k, v in cores.items()}
                    raw["parallel"]["cpu_ms_per_day"] = per_day
                    print(
                        f"  raw transfer: {raw['seconds']:.2f} s sequential ({1000 * raw['seconds'] / n_days:.1f} "
                        f"ms/day), {raw['parallel']['seconds']:.2f} s with 2 streams",
                        flush=True,
                    )
    finally:
        for p in procs:
            p.stop()
        stop_all()
    shipped = runs["shipped"]
    t_e2e = shipped["t_e2e_seconds"]
    t_raw2 = raw["parallel"]["seconds"]
    result.add(
        Figure("end-to-end time", t_e2e, "s", note=f"{n_days} days x {day_kib} KiB, webhook -> manifest"),
        Figure("end-to-end per day", 1000 * t_e2e / n_days, "ms"),
        Figure("raw transfer per day", 1000 * t_raw2 / n_days, "ms", note="GET + put_object, 2 streams at once"),
        Figure(
            "overhead per day",
            1000 * (t_e2e - t_raw2) / n_days,
            "ms",
            TARGET_OVERHEAD_MS,
            "<=",
            note="(T_e2e - T_raw) / days, T_raw with 2 streams like the 2 workers",
        ),
        Figure("raw transfer per day, sequential", 1000 * raw["seconds"] / n_days, "ms", note="one stream"),
        Figure("overhead per day over the sequential raw transfer", 1000 * (t_e2e - raw["seconds"]) / n_days, "ms"),
        Figure(
            "worker CPU per day",
            shipped["cpu_ms_per_day"]["workers"],
            "ms",
            note="both rq workers and their work horses; robust to other load on the machine",
        ),
    )
    for name, (module, worker_class) in VARIANTS.items():
        if name in runs and name != "shipped":
            t_var = runs[name]["t_e2e_seconds"]
            how = f"--config {module} --worker-class {worker_class}"
            result.add(
                Figure(
                    f"{name.replace('_', ' ')}: overhead per day",
                    1000 * (t_var - t_raw2) / n_days,
                    "ms",
                    note=f"{how}, not shipped: informational",
                ),
                Figure(
                    f"{name.replace('_', ' ')}: worker CPU per day",
                    runs[name]["cpu_ms_per_day"]["workers"],
                    "ms",
                    note="informational",
                ),
            )
    for r in runs.values():
        r.pop("day_list", None)
    result.details = {
        "days": n_days,
        "day_size": day_size,
        "workers": 2,
        "redis_appendfsync": fsync,
        "t_raw_seconds": round(raw["seconds"], 3),
        "raw": raw,
        "runs": runs,
        "bound": shipped["bound"],
    }
    return result


def _one_job(
    name: str,
    env: dict[str, str],
    url: str,
    work: Path,
    redis_server: RedisServer,
    s3: S3Server,
    sandbox: SandboxProcess,
    web: ManagedProcess,
    n_days: int,
    day_size: int,
    profile: bool = False,
) -> dict[str, Any]:
    """Two workers with the variant's --config, one job of n_days, timed from complete() to done."""
    # step_seconds: the job does not progress on its own; complete() finishes it at a chosen moment.
    sandbox.set_scenario(default_day_size=day_size, step_seconds=3600, link_ttl_seconds=3600)
    config, worker_class = VARIANTS[name]
    command = procfile()["worker"].replace("workers.rq_settings", config).replace(SHIPPED_WORKER_CLASS, worker_class)
    assert config in command and command.startswith("rq worker "), command  # the Procfile line, as deployed
    assert f"--worker-class {worker_class} " in command, command
    workers = [
        ManagedProcess(
            f"{name}-worker{i + 1}", ["bash", "-c", f"exec {command}"], work, env=process_env(env), cwd=REPO_ROOT
        ).start()
        for i in range(2)
    ]
    spy = PySpy(workers[0].pid, work / f"{name}-worker1.pyspy.txt", rate=250, idle=False) if profile else None
    try:
        if spy is not None:
            spy.start()
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        r = requests.post(
            f"{url}/api/jobs",
            json={"resource_type": RESOURCE_TYPE, "start_day": _day(2 + n_days - 1), "end_day": _day(2)},
            headers=headers,
            timeout=30,
        )
        if r.status_code != 201:
            raise RuntimeError(f"submit answered {r.status_code}: {r.text[:300]}")
        sid = r.json()["job_sid"]
        _wait_workers_idle(redis_server, timeout=30)
        meter = CpuMeter(
            {
                "workers": [w.pid for w in workers],
                "web": [web.pid],
                "redis": [redis_server.pid],
                "s3": [s3.pid],
                "sandbox": [sandbox.pid or 0],
            }
        )
        meter.start()
        t0 = time.monotonic()
        sandbox.complete(sid)

        def finished() -> dict[str, Any] | None:
            view: dict[str, Any] = requests.get(f"{url}/api/jobs/{sid}", headers=headers, timeout=10).json()
            return view if view["state"] in ("done", "failed", "cancelled") else None

        view = wait_until(finished, timeout=60 + n_days * 2, interval=0.05, what="the job to finish")
        t_e2e = time.monotonic() - t0
        cpu = meter.stop()
    finally:
        if spy is not None:
            spy.stop()
        for w in workers:
            w.stop()
    assert isinstance(view, dict)
    if spy is not None:
        text = summarize(spy.out, top=40)
        (work / f"{name}-profile.txt").write_text(text + "\n")
        print(text, flush=True)
    if view["state"] != "done":
        raise RuntimeError(f"{name}: job ended {view['state']}: {view.get('error')}")
    check = _verify(s3, view, n_days)
    hooks = [w for w in sandbox.webhooks() if w["job_sid"] == sid]
    print(
        f"  {name}: end to end {t_e2e:.2f} s for {n_days} days ({1000 * t_e2e / n_days:.1f} ms/day); "
        f"cores: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
        flush=True,
    )
    return {
        "worker_command": command,
        "t_e2e_seconds": round(t_e2e, 3),
        "cpu_cores": cpu,
        "cpu_ms_per_day": {k: round(v * t_e2e / n_days * 1000, 1) for k, v in cpu.items()},
        "webhook_deliveries": [{k: h.get(k) for k in ("status_code", "attempt", "copy")} for h in hooks],
        "verified": check,
        "bound": _bound(cpu, t_e2e, n_days),
        "day_list": [d["day"] for d in view["days"]],
    }


def _clean_bucket(s3: S3Server) -> None:
    client = s3.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": o["Key"]} for o in page.get("Contents") or []]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


def _wait_workers_idle(redis_server: RedisServer, timeout: float) -> None:
    """Both workers registered (so the clock does not include their start-up)."""
    from rq import Worker

    conn = redis_server.client()
    wait_until(lambda: len(Worker.all(connection=conn)) >= 2, timeout=timeout, interval=0.1, what="2 rq workers")


def _verify(s3: S3Server, view: dict[str, Any], n_days: int) -> dict[str, Any]:
    """Every day copied once to its final key, and the manifest in S3."""
    days = view["days"]
    copied = [d for d in days if d["state"] == "copied"]
    if len(days) != n_days or len(copied) != n_days:
        raise RuntimeError(f"{len(copied)} of {n_days} days copied ({len(days)} days in the job)")
    counts = s3.writes_by_key(BUCKET)
    writes = [counts.get(d["key"], 0) for d in copied]
    manifest = json.loads(s3.client().get_object(Bucket=BUCKET, Key=view["manifest_key"])["Body"].read())
    if manifest["copied_days"] != n_days:
        raise RuntimeError(f"manifest lists {manifest['copied_days']} copied days, expected {n_days}")
    return {
        "copied_days": len(copied),
        "days_written_exactly_once": sum(w == 1 for w in writes),
        "manifest_key": view["manifest_key"],
    }


def _raw_transfer(sandbox: SandboxProcess, s3: S3Server, days: list[str], size: int) -> dict[str, Any]:
    """Sequential GET + put_object of every day file, timed per day (link fetching not timed)."""
    http = requests.Session()
    client = s3.client()
    client.head_bucket(Bucket=BUCKET)  # connection open before the clock, as the workers' are
    auth = sandbox.auth
    get_s = put_s = 0.0
    for day in days:
        r = http.get(
            f"{sandbox.api_url}/v1/Exports/{RESOURCE_TYPE}/Days/{day}", auth=auth, allow_redirects=False, timeout=30
        )
        link = r.json()["redirect_to"]
        t0 = time.perf_counter()
        body = http.get(link, timeout=30).content
        t1 = time.perf_counter()
        client.put_object(Bucket=BUCKET, Key=f"raw/{day}.json.gz", Body=body, ContentType="application/gzip")
        t2 = time.perf_counter()
        if len(body) != size:
            raise RuntimeError(f"raw GET of {day} gave {len(body)} bytes, expected {size}")
        get_s += t1 - t0
        put_s += t2 - t1
    http.close()
    return {"seconds": get_s + put_s, "get_seconds": round(get_s, 3), "put_seconds": round(put_s, 3)}


def _raw_parallel(sandbox: SandboxProcess, s3: S3Server, days: list[str], size: int, streams: int) -> dict[str, Any]:
    """The same GET + put_object per day, by ``streams`` threads at once; wall time of the transfers only."""
    http = requests.Session()
    links = []
    for day in days:  # every link first (untimed; links live far longer than this run)
        r = http.get(
            f"{sandbox.api_url}/v1/Exports/{RESOURCE_TYPE}/Days/{day}",
            auth=sandbox.auth,
            allow_redirects=False,
            timeout=30,
        )
        links.append((day, r.json()["redirect_to"]))
    http.close()

    # Clients made and connected before the clock (as the workers' are before the job): only transfers are timed.
    clients = [s3.client() for _ in range(streams)]
    for client in clients:
        client.head_bucket(Bucket=BUCKET)

    def stream(share: list[tuple[str, str]], client: Any) -> None:
        session = requests.Session()
        for day, link in share:
            body = session.get(link, timeout=30).content
            if len(body) != size:
                raise RuntimeError(f"raw GET of {day} gave {len(body)} bytes, expected {size}")
            client.put_object(Bucket=BUCKET, Key=f"raw2/{day}.json.gz", Body=body, ContentType="application/gzip")
        session.close()

    with ThreadPoolExecutor(streams) as pool:
        t0 = time.perf_counter()
        for future in [pool.submit(stream, links[i::streams], clients[i]) for i in range(streams)]:
            future.result()
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "streams": streams}


def _bound(cpu: dict[str, float], t_e2e: float, n_days: int) -> str:
    total = sum(cpu.values())
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
    return (
        f"cores busy during the run: {total:.2f} of {os.cpu_count()} ({parts}); "
        f"workers spent {1000 * cpu.get('workers', 0) * t_e2e / n_days:.0f} CPU-ms per day"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--days", type=int)
    parser.add_argument("--day-kib", type=int, default=100)
    parser.add_argument("--fsync", choices=("always", "everysec", "no"), default="everysec")
    parser.add_argument("--no-variants", action="store_true", help="skip the forking-worker comparison run")
    parser.add_argument("--profile", action="store_true", help="py-spy the first worker of the last variant")
    args = parser.parse_args()
    if args.days is not None and not 1 <= args.days <= 366:
        parser.error("--days must be 1..366 (the sandbox's and the relay's daily quota)")
    parser_profile = args.profile
    res = run(args.quick, args.days, args.day_kib, args.fsync, not args.no_variants, parser_profile)
    print(json.dumps(res.to_json(), indent=2))
    sys.exit(0 if res.passed else 1)


if __name__ == "__main__":
    main()
