"""The ``relay`` command both ways against the real stack (gunicorn, Redis, S3, the sandbox), as a subprocess:
in-process with the service's environment, and remote with nothing but ``--url`` and ``--token``. The same command
prints the same JSON either way; every failure is one line on stderr with its documented exit status
(``app.cli.client.EXIT_CODES``); and ``pip install .`` into a fresh virtualenv gives a working ``relay``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from app.cli.client import (
    EXIT_CONFIG,
    EXIT_NOT_FOUND,
    EXIT_RATE_LIMITED,
    EXIT_UNAUTHORIZED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from app.platform.guess_limit import API_TOKEN
from app.platform.version import version
from devstack.procs import free_port, wait_until
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BARE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}  # no setting of the service


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def run(env: dict[str, str], *args: str, exe: list[str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [*(exe or [sys.executable, "-m", "app.cli.main"]), *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def both(make_stack):
    """A running stack, and ``relay`` in-process (the service's environment) and remote (URL and token only)."""
    stack = make_stack(workers=0)
    local_env = {**BARE_ENV, **{k: v for k, v in stack.env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}}

    def local(*args: str) -> subprocess.CompletedProcess:
        return run(local_env, *args)

    def remote(*args: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess:
        return run(BARE_ENV, "--url", stack.url, "--token", token, *args)

    return stack, local, remote


def ok_json(result: subprocess.CompletedProcess) -> object:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line_failure(result: subprocess.CompletedProcess, status: int) -> str:
    """The failure's only output: one ``error: ...`` line on stderr, nothing on stdout, and its exit status."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def agree(local, remote, *args: str) -> object:
    """The same command's JSON both ways (read again until both reads see the same moment of a live list)."""

    def same() -> object | None:
        mine, theirs = ok_json(local(*args, "--json")), ok_json(remote(*args, "--json"))
        return mine if mine == theirs else None

    return wait_until(same, timeout=30, interval=0.2, what=f"relay {' '.join(args)} to agree both ways")


def test_the_same_command_gives_the_same_json_both_ways(both):
    stack, local, remote = both
    (sent,) = ok_json(remote("submit", "Calls", day(5), day(4), "--name", "remote", "--json"))
    (made,) = ok_json(local("submit", "Messages", day(3), day(3), "--name", "local", "--json"))
    assert set(sent) == set(made) and sent["resource_type"] == "Calls" and made["resource_type"] == "Messages"
    listed = agree(local, remote, "list")
    assert {j["job_sid"] for j in listed["jobs"]} == {sent["job_sid"], made["job_sid"]}
    assert listed["meta"]["total"] == 2
    for job in (sent, made):
        assert agree(local, remote, "status", job["job_sid"])["job_sid"] == job["job_sid"]
    assert ok_json(remote("feed", "set", "Calls", "--since", day(10), "--json"))["managed_by"] == "api"
    assert [f["resource_type"] for f in agree(local, remote, "feed", "list")["feeds"]] == ["Calls"]
    assert agree(local, remote, "feed", "show", "Calls")["since"] == day(10)
    assert [f["resource_type"] for f in agree(local, remote, "coverage", "Calls")["feeds"]] == ["Calls"]
    assert [a["sid"] for a in agree(local, remote, "accounts")["accounts"]] == [stack.env["TWILIO_ACCOUNT_SID"]]
    twilio_jobs = agree(local, remote, "twilio-jobs", "Calls")
    assert [j["job_sid"] for j in twilio_jobs["jobs"]] == [sent["job_sid"]] and twilio_jobs["jobs"][0]["tracked"]
    assert agree(local, remote, "twilio-days", "Calls")["resource_type"] == "Calls"


def test_people_read_the_same_table_both_ways(both):
    _, local, remote = both
    ok_json(remote("submit", "Calls", day(5), day(4), "--json"))

    def same_table() -> str | None:
        mine, theirs = local("list"), remote("list")
        assert mine.returncode == theirs.returncode == 0, (mine.stderr, theirs.stderr)
        return mine.stdout if mine.stdout == theirs.stdout else None

    table = wait_until(same_table, timeout=30, interval=0.2, what="the list table to agree both ways")
    assert "Calls" in table and table.rstrip().endswith("(1 tracked)")


def test_each_failure_is_one_line_with_its_exit_status(both):
    _, local, remote = both
    missing = f"JS{'0' * 32}"
    assert one_line_failure(local("status", missing), EXIT_NOT_FOUND) == one_line_failure(
        remote("status", missing), EXIT_NOT_FOUND
    )
    assert one_line_failure(local("submit", "Faxes", day(4), day(3)), 1) == one_line_failure(
        remote("submit", "Faxes", day(4), day(3)), 1
    )
    assert "401" in one_line_failure(remote("list", token="not-the-token"), EXIT_UNAUTHORIZED)
    assert "in-process only" in one_line_failure(remote("doctor"), EXIT_USAGE)
    assert "in-process only" in one_line_failure(remote("migrate-layout", "--to", "{resource_type}/{day}"), EXIT_USAGE)
    no_token = run(BARE_ENV, "--url", "http://127.0.0.1:1", "list")
    assert "RELAY_TOKEN" in one_line_failure(no_token, EXIT_CONFIG)
    clear_text = run(BARE_ENV, "--url", "http://relay.example.com", "--token", ADMIN_TOKEN, "list")
    assert "plain http" in one_line_failure(clear_text, EXIT_USAGE)  # the token never crosses a network unencrypted
    unreachable = run(BARE_ENV, "--url", f"http://127.0.0.1:{free_port()}", "--token", ADMIN_TOKEN, "list")
    assert "cannot reach the relay" in one_line_failure(unreachable, EXIT_UNAVAILABLE)


def test_the_guess_limit_is_exit_7_with_its_retry_after(both):
    stack, _, remote = both
    wrong = {"Authorization": "Bearer not-the-token"}
    for _ in range(API_TOKEN.max_per_client):
        assert requests.get(f"{stack.url}/api/jobs", headers=wrong, timeout=10).status_code == 401
    line = one_line_failure(remote("list"), EXIT_RATE_LIMITED)  # the right token too, while limited
    assert "Retry-After: " in line and line.rstrip().endswith(" s)")


def test_no_configuration_and_no_url_is_one_line_exit_3_and_version_needs_none():
    assert "TWILIO_ACCOUNT_SID" in one_line_failure(run(BARE_ENV, "list"), EXIT_CONFIG)
    shown = run(BARE_ENV, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"relay {version()}" and shown.stderr == ""


def test_redis_down_in_process_is_one_line_exit_4(both):
    stack, _, _ = both
    env = {**BARE_ENV, **stack.env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    assert "Redis is not reachable" in one_line_failure(run(env, "list"), EXIT_UNAVAILABLE)


def test_pip_install_gives_a_relay_command_that_works_remotely(both, tmp_path):
    """Built from a copy of the tree (no build/ left in the checkout) with the pinned setuptools of the dev venv,
    installed without dependencies into a fresh venv that borrows the dev venv's packages (offline, fast)."""
    stack, _, _ = both
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for package in ("app", "workers"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("bulkexport_relay-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(
        subprocess.check_output(
            [venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    (site / "dev-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")  # the dependencies, already installed
    installed = subprocess.run(
        [*pip, "--python", str(venv / "bin/python"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    relay = [str(venv / "bin/relay")]
    shown = run(BARE_ENV, "--version", exe=relay, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.strip() == f"relay {version()}", shown.stderr
    listed = run(
        {**BARE_ENV, "RELAY_URL": stack.url, "RELAY_TOKEN": ADMIN_TOKEN}, "list", "--json", exe=relay, cwd=tmp_path
    )
    assert ok_json(listed) == {"jobs": [], "meta": {"page": 0, "page_size": 50, "total": 0, "has_more": False}}
    where = run(BARE_ENV, exe=[str(venv / "bin/python"), "-c", "import app; print(app.__file__)"], cwd=tmp_path)
    assert where.stdout.startswith(str(site)), where.stdout  # the installed copy, not the checkout
