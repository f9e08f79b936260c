"""Launch the service's own process types exactly as the Procfile declares them (web, worker, poller)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.harness.procs import ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def relay_env(
    redis_url: str, s3: Any, sandbox: Any, public_base_url: str, bucket: str, admin_token: str, **overrides: str
) -> dict[str, str]:
    """The service's environment contract pointing at local servers (tests, `make demo` and bench share it)."""
    return {
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": sandbox.account_sid,
        "TWILIO_AUTH_TOKEN": sandbox.auth_token,
        "TWILIO_BULKEXPORTS_BASE_URL": sandbox.api_url,
        "PUBLIC_BASE_URL": public_base_url,
        "S3_BUCKET": bucket,
        "S3_PREFIX": "twilio/",
        "ADMIN_TOKEN": admin_token,
        "LOG_LEVEL": "INFO",
        **s3.env(),
        **overrides,
    }


def procfile() -> dict[str, str]:
    lines = (REPO_ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """The venv's bin first on PATH (so gunicorn/rq resolve to the project's), repo root importable."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_process(kind: str, env: dict[str, str], log_dir: Path, name: str | None = None) -> ManagedProcess:
    command = procfile()[kind]
    proc = ManagedProcess(name or kind, ["bash", "-c", f"exec {command}"], log_dir, env=process_env(env), cwd=REPO_ROOT)
    return proc.start()


def start_web(env: dict[str, str], log_dir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    port = port or free_port()
    proc = start_process("web", {**env, "PORT": str(port)}, log_dir)
    url = f"http://127.0.0.1:{port}"
    proc.wait_ready(lambda: requests.get(f"{url}/livez", timeout=1).status_code == 200, timeout=30)
    return proc, url


@dataclass(frozen=True)
class LocalStack:
    """The servers the relay talks to, and its environment pointing at them (web, workers not started)."""

    redis: Any  # tests.harness.redis_server.RedisServer
    s3: Any  # tests.harness.s3_server.MotoS3Server
    sandbox: Any  # sandbox.testing.SandboxProcess
    env: dict[str, str]
    port: int  # the web's port, already in PUBLIC_BASE_URL


@contextmanager
def local_stack(
    workdir: Path, bucket: str, admin_token: str, fsync: str = "always", **overrides: str
) -> Iterator[LocalStack]:
    """Redis, moto S3 over TLS (``bucket`` created) and the Twilio sandbox on free loopback ports, for the
    demo and the benchmarks; stopped on exit. Webhooks must be signed; Prometheus multiprocess files go to
    ``workdir/prometheus``."""
    from sandbox.testing import SandboxProcess
    from tests.harness.redis_server import RedisServer
    from tests.harness.s3_server import MotoS3Server

    with (
        RedisServer(workdir / "redis", fsync=fsync) as redis_server,
        MotoS3Server(tls=True, log_dir=workdir) as s3,
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
