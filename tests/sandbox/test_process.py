"""SandboxProcess and ``python -m sandbox`` as a process: readiness, clean SIGTERM, errors, concurrency."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from devstack.procs import wait_until
from devstack.sandbox_process import SandboxError, SandboxProcess

ROOT = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_ready_line_urls_and_clean_sigterm(tmp_path: Path) -> None:
    sb = SandboxProcess(log_path=tmp_path / "sb.log", scenario={"step_seconds": 0.5, "seed": 3})
    with sb:
        assert sb.api_url.startswith("http://127.0.0.1:") and sb.files_url.startswith("http://127.0.0.1:")
        assert sb.health() == {
            "status": "ok",
            "api_url": sb.api_url,
            "files_url": sb.files_url,
            "account_sid": sb.account_sid,
        }
        assert sb.get_scenario()["seed"] == 3  # the constructor's scenario is loaded at start
        pid = sb.pid
        assert pid is not None
        proc = sb.proc
    assert proc is not None and proc.returncode == 0  # SIGTERM is a clean exit
    assert gone(pid)
    assert sb.tail().count("SANDBOX READY") == 1
    sb.stop()  # twice is fine


def test_cli_prints_exactly_one_ready_line_on_stdout(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SANDBOX_AUTH_TOKEN": "ab" * 16}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--files-port", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("SANDBOX READY api=http://127.0.0.1:") and " files=http://127.0.0.1:" in line
        api = line.split()[2].removeprefix("api=")
        assert requests.get(f"{api}/v1/Exports/Calls", auth=("AC" + "5a" * 16, "ab" * 16)).ok  # env default used
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_start_failure_raises_with_the_log_tail(tmp_path: Path) -> None:
    sb = SandboxProcess(log_path=tmp_path / "bad.log", extra_args=["--port", "not-a-port"])
    with pytest.raises(SandboxError) as err:
        sb.start()
    assert "invalid int value" in str(err.value)
    assert not sb.alive()


def test_bad_scenario_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "scenario.json"
    bad.write_text(json.dumps({"days": {"2026-11-01": "exploded"}}))
    sb = SandboxProcess(log_path=tmp_path / "bad.log", extra_args=["--scenario", str(bad)])
    with pytest.raises(SandboxError, match="outcome must be one of"):
        sb.start()


def test_many_concurrent_requests(sb: SandboxProcess) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0)

    def one(i: int) -> int:
        with requests.Session() as s:
            s.auth = sb.auth
            day = f"2026-10-{1 + i % 28:02d}"
            created = s.post(
                f"{sb.api_url}/v1/Exports/Messages/Jobs",
                data={"StartDay": day, "EndDay": day, "FriendlyName": f"c{i}"},
            )
            assert created.status_code == 201, created.text
            return s.get(f"{sb.api_url}/v1/Exports/Messages/Days", params={"PageSize": 400}).status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        assert set(pool.map(one, range(96))) == {200}
    wait_until(lambda: all(j["final"] for j in sb.jobs()), timeout=20)
    assert len(sb.jobs()) == 96

    def download(day: str) -> int:
        return len(requests.get(f"{sb.api_url}/v1/Exports/Messages/Days/{day}", auth=sb.auth).content)

    with ThreadPoolExecutor(max_workers=28) as pool:
        sizes = list(pool.map(download, [f"2026-10-{d:02d}" for d in range(1, 29)]))
    assert sizes == [4096] * 28


def test_sandbox_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """A SIGKILLed test runner must not leave a sandbox behind: the child watches --parent-pid."""
    script = (
        "import sys, time\n"
        "from devstack.sandbox_process import SandboxProcess\n"
        f"sb = SandboxProcess(log_path={str(tmp_path / 'orphan.log')!r}).start()\n"
        "print(sb.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, start_new_session=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not gone(child)
        parent.kill()  # no atexit, no cleanup: only the watch can stop the child
        parent.wait(timeout=10)
        wait_until(lambda: gone(child) or _reaped_zombie(child), timeout=15, what="orphaned sandbox to exit")
    finally:
        if parent.poll() is None:
            parent.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)


def _reaped_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] == "Z"
    except FileNotFoundError:
        return True
