"""The local stack of `make demo` and the benchmarks: Redis, S3 and the Twilio sandbox, and the relay's
environment pointing at them (the relay's own processes are started with devstack.relay)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack.procs import free_port
from devstack.redis_server import RedisServer
from devstack.relay import relay_env
from devstack.s3_server import MotoS3Server, S3Server, SeaweedS3Server
from devstack.sandbox_process import SandboxProcess


@dataclass(frozen=True)
class LocalStack:
    """The servers the relay talks to, and its environment pointing at them (web, workers not started)."""

    redis: RedisServer
    s3: S3Server
    sandbox: SandboxProcess
    env: dict[str, str]
    port: int  # the web's port, already in PUBLIC_BASE_URL


@contextmanager
def local_stack(
    workdir: Path, bucket: str, admin_token: str, fsync: str = "always", s3_kind: str = "seaweedfs", **overrides: str
) -> Iterator[LocalStack]:
    """Redis, S3 over TLS (SeaweedFS, or moto with ``s3_kind="moto"``; ``bucket`` created) and the Twilio
    sandbox on free loopback ports, for the demo and the benchmarks; stopped on exit. Webhooks must be signed;
    Prometheus multiprocess files go to ``workdir/prometheus``."""
    if s3_kind not in ("seaweedfs", "moto"):
        raise ValueError(f"s3_kind must be 'seaweedfs' or 'moto', not {s3_kind!r}")
    s3_server = SeaweedS3Server(workdir, tls=True) if s3_kind == "seaweedfs" else MotoS3Server(True, workdir)
    with (
        RedisServer(workdir / "redis", fsync=fsync) as redis_server,
        s3_server as s3,
        SandboxProcess(log_path=workdir / "sandbox.log") as sandbox,
    ):
        s3.client().create_bucket(Bucket=bucket)
        port = free_port()
        (workdir / "prometheus").mkdir(exist_ok=True)  # must exist before gunicorn loads its logconfig
        settings = {"WEBHOOK_SIGNATURE": "required", "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus")}
        env = relay_env(
            redis_server.url, s3, sandbox, f"http://127.0.0.1:{port}", bucket, admin_token, **(settings | overrides)
        )
        yield LocalStack(redis_server, s3, sandbox, env, port)
