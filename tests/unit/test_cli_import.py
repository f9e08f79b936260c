"""The ``relay`` entry point loads no part of the service: no settings read, no Flask app, no Redis, Twilio or S3
client (``app.cli.main``); the remote mode needs nothing else, the in-process mode loads them on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_MODULES = ("app.platform.config", "app.services", "app.cli.local", "boto3", "twilio", "rq")


def test_importing_the_entry_point_loads_no_service_module() -> None:
    probe = f"import sys, app.cli.main; print([m for m in {SERVICE_MODULES!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env={}, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
