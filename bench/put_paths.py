"""Single PutObject or a multipart upload for a small day file? Both of the sink's write paths, same bytes, same run.

    .venv/bin/python -m bench.put_paths [--sizes-mib 0.1 1 4 8 16 32 64] [--rounds 7]

SeaweedFS over TLS (``devstack.s3_server.SeaweedS3Server``), a realistic day file from the sandbox's generator
(gzip JSON lines), fed to ``VerifyingReader`` from memory (no download: what differs between the paths is the
S3 side). For each size and round, in alternating order: ``single`` (``single_put_max`` = the size: verify in
memory, one PutObject with tags) and ``multipart`` (``single_put_max`` = 0: CreateMultipartUpload, parts sent
while the reader verifies, CompleteMultipartUpload, PutObjectTagging). Figures: median wall ms of
``upload_verified`` per path, multipart/single ratio (> 1: the single PUT is faster), and CPU-ms of this
process and of SeaweedFS per upload. Nothing asserts on time. Work files: ``.bench/put_paths/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from typing import Any

import psutil

from app.platform.units import MiB
from bench.common import workdir
from devstack.procs import stop_all
from devstack.s3_server import SeaweedS3Server
from sandbox.content import iter_day_file
from workers.copy import VerifyingReader
from workers.sink import S3Sink, SinkSettings

META = {"job_sid": "JS0", "day": "2024-05-01", "resource_type": "Messages", "twilio_create_date": "2024-05-03"}
PATHS = ("single", "multipart")


def _once(client: Any, bucket: str, data: bytes, path: str, server: psutil.Process) -> dict[str, float]:
    sink = S3Sink(
        client, SinkSettings(bucket=bucket, prefix="twilio/", single_put_max=len(data) if path == "single" else 0)
    )
    key = f"twilio/Messages/{uuid.uuid4().hex}.json.gz"
    chunks = (data[i : i + MiB] for i in range(0, len(data), MiB))
    cpu0, srv0, t0 = time.process_time(), sum(server.cpu_times()[:2]), time.perf_counter()
    sink.upload_verified(VerifyingReader(chunks, len(data)), key, len(data), META)
    wall = time.perf_counter() - t0
    cpu, srv = time.process_time() - cpu0, sum(server.cpu_times()[:2]) - srv0
    client.delete_object(Bucket=bucket, Key=key)
    return {"wall_ms": wall * 1000, "cpu_ms": cpu * 1000, "server_cpu_ms": srv * 1000}


def measure(size_mib: float, rounds: int, client: Any, bucket: str, server: psutil.Process) -> dict[str, Any]:
    data = b"".join(iter_day_file("Messages", "2024-05-01", int(size_mib * MiB)))
    for path in PATHS:  # warm-up: connections, first-call imports
        _once(client, bucket, data, path, server)
    runs: dict[str, list[dict[str, float]]] = {p: [] for p in PATHS}
    for i in range(rounds):
        for path in PATHS if i % 2 == 0 else PATHS[::-1]:
            runs[path].append(_once(client, bucket, data, path, server))
    row: dict[str, Any] = {"size_bytes": len(data)}
    for path, samples in runs.items():
        for field in ("wall_ms", "cpu_ms", "server_cpu_ms"):
            row[f"{path}_{field}"] = round(statistics.median(s[field] for s in samples), 2)
    row["multipart_over_single"] = round(row["multipart_wall_ms"] / row["single_wall_ms"], 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mib", type=float, nargs="+", default=[0.1, 1, 4, 8, 16, 32, 64])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100 or not all(0 < s <= 256 for s in args.sizes_mib):
        parser.error("rounds must be 1..100 and sizes within (0, 256] MiB")
    work = workdir("put_paths")
    rows = []
    try:
        with SeaweedS3Server(work, tls=True) as s3:
            client, bucket = s3.client(max_pool_connections=10), "relay-put-paths"
            client.create_bucket(Bucket=bucket)
            server = psutil.Process(s3.pid)
            print(f"{'MiB':>6} {'single ms':>10} {'multipart ms':>13} {'mp/single':>9} {'cpu ms s/mp':>13}", end="")
            print(f" {'weed cpu ms s/mp':>17}")
            for size in args.sizes_mib:
                row = measure(size, args.rounds, client, bucket, server)
                rows.append(row)
                print(
                    f"{row['size_bytes'] / MiB:6.2f} {row['single_wall_ms']:10.1f} {row['multipart_wall_ms']:13.1f} "
                    f"{row['multipart_over_single']:9.2f} {row['single_cpu_ms']:6.0f}/{row['multipart_cpu_ms']:<6.0f} "
                    f"{row['single_server_cpu_ms']:8.0f}/{row['multipart_server_cpu_ms']:<8.0f}",
                    flush=True,
                )
    finally:
        stop_all()
    (work / "results.json").write_text(json.dumps({"rounds": args.rounds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
