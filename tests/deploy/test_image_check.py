"""The image check's own pieces that run without root: its scripts lint clean, its log scan, its wiring.

The check itself (deploy/image-check.sh: buildah build, every role run from the image) needs root and Debian
packages, so it runs in .ci/run after `make test`, not here; .ci/run also runs it once on a Dockerfile without
`COPY workers/ workers/` and fails unless that check fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from tests.deploy.test_deploy_files import _read, _tool

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "image-check.sh"


def _driver() -> ModuleType:
    """deploy/image_check.py (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("image_check", ROOT / "deploy" / "image_check.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("image_check", module)
    spec.loader.exec_module(module)
    return module


def test_shellcheck_image_check_and_ci_script() -> None:
    shellcheck = _tool("shellcheck")
    for script in (SCRIPT, ROOT / ".ci" / "run"):
        result = subprocess.run(
            [shellcheck, "--shell=bash", str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(SCRIPT, os.X_OK), "deploy/image-check.sh must be executable"


def test_error_scan_flags_error_and_above_only() -> None:
    error_lines = _driver().error_lines
    log = "\n".join(
        [
            '{"level": "INFO", "logger": "gunicorn.error", "msg": "Starting gunicorn"}',
            '{"level": "WARNING", "msg": "an ERROR in a warning message is still a warning"}',
            '{"level": "ERROR", "logger": "gunicorn.error", "msg": "Control server error: [Errno 13]"}',
            '{"level": "CRITICAL", "msg": "worker timeout"}',
            "2026-11-30 15:21:51,844 INFO sandbox: started",
            "2026-11-30 15:21:52,000 ERROR sandbox: plain-text error",
            "Traceback (most recent call last):",
            "SANDBOX READY api=http://127.0.0.1:1 files=http://127.0.0.1:2",
        ]
    )
    found = error_lines(log)
    assert [line[:30] for line in found] == [
        '{"level": "ERROR", "logger": "',
        '{"level": "CRITICAL", "msg": "',
        "2026-11-30 15:21:52,000 ERROR ",
        "Traceback (most recent call la",
    ]


def test_broken_dockerfile_mode_still_has_its_line_to_remove() -> None:
    """--broken-dockerfile deletes this exact line; without it the negative check could not run."""
    assert re.search(r"^COPY workers/ workers/$", _read(ROOT / "Dockerfile"), re.MULTILINE)
    assert r"/^COPY workers\/ workers\/$/d" in _read(SCRIPT)


def test_ci_runs_the_image_check_after_the_suite_and_fails_with_it() -> None:
    ci = _read(ROOT / ".ci" / "run")
    assert "set -euo pipefail" in ci
    steps = [ci.index("timed make lint"), ci.index("timed make test"), ci.index("timed image_check")]
    assert steps == sorted(steps)
    body = ci[ci.index("image_check() {") : ci.index("timed make lint")]
    assert "deploy/image-check.sh\n" in body and "deploy/image-check.sh --broken-dockerfile" in body
    assert body.count("SKIPPED") == 2, "both skips (not root, packages not installable) say so"
    assert re.search(r"^image-check: \$\(STAMP\)\n\tdeploy/image-check.sh$", _read(ROOT / "Makefile"), re.MULTILINE)
