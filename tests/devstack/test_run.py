"""`make run` (scripts/run.py): the .env it reads, what it refuses, and a whole run against the local stack
(SeaweedFS over TLS and the Twilio sandbox standing in for the real bucket and Twilio) that serves, answers the
CLI and stops on SIGTERM leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from devstack.procs import descendants, free_port, port_open, wait_until
from devstack.relay import relay_env
from scripts import run as make_run
from tests.conftest import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-value-never-echoed"


def test_env_lines_are_parsed_like_a_shell_would_source_them() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=value",
            "export EXPORTED=1",
            'DOUBLE="with # hash and spaces"',
            "SINGLE='x y'  # trailing comment",
            "INLINE=abc #comment",
            "HASHED=pa#ss",
            "EMPTY=",
        ]
    )
    assert make_run.parse_env(text) == {
        "PLAIN": "value",
        "EXPORTED": "1",
        "DOUBLE": "with # hash and spaces",
        "SINGLE": "x y",
        "INLINE": "abc",
        "HASHED": "pa#ss",
        "EMPTY": "",
    }


@pytest.mark.parametrize("line", [f"NOT A LINE {SECRET}", f'TOKEN="{SECRET}', f"1BAD={SECRET}"])
def test_a_bad_env_line_is_named_by_number_without_its_value(line: str) -> None:
    with pytest.raises(make_run.RunError, match=r"^\.env:2: ") as exc:
        make_run.parse_env(f"OK=1\n{line}\n")
    assert SECRET not in str(exc.value)


def test_env_example_documents_every_setting_the_relay_reads() -> None:
    sources = "\n".join(p.read_text() for p in sorted((ROOT / "app" / "platform" / "config").glob("[!_]*.py")))
    contract = set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', sources))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert contract - documented == set()
    required = {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "S3_BUCKET", "ADMIN_TOKEN", "SYNC_FEEDS"}
    assert required <= set(make_run.parse_env(example))  # uncommented: the ones to fill in
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def run_main(tmp_path: Path, env_text: str | None, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    env_file = tmp_path / ".env"
    if env_text is not None:
        env_file.write_text(env_text)
    code = make_run.main(["--env-file", str(env_file), "--workdir", str(tmp_path / "run")])
    return code, capsys.readouterr().err


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings come from the .env under test only (a variable in the environment would win)."""
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "S3_", "AWS_", "ADMIN_", "SYNC_", "PUBLIC_", "REDIS_", "PORT")):
            monkeypatch.delenv(name)


def test_a_missing_env_file_is_refused_with_what_to_do(tmp_path, capsys, clean_environ) -> None:
    code, err = run_main(tmp_path, None, capsys)
    assert code == 2 and "copy .env.example to .env" in err
    assert not (tmp_path / "run").exists()  # nothing started, nothing made


def test_an_incomplete_env_file_lists_every_missing_setting(tmp_path, capsys, clean_environ) -> None:
    code, err = run_main(tmp_path, f"TWILIO_ACCOUNT_SID=AC{'0' * 32}\nAWS_SECRET_ACCESS_KEY={SECRET}\n", capsys)
    assert code == 2
    assert (
        "is incomplete: set TWILIO_AUTH_TOKEN (or TWILIO_API_KEY_SID + TWILIO_API_KEY_SECRET), S3_BUCKET, ADMIN_TOKEN"
        in err
    )
    assert SECRET not in err


def test_the_relays_own_config_error_is_shown(tmp_path, capsys, clean_environ) -> None:
    text = f"TWILIO_ACCOUNT_SID=AC123\nTWILIO_AUTH_TOKEN={SECRET}\nS3_BUCKET=b\nADMIN_TOKEN={ADMIN_TOKEN}\n"
    code, err = run_main(tmp_path, text, capsys)
    assert code == 2 and "TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits" in err
    assert SECRET not in err


@pytest.fixture
def local_env_file(tmp_path, seaweed_s3, sandbox) -> Iterator[Path]:
    """A .env pointing at the local stack, as a user's would point at Twilio and S3 (no REDIS_URL: make run's)."""
    bucket = f"relay-{uuid.uuid4().hex[:12]}"
    seaweed_s3.client().create_bucket(Bucket=bucket)
    env = relay_env("", seaweed_s3, sandbox, "", bucket, ADMIN_TOKEN, POLL_INTERVAL_SECONDS="1", WEB_CONCURRENCY="1")
    path = tmp_path / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items() if v))
    yield path


def leftovers(workdir: Path) -> list[int]:
    """Live processes of a run in ``workdir``: Redis (its --dir) and the relay's (their metrics directory)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            mine = str(workdir) in " ".join(proc.info["cmdline"] or [])
            mine = mine or proc.environ().get("PROMETHEUS_MULTIPROC_DIR", "").startswith(str(workdir))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if mine and proc.pid != os.getpid():
            found.append(proc.pid)
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_make_run_serves_answers_the_cli_and_stops_on_sigterm_leaving_nothing(tmp_path, local_env_file) -> None:
    port, workdir = free_port(), tmp_path / "run"
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    child_env = {**keep, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "scripts.run", "--env-file", str(local_env_file), "--workdir", str(workdir)]
    out = tmp_path / "make-run.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [*argv, "--port", str(port)], stdout=fh, stderr=subprocess.STDOUT, env=child_env, cwd=ROOT
        )
    started: list[int] = []
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/livez", timeout=1).status_code == 200, timeout=90, what="/livez")
        wait_until(lambda: "relay running" in out.read_text(), timeout=90, what="the banner")
        text = out.read_text()
        assert f"relay running: {url}" in text and "no PUBLIC_BASE_URL" in text and ADMIN_TOKEN not in text
        cookie = requests.get(f"{url}/console/sign-in", timeout=10).headers["Set-Cookie"]
        assert "Secure" not in cookie, "http://127.0.0.1: a Secure cookie might never come back"
        feed = requests.put(
            f"{url}/api/feeds/Messages",
            json={"since": "2020-01-01", "enabled": False},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert feed.status_code == 200, feed.text
        listed = _cli(argv, child_env, "relay", "feed", "list")
        assert listed.returncode == 0 and "Messages" in listed.stdout, listed.stdout + listed.stderr
        started = descendants(proc.pid)
        assert len(started) >= 4 and len(leftovers(workdir)) >= 4  # redis, web (and its workers), worker, poller
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, out.read_text()[-3000:]
        assert [pid for pid in started if not _gone(pid)] == [] and leftovers(workdir) == []
        assert not port_open(port) and not (workdir / "run.json").exists()
        assert "make run: stopped" in out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in started or descendants(proc.pid):
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def _cli(argv: list[str], env: dict[str, str], *args: str) -> Any:
    return subprocess.run([*argv, "cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_sigterm_while_starting_leaves_nothing(tmp_path, local_env_file) -> None:
    workdir = tmp_path / "run"
    keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    argv = [sys.executable, "-m", "scripts.run", "--env-file", str(local_env_file), "--workdir", str(workdir)]
    env = {**keep, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*argv, "--port", str(free_port())], env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: (workdir / "logs" / "web.log").exists(), timeout=60, what="the web to be starting")
        assert leftovers(workdir)  # Redis and the web are running
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert leftovers(workdir) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in leftovers(workdir):
            os.kill(pid, signal.SIGKILL)
