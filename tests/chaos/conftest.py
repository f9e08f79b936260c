"""Chaos scenarios: the real stack of tests/e2e (gunicorn, rq workers, rq cron poller, SeaweedFS S3 over TLS),
hurt on purpose.

Shared helpers:
- ``crash(proc)``: SIGKILL a process *and its work horse*. An rq work horse calls ``os.setpgrp()``, so killing
  the worker's process group (``ManagedProcess.kill``) leaves the horse running, orphaned, finishing its copy:
  that is not a crash. ``crash`` kills every descendant by pid first, then the group.
- ``signal_tree(proc, sig)``: a signal to the group and every descendant (SIGSTOP/SIGCONT a worker and its horse).
  The tests never talk to S3 while a worker is frozen (moto over TLS, which they ran on before SeaweedFS, stalled
  every client while one sat in a TLS handshake) and use ``QUICK`` client timeouts.
- ``chaos_stack``: ``make_stack`` plus a teardown that SIGKILLs any work horse still alive (same reason).
- ``Supervisor``: restarts a stack's workers that exit, as a Procfile runner or Kubernetes would.
- ``signed_webhook``: one delivery signed exactly as Twilio signs a form POST.
- ``DataKeyWatcher``: lists the data keys in a background thread while a scenario runs and records every
  object whose size is not the day's full size (a partial object must never be visible).
- ``assert_days_exact``: every day's object is byte-exact (sha256 and size vs ``sandbox.expected_day``).

``CHAOS_LONG=1`` (``make chaos``) selects the long variants.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Self

import pytest
import requests
from twilio.request_validator import RequestValidator

from devstack.procs import ManagedProcess, descendants
from tests.e2e.conftest import make_stack, pytest_runtest_makereport, s3  # noqa: F401

LONG = os.environ.get("CHAOS_LONG", "") not in ("", "0")
PREFIX = "twilio/"
# botocore settings for the tests' own S3 clients while processes are being frozen, killed or restarted: fail
# fast instead of waiting out the 60 s default read timeout (times 5 attempts) on a stalled server.
QUICK: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 2}}


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def data_key(rt: str, the_day: str) -> str:
    return f"{PREFIX}{rt}/day={the_day}/{rt}-{the_day}.json.gz"


# -- processes ---------------------------------------------------------------------------------------------


def crash(proc: ManagedProcess) -> int:
    """SIGKILL the process, its group and every descendant (the rq work horse lives in its own group).
    Returns how many descendants were killed with it."""
    if not proc.alive():
        return 0
    kids = descendants(proc.pid)
    for pid in kids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.kill()
    return len(kids)


def signal_tree(proc: ManagedProcess, sig: int) -> None:
    """Send ``sig`` to the process group and to every descendant (e.g. SIGSTOP / SIGCONT a worker and its horse)."""
    for pid in descendants(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    proc.signal(sig)


@pytest.fixture
def chaos_stack(make_stack) -> Iterator[Any]:  # noqa: F811 - the fixture imported above
    stacks: list[Any] = []

    def factory(*args: Any, **kwargs: Any) -> Any:
        stack = make_stack(*args, **kwargs)
        stacks.append(stack)
        return stack

    yield factory
    for stack in stacks:
        for proc in stack.procs.values():
            if proc.alive():
                for pid in descendants(proc.pid):  # horses survive the group kill of stop()
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


class _Background:
    """A watch loop (``_run``, polling ``self._stop``) on a daemon thread for the duration of a ``with`` block."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        raise NotImplementedError


class Supervisor(_Background):
    """Restarts any ``worker*`` or ``poller`` process of a stack that exits, as a Procfile runner or Kubernetes
    would (``rq worker`` and ``rq cron`` exit when they lose Redis at the wrong moment). Bounded: at most
    ``max_restarts``."""

    def __init__(self, stack: Any, max_restarts: int = 20) -> None:
        super().__init__("worker-supervisor")
        self.stack = stack
        self.max_restarts = max_restarts
        self.restarts: list[str] = []

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.restarts) < self.max_restarts:
            for name, proc in list(self.stack.procs.items()):
                if not (name.startswith("worker") or name == "poller") or proc.proc is None or proc.alive():
                    continue
                self.restarts.append(name)
                self.stack.procs[f"exited{len(self.restarts)}-{name}"] = self.stack.procs.pop(name)  # log kept
                if name == "poller":
                    self.stack.start_poller()
                else:
                    self.stack.start_worker(f"worker-r{len(self.restarts)}")
            self._stop.wait(0.2)  # bounded pause of a watch loop


# -- webhooks ----------------------------------------------------------------------------------------------


def signed_webhook(url: str, auth_token: str, timeout: float = 10) -> int:
    """POST the completion callback to ``url`` signed as Twilio would; returns the HTTP status."""
    params = {"status": "completed"}
    signature = RequestValidator(auth_token).compute_signature(url, params)
    resp = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=timeout)
    return resp.status_code


def webhook_url(sandbox: Any, sid: str) -> str:
    urls = [j["webhook_url"] for j in sandbox.jobs() if j["job_sid"] == sid]
    assert urls and urls[0], f"sandbox has no webhook URL for {sid}"
    return str(urls[0])


# -- S3 ------------------------------------------------------------------------------------------------------


class DataKeyWatcher(_Background):
    """Lists the data keys (not staging, manifests or the registry marker) over and over; records objects that are
    not full size."""

    def __init__(self, client: Any, bucket: str, expected_sizes: dict[str, int]) -> None:
        super().__init__("data-key-watcher")
        self.client = client
        self.bucket = bucket
        self.expected = expected_sizes
        self.violations: list[str] = []
        self.listings = 0
        self.seen: set[str] = set()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # S3 may be down on purpose
                self.check_once()
            self._stop.wait(0.1)  # bounded pause between listings of a load loop

    def check_once(self) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=PREFIX):
            for obj in page.get("Contents") or []:
                key = obj["Key"]
                if "/_staging/" in key or "/_manifests/" in key or "/_relay/" in key:
                    continue  # not day files: staging (older versions), manifests, the registry marker
                self.seen.add(key)
                want = self.expected.get(key)
                if want is None:
                    self.violations.append(f"unexpected data key {key}")
                elif obj["Size"] != want:
                    self.violations.append(f"{key} listed with {obj['Size']} bytes, not {want}")
        self.listings += 1


def expected_sizes(sandbox: Any, rt: str, days: list[str]) -> dict[str, int]:
    return {data_key(rt, d): int(sandbox.expected_day(rt, d)["size"]) for d in days}


def assert_days_exact(client: Any, bucket: str, sandbox: Any, rt: str, view: dict[str, Any]) -> None:
    """Every day of the job view is copied, and the object in S3 is the sandbox's file, byte for byte."""
    for d in view["days"]:
        expected = sandbox.expected_day(rt, d["day"])
        assert d["state"] == "copied", d
        assert d["key"] == data_key(rt, d["day"])
        body = client.get_object(Bucket=bucket, Key=d["key"])["Body"].read()
        assert len(body) == expected["size"], (d["day"], len(body), expected["size"])
        assert hashlib.sha256(body).hexdigest() == expected["sha256"] == d["sha256"], d["day"]


def assert_no_leftovers(client: Any, bucket: str) -> int:
    """Run the janitor with no age threshold, then nothing staged or half-uploaded may remain."""
    from workers.sink import S3Sink, SinkSettings

    removed = S3Sink(client, SinkSettings(bucket=bucket, prefix=PREFIX)).abort_stale_uploads(timedelta(0))
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert "Contents" not in client.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}_staging/")
    return removed
