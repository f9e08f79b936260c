"""The whole service as in production: gunicorn (Procfile `web`), `rq worker` (Procfile `worker`) and the RQ
cron poller (Procfile `poller`), wired to real Redis, SeaweedFS S3 over TLS and the Twilio sandbox.

``s3`` is SeaweedFS (``seaweed_s3``), or the server named by ``RELAY_E2E_S3`` (seaweedfs, moto, rclone) to run
the whole suite on another store. A test parametrized with ``@pytest.mark.parametrize("s3", ["seaweedfs",
"moto", "rclone"], indirect=True)`` runs on each, so the moto-over-TLS path and ``rclone serve s3`` (a store
whose tags are unsafe: the relay keeps the digest in the job manifests there) stay covered too.

On failure, the tail of every process log is printed (pytest shows it under "Captured stdout teardown").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from devstack.procs import ManagedProcess, free_port, wait_until
from devstack.relay import start_process, start_web
from devstack.s3_server import S3Server
from tests.conftest import ADMIN_TOKEN, make_env

SERVER_FIXTURES = {"seaweedfs": "seaweed_s3", "moto": "moto_s3", "rclone": "rclone_s3"}


@pytest.fixture(scope="session")
def s3(request: pytest.FixtureRequest) -> S3Server:
    """SeaweedFS over TLS (or RELAY_E2E_S3's server); ``moto`` or ``rclone`` as the (indirect) parameter gives that
    server over TLS instead."""
    name = getattr(request, "param", os.environ.get("RELAY_E2E_S3", "seaweedfs"))
    assert name in SERVER_FIXTURES, name
    server: S3Server = request.getfixturevalue(SERVER_FIXTURES[name])
    return server


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    log_dir: Path
    procs: dict[str, ManagedProcess] = field(default_factory=dict)

    def api(self, method: str, path: str, **kw: object) -> requests.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return requests.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kw)  # type: ignore[arg-type]

    def start_worker(self, name: str) -> ManagedProcess:
        proc = start_process("worker", self.env, self.log_dir, name=name)
        self.procs[name] = proc
        return proc

    def start_poller(self) -> ManagedProcess:
        proc = start_process("poller", self.env, self.log_dir, name="poller")
        self.procs["poller"] = proc
        return proc

    def wait_job(
        self, sid: str, states: tuple[str, ...] = ("done", "failed", "cancelled"), timeout: float = 90
    ) -> dict:
        def final() -> dict | None:
            view = self.api("GET", f"/api/jobs/{sid}").json()
            return view if view["state"] in states else None

        return wait_until(final, timeout=timeout, interval=0.2, what=f"job {sid} to reach {states}")  # type: ignore[return-value]

    def logs(self) -> str:
        return "\n".join(f"===== {name} =====\n{p.tail(80)}" for name, p in self.procs.items())

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


@pytest.fixture
def make_stack(request, redis_url, s3, bucket, sandbox, tmp_path) -> Iterator:
    stacks: list[Stack] = []

    def factory(workers: int = 1, poller: bool = False, **env_overrides: str) -> Stack:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = make_env(
            redis_url,
            s3,
            bucket,
            sandbox,
            url,
            **({"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")} | env_overrides),
        )
        stack = Stack(url=url, env=env, log_dir=tmp_path / "logs")
        stacks.append(stack)
        web, _ = start_web(env, stack.log_dir, port=port)
        stack.procs["web"] = web
        for i in range(workers):
            stack.start_worker(f"worker{i + 1}")
        if poller:
            stack.start_poller()
        return stack

    yield factory
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for stack in stacks:
        if failed:
            print(stack.logs())
        stack.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
