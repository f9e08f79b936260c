"""Launch the service's own process types exactly as the Procfile declares them (web, worker, poller), with the
environment contract pointing at local servers."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from devstack.procs import ManagedProcess, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


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
        **local_download_env(sandbox),
        **s3.env(),
        **overrides,
    }


def local_download_env(sandbox: Any) -> dict[str, str]:
    """The sandbox serves day files over http on loopback: the download policy allowing that, which only a local
    stack may use (app/platform/url_policy.py), read into the Settings by load_settings."""
    return {
        "TWILIO_BULKEXPORTS_BASE_URL": sandbox.api_url,
        "DOWNLOAD_ALLOW_LOOPBACK": "true",
        "DOWNLOAD_HOST_ALLOWLIST": urlsplit(sandbox.files_url).hostname or "127.0.0.1",
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
