"""Each process runs with exactly its own role's secrets, as deploy/k8s/secret.example.yaml gives them (issue 12).

The Procfile's web, worker and poller are started with a scrubbed environment (``env -i``): the shared, non-secret
settings plus only the keys of that role's Secret (and AWS keys for the roles that have an IAM role). Together
they finish a job whose webhook never arrives, so the poller's schedule and the worker's copy both ran. And the
processes refuse to start on what issue 12 forbids: a web without its admin token, plain-http URLs off loopback,
loopback downloads against the real Twilio.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from devstack.procs import ManagedProcess, free_port, wait_until
from devstack.relay import REPO_ROOT, process_env, procfile
from tests.conftest import ADMIN_TOKEN, make_env

SECRETS = REPO_ROOT / "deploy" / "k8s" / "secret.example.yaml"
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
WITH_IAM_ROLE = {"web", "worker"}  # deploy/k8s/serviceaccount.yaml: the poller has no AWS identity


def role_keys() -> dict[str, set[str]]:
    docs = [d for d in yaml.safe_load_all(SECRETS.read_text()) if d]
    # the role Secrets carry a component label; the optional accounts-file Secret does not
    roles = [d for d in docs if "app.kubernetes.io/component" in d["metadata"].get("labels", {})]
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: set(d["stringData"]) for d in roles}


def role_env(full: dict[str, str], role: str) -> dict[str, str]:
    """The shared settings plus only ``role``'s secrets (AWS keys stand in for IRSA where the role has one)."""
    keys = role_keys()
    every_secret = set().union(*keys.values()) | AWS_CREDENTIALS
    env = {k: v for k, v in full.items() if k not in every_secret}
    env |= {k: full[k] for k in keys[role] if k in full}
    if role in WITH_IAM_ROLE:
        env |= {k: v for k, v in full.items() if k in AWS_CREDENTIALS}
    return env


def start_clean(kind: str, env: dict[str, str], log_dir: Path, name: str | None = None) -> ManagedProcess:
    """The Procfile line with ``env`` and nothing inherited from this test process."""
    assignments = [f"{k}={v}" for k, v in process_env(env).items()]
    argv = ["env", "-i", *assignments, "bash", "-c", f"exec {procfile()[kind]}"]
    return ManagedProcess(name or kind, argv, log_dir, cwd=REPO_ROOT).start()


@pytest.fixture
def procs() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for proc in started:
        proc.stop()


def _day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def test_the_secret_example_gives_admin_token_to_the_web_only() -> None:
    keys = role_keys()
    assert set(keys) == {"web", "worker", "poller"}
    assert [role for role, names in keys.items() if "ADMIN_TOKEN" in names] == ["web"]
    assert keys["poller"] == {"REDIS_URL"}


def test_each_role_with_only_its_own_secrets_finishes_a_job_the_webhook_missed(
    redis_url, s3, bucket, sandbox, tmp_path, procs
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full = make_env(redis_url, s3, bucket, sandbox, url, PORT=str(port), WEB_CONCURRENCY="1")
    full["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    (tmp_path / "prom").mkdir()
    sandbox.set_scenario(webhook={"drop": True})  # only the poller's schedule can finish the job
    logs = tmp_path / "logs"
    web = start_clean("web", role_env(full, "web"), logs)
    procs.append(web)
    web.wait_ready(lambda: requests.get(f"{url}/livez", timeout=1).status_code == 200, timeout=30)
    procs.append(start_clean("worker", role_env(full, "worker"), logs))
    procs.append(start_clean("poller", role_env(full, "poller"), logs))
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    body = {"resource_type": "Calls", "start_day": _day(4), "end_day": _day(4)}
    created = requests.post(f"{url}/api/jobs", json=body, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    sid = created.json()["job_sid"]

    def done() -> dict | None:
        view = requests.get(f"{url}/api/jobs/{sid}", headers=auth, timeout=10).json()
        return view if view["state"] in ("done", "failed") else None

    view = wait_until(done, timeout=90, interval=0.2, what="the job to finish")
    assert isinstance(view, dict) and view["state"] == "done" and view["webhooks_received"] == 0, view
    assert all(d["state"] == "copied" for d in view["days"])
    assert all(p.alive() for p in procs), "\n".join(p.tail(40) for p in procs)
    poller_log = procs[2].tail(200, since_start=True)
    assert "Traceback" not in poller_log, poller_log


def _refused(kind: str, env: dict[str, str], log_dir: Path, procs: list[ManagedProcess]) -> str:
    proc = start_clean(kind, env, log_dir)
    procs.append(proc)
    wait_until(lambda: not proc.alive(), timeout=60, what=f"{kind} to refuse to start")
    assert proc.proc is not None and proc.proc.returncode != 0
    return proc.tail(200, since_start=True)


@pytest.fixture
def web_env(redis_url, s3, bucket, sandbox, tmp_path) -> dict[str, str]:
    port = free_port()
    env = role_env(make_env(redis_url, s3, bucket, sandbox, f"http://127.0.0.1:{port}", PORT=str(port)), "web")
    return env | {"WEB_CONCURRENCY": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}


def test_the_web_refuses_to_start_without_its_admin_token(web_env, tmp_path, procs) -> None:
    log = _refused("web", {k: v for k, v in web_env.items() if k != "ADMIN_TOKEN"}, tmp_path / "logs", procs)
    assert "ADMIN_TOKEN is required by the web process" in log


def test_the_web_refuses_plain_http_off_loopback(web_env, tmp_path, procs) -> None:
    log = _refused("web", web_env | {"PUBLIC_BASE_URL": "http://relay.example.com"}, tmp_path / "logs", procs)
    assert "PUBLIC_BASE_URL must be https" in log


def test_the_worker_refuses_loopback_downloads_against_the_real_twilio(
    redis_url, s3, bucket, sandbox, tmp_path, procs
) -> None:
    env = role_env(make_env(redis_url, s3, bucket, sandbox, "https://relay.example.com"), "worker")
    env["TWILIO_BULKEXPORTS_BASE_URL"] = "https://bulkexports.twilio.com"  # DOWNLOAD_ALLOW_LOOPBACK=true stays
    log = _refused("worker", env, tmp_path / "logs", procs)
    assert "DOWNLOAD_ALLOW_LOOPBACK=true is for local stacks only" in log
