"""Shared fixtures: real servers on free loopback ports, started once per session, isolated per test.

- ``redis_server``: a real redis-server (AOF on); every test that uses ``redis_url`` starts from an empty db.
- ``s3``: moto's S3 server over TLS (boto3 sends its default checksums only over HTTPS); ``bucket`` is new per test.
  tests/e2e and tests/chaos override ``s3`` with ``seaweed_s3``: SeaweedFS (``weed mini``) over TLS, a real S3
  server that checks checksums; ``moto_s3`` is the same moto server as ``s3`` here, by a name any suite can ask for;
  ``rclone_s3`` is ``rclone serve s3`` over TLS (a store whose PutObjectTagging replaces the object).
- ``sandbox``: the project's Twilio BulkExports sandbox, reset per test.
- ``relay_env``: the environment contract for the service's processes, pointing at all of the above.
A failing test that started processes prints the tail of each log (see ``stack`` in tests/e2e).

Under pytest-xdist (``make test``: ``-n``), every worker is a session of its own, so each has its own servers on
free ports; ``pytest_xdist_make_scheduler`` keeps the modules of ONE_WORKER_MODULES whole on one worker.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from devstack.calendar import Calendar
from devstack.procs import NotReady, stop_all
from devstack.redis_server import RedisServer
from devstack.relay import relay_env

if TYPE_CHECKING:
    from xdist.scheduler import LoadScheduling
    from xdist.workermanage import WorkerController

    from devstack.s3_server import MotoS3Server, RcloneS3Server, S3Server, SeaweedS3Server
    from devstack.sandbox_process import SandboxProcess

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"

# Modules whose tests share state across tests (tests/fuzz counts every test's requests in its last one): under
# xdist each runs whole, in file order, on the first worker, which gets it before anything else.
ONE_WORKER_MODULES = ("tests/fuzz/test_fuzz.py::",)
Server = TypeVar("Server", bound=contextlib.AbstractContextManager[Any])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScheduling:
    """xdist's ``load`` scheduling with ONE_WORKER_MODULES pinned. Not xdist's ``loadgroup``: it tells tests apart
    by node id, and schemathesis gives every operation's test the same one (only the first would run)."""
    from xdist.scheduler import LoadScheduling

    class PinnedLoadScheduling(LoadScheduling):
        pinned_sent = False

        def _send_tests(self, node: WorkerController, num: int) -> None:
            if not self.pinned_sent:  # the first batch of the run: the pinned modules, all of them, to this worker
                self.pinned_sent = True
                assert self.collection is not None
                pinned = [i for i in self.pending if self.collection[i].startswith(ONE_WORKER_MODULES)]
                if pinned:
                    self.pending[:] = [i for i in self.pending if i not in set(pinned)]
                    self.node2pending[node].extend(pinned)
                    node.send_runtest_some(pinned)
                    return
            super()._send_tests(node, num)

    return PinnedLoadScheduling(config, log)


@contextlib.contextmanager
def started(make: Callable[[], Server]) -> Iterator[Server]:
    """``make()`` started (and stopped on exit), on fresh ports again (3 tries) when another process took one of its
    ports between the free-port probe and the server's bind: parallel workers start their servers at one moment."""
    for attempt in range(3):
        server = make()
        try:
            server.__enter__()
        except NotReady as exc:
            # "address already in use" (redis, moto, rclone); SeaweedFS: "port N for X ... is not available"
            if attempt == 2 or not re.search(r"address already in use|is not available", str(exc), re.IGNORECASE):
                raise
            continue
        try:
            yield server
        finally:
            server.__exit__(None, None, None)
        return


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def redis_server(run_dir: Path) -> Iterator[RedisServer]:
    with started(lambda: RedisServer(run_dir / "redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def moto_s3(run_dir: Path) -> Iterator[MotoS3Server]:
    from devstack.s3_server import MotoS3Server

    with started(lambda: MotoS3Server(tls=True, log_dir=run_dir)) as server:
        yield server


@pytest.fixture(scope="session")
def s3(moto_s3: MotoS3Server) -> MotoS3Server:
    return moto_s3


@pytest.fixture(scope="session")
def seaweed_s3(run_dir: Path) -> Iterator[SeaweedS3Server]:
    from devstack.s3_server import SeaweedS3Server

    with started(lambda: SeaweedS3Server(run_dir, tls=True)) as server:
        yield server


@pytest.fixture(scope="session")
def rclone_s3(run_dir: Path) -> Iterator[RcloneS3Server]:
    from devstack.s3_server import RcloneS3Server

    with started(lambda: RcloneS3Server(run_dir, tls=True)) as server:
        yield server


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"relay-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def sandbox_session(run_dir: Path) -> Iterator[SandboxProcess]:
    from devstack.sandbox_process import SandboxProcess

    with SandboxProcess(log_path=run_dir / "sandbox.log") as sb:
        yield sb


@pytest.fixture
def sandbox(sandbox_session: SandboxProcess) -> SandboxProcess:
    sandbox_session.reset()
    return sandbox_session


def make_env(
    redis_url: str, s3: S3Server, bucket: str, sandbox: SandboxProcess, public_base_url: str, **overrides: str
) -> dict[str, str]:
    """The contract for tests: fast polls and short copy retries."""
    fast = {"POLL_INTERVAL_SECONDS": "1", "COPY_RETRY_INTERVALS": "1,1,2,2,3"}
    return relay_env(redis_url, s3, sandbox, public_base_url, bucket, ADMIN_TOKEN, **{**fast, **overrides})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_all()  # never leave a process behind, whatever happened


SIM_TODAY = date(2026, 6, 10)  # where tests that move the calendar start (01:00 UTC, far from midnight)


@pytest.fixture
def calendar(sandbox: SandboxProcess, tmp_path: Path) -> Calendar:
    """The sandbox's simulated calendar and the relay's clock file, moved together (devstack/calendar.py); the
    relay follows it when started with ``calendar.env()`` in its environment."""
    cal = Calendar(sandbox, tmp_path / "clock-offset")
    cal.set_today(SIM_TODAY)
    return cal
