"""Peak RSS and throughput of copy_link_to_s3 versus boto3's upload_file of the same file.

    python -m bench.copy_probe [--mib 256]

Serves a generated gzip JSON-lines file of about ``--mib`` MiB from a local HTTP server (sendfile, so
it costs next to no CPU), and copies it
into SeaweedFS (``weed mini``) over TLS, each measurement in a fresh child process (peak RSS = its VmHWM):
``baseline`` (imports and a client, nothing sent), ``copy`` (link -> VerifyingReader -> the sink: a multipart
upload of the final key above the single-PUT size) and ``upload_file`` (boto3 defaults, from the local file).
A quick probe; bench/copy_throughput.py is the measurement (realistic JSON day files, both baselines). The
server shares the machine's cores with the children: compare the figures with each other.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from app.platform.units import MiB
from devstack.procs import ManagedProcess, free_port, port_open, python_argv
from devstack.s3_server import SeaweedS3Server

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_day_file(path: Path, target: int) -> None:
    """Hex text of random bytes in 200-char lines: gzips to ~0.58 of the text, so ~target bytes."""
    rng = random.Random(42)
    with gzip.open(path, "wb", compresslevel=1) as out:
        while path.stat().st_size < target:
            text = rng.randbytes(4 * MiB).hex().encode()
            out.write(b"\n".join(text[i : i + 200] for i in range(0, len(text), 200)) + b"\n")
            out.flush()


def child(mode: str, url: str, path: str, bucket: str) -> None:
    """Runs in a fresh interpreter: do one transfer, print seconds and peak RSS as JSON."""
    import zlib

    from app.bucket import gzip_check
    from app.platform.s3_client import make_s3_client
    from app.platform.url_policy import UrlPolicy
    from workers.copy import copy_link_to_s3
    from workers.sink import S3Sink, SinkSettings

    if mode == "copy-zlib":
        gzip_check.INFLATE = zlib

    client = make_s3_client()
    size = os.path.getsize(path)
    started = time.monotonic()
    phases: dict[str, float] = {}
    if mode.startswith("copy"):
        sink = S3Sink(client, SinkSettings(bucket=bucket, prefix="twilio/"))
        _time_phases(sink.writer, phases)
        meta = {"job_sid": "JSbench", "day": "2024-05-01", "resource_type": "Messages", "twilio_create_date": ""}
        # The link is http on loopback: the local-stack download policy (app/platform/url_policy.py).
        local = UrlPolicy(("127.0.0.1",), allow_loopback=True)
        copy_link_to_s3(url, size, sink, "twilio/bench/copy.json.gz", meta, policy=local)
    elif mode == "upload_file":
        client.upload_file(path, bucket, "bench/upload_file.json.gz")
    seconds = time.monotonic() - started
    print(json.dumps({"mode": mode, "seconds": seconds, "peak_rss_mib": peak_rss() / MiB, "size": size, **phases}))


def peak_rss() -> int:
    """VmHWM: unlike ru_maxrss it starts afresh at exec, so the parent's size does not leak in."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def serve(directory: str, port: int) -> None:
    """The link: GET of a file, sent with sendfile(2) so the server costs next to no CPU."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = Path(directory) / self.path.split("?", 1)[0].lstrip("/")
            with open(path, "rb") as f:
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                self.wfile.flush()
                self.connection.sendfile(f)

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _time_phases(writer: Any, phases: dict[str, float]) -> None:
    """Time the sink writer's two big steps: the parts streamed while the reader verifies, and the completion."""
    for name in ("_upload_parts", "_complete"):  # the streamed parts, then CompleteMultipartUpload
        method = getattr(writer, name)

        def timed(*args: Any, _method: Any = method, _name: str = name) -> Any:
            started = time.monotonic()
            try:
                return _method(*args)
            finally:
                phases[_name] = time.monotonic() - started

        setattr(writer, name, timed)


def measure(mode: str, url: str, path: Path, bucket: str, env: dict[str, str]) -> dict[str, float]:
    argv = python_argv("-m", "bench.copy_probe", "--child", mode, url, str(path), bucket)
    out = subprocess.run(argv, env={**os.environ, **env}, cwd=REPO_ROOT, capture_output=True, check=True, text=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def empty_bucket(s3: SeaweedS3Server, bucket: str) -> None:
    """Keep the server's disk flat between runs."""
    client = s3.client()
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    s3.vacuum()


def report(mode: str, results: list[dict[str, float]]) -> None:
    times = sorted(r["seconds"] for r in results)
    size = results[0]["size"] / MiB
    median = statistics.median(times)
    rates = "" if mode == "baseline" else f"median {size / median:6.1f} MiB/s (best {size / times[0]:6.1f})  "
    peak = max(r["peak_rss_mib"] for r in results)
    phases = "".join(
        f"  {name.strip('_')} median {statistics.median(r[name] for r in results):5.2f} s"
        for name in ("_upload_parts", "_complete")
        if name in results[0]
    )
    print(f"{mode:12s} {size:6.1f} MiB  {rates}peak RSS {peak:6.1f} MiB{phases}", flush=True)
    print("    runs: " + ", ".join(f"{r['seconds']:.2f}s/{r['peak_rss_mib']:.0f}MiB" for r in results))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "URL", "PATH", "BUCKET"))
    parser.add_argument("--serve", nargs=2, metavar=("DIR", "PORT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    with tempfile.TemporaryDirectory(prefix="copy-probe-") as tmp, SeaweedS3Server(Path(tmp), tls=True) as s3:
        work = Path(tmp)
        path = work / "day.json.gz"
        make_day_file(path, args.mib * MiB)
        port = free_port()
        argv = python_argv("-m", "bench.copy_probe", "--serve", str(work), str(port))
        web = ManagedProcess("link-server", argv, work, cwd=REPO_ROOT).start()
        try:
            web.wait_ready(lambda: port_open(port))
            url = f"http://127.0.0.1:{port}/{path.name}?X-Amz-Signature=bench"
            assert requests.head(url, timeout=5).status_code == 200
            s3.client().create_bucket(Bucket="bench")
            env = {**s3.env(), "AWS_CONFIG_FILE": str(work / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(work / "none")}
            from app.bucket.gzip_check import INFLATE

            modes = ["baseline", "copy", "upload_file"] + (["copy-zlib"] if INFLATE.__name__ != "zlib" else [])
            print(f"inflate backend for 'copy': {INFLATE.__name__}; {args.repeat} interleaved runs each")
            runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
            for _ in range(args.repeat):
                for mode in modes:
                    runs[mode].append(measure(mode, url, path, "bench", env))
                    empty_bucket(s3, "bench")
            for mode, results in runs.items():
                report(mode, results)
        finally:
            web.stop()


if __name__ == "__main__":
    main()
