"""Redis SIGKILLed and restarted (AOF on, same port) under webhook load.

A delivery thread plays Twilio for several jobs: it POSTs each job's signed callback until one is answered 2xx,
then stops for that job, so each job's copy depends on exactly one acknowledged delivery. Jobs are released in
groups: acknowledged just before the kill, released during the outage (answered 503, retried until Redis is
back), and released after the restart. During the first outage no worker and no poller runs, so the syncs
acknowledged before the kill are still queued and nothing but those acknowledgements gets their jobs copied.
In the long variant two more outages strike right after acknowledgements, while the workers run those syncs
and copies, with the poller on (as in production) and a supervisor restarting any worker that gives up.

Every answer must be 204 or 503, every answer to a delivery sent and answered while Redis was down must be 503,
and every job acknowledged with a 2xx must end with its day copied byte-exact, written once.
A dedicated Redis server is used, so the session one is never disturbed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from app.jobs.marks import MarkStore
from devstack.procs import wait_until
from devstack.redis_server import RedisServer
from tests.chaos.conftest import LONG, Supervisor, assert_days_exact, day, signed_webhook, webhook_url

pytestmark = pytest.mark.chaos

RT = "Messages"
MAX_DELIVERIES = 20_000  # hard bound on the load, whatever happens


@dataclass
class Delivery:
    sid: str
    status: int  # 0: no answer (connection error)
    sent: float
    answered: float


@dataclass
class Twilio:
    """Delivers each released job's callback until a 2xx, like a retrying sender, with a short pause per pass."""

    urls: dict[str, str]
    auth_token: str
    released: list[str] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    log: list[Delivery] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set() and len(self.log) < MAX_DELIVERIES:
            for sid in [s for s in list(self.released) if s not in self.acked]:
                sent = time.monotonic()
                try:
                    status = signed_webhook(self.urls[sid], self.auth_token, timeout=10)
                except OSError:
                    status = 0
                self.log.append(Delivery(sid, status, sent, time.monotonic()))
                if 200 <= status < 300:
                    self.acked.add(sid)
            self.stop.wait(0.02)  # bounded pause of the load loop

    def release(self, sids: list[str]) -> None:
        self.released.extend(sids)

    def all_acked(self) -> bool:
        return set(self.released) <= self.acked


@pytest.fixture
def redis_srv(tmp_path) -> Iterator[RedisServer]:
    """A Redis of this test's own (set up before the stack, so it is stopped after the stack's processes)."""
    with RedisServer(tmp_path / "redis-chaos") as server:
        yield server


def test_redis_sigkill_under_webhook_load(redis_srv, chaos_stack, sandbox, s3, bucket):
    n_jobs = 14 if LONG else 9
    outages = 3 if LONG else 1
    sandbox.set_scenario(webhook={"drop": True}, default_day_size=30_000)
    # No worker and no poller during the first outage: the syncs acknowledged before the kill wait in the queue,
    # and nothing but those acknowledgements can get their jobs copied.
    stack = chaos_stack(workers=0, REDIS_URL=redis_srv.url, RQ_JOB_MONITORING_INTERVAL="2", RQ_MAINTENANCE_INTERVAL="5")
    sids = []
    for i in range(n_jobs):
        d = day(3 + i)
        r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": d, "end_day": d})
        assert r.status_code == 201, r.text
        sids.append(r.json()["job_sid"])
        sandbox.complete(sids[-1])
    twilio = Twilio({sid: webhook_url(sandbox, sid) for sid in sids}, sandbox.auth_token)
    thread = threading.Thread(target=twilio.run, name="twilio-deliveries", daemon=True)
    thread.start()
    windows: list[tuple[float, float]] = []  # (Redis confirmed dead, restart begins)
    marks = MarkStore(redis_srv.client(decode_responses=True))  # reconnects by itself after a restart
    groups = [sids[i :: 2 * outages + 1] for i in range(2 * outages + 1)]
    with contextlib.ExitStack() as running:
        running.callback(thread.join, timeout=30)
        running.callback(twilio.stop.set)
        supervisor = running.enter_context(Supervisor(stack))
        twilio.release(groups[0])
        for n in range(outages):
            if n:  # long variant: Redis dies while the workers run the syncs and copies just acknowledged
                if n == 1:
                    for sid in twilio.released:  # the first outage's promise, kept without a poller
                        stack.wait_job(sid, timeout=60)
                    stack.start_poller()  # from here on it re-syncs what a crash abandons or orphans
                    marks.forget_last_poll()
                    wait_until(marks.last_poll, timeout=30, what="the poller to poll")
                twilio.release(groups[2 * n])
            wait_until(twilio.all_acked, timeout=60, what="deliveries before the kill acknowledged")
            redis_srv.kill()  # SIGKILL: whatever was acknowledged must be in the AOF
            down = time.monotonic()
            twilio.release(groups[2 * n + 1])

            def refused_during_outage(since: float = down) -> bool:
                return sum(1 for d in twilio.log if d.sent > since and d.status == 503) >= 25

            wait_until(refused_during_outage, timeout=30, what="503 answers while Redis is down")
            windows.append((down, time.monotonic()))
            redis_srv.start()  # same port, same AOF directory
            if n == 0:
                for i in range(2):
                    stack.start_worker(f"worker{i + 1}")
        twilio.release(groups[2 * outages])
        wait_until(twilio.all_acked, timeout=60, what="every job's delivery acknowledged")
        twilio.stop.set()
        # A task running when Redis died is recovered by RQ's abandoned-job handling: monitoring interval + 60 s.
        views = {sid: stack.wait_job(sid, timeout=180) for sid in sids}
    statuses = Counter(d.status for d in twilio.log)
    in_outage = [d for d in twilio.log if any(a < d.sent and d.answered < b for a, b in windows)]
    client = s3.client()

    assert set(statuses) <= {204, 503}, statuses
    assert in_outage and {d.status for d in in_outage} == {503}, Counter(d.status for d in in_outage)
    assert twilio.acked == set(sids)
    for view in views.values():
        assert view["state"] == "done", view
        assert_days_exact(client, bucket, sandbox, RT, view)
        assert s3.writes(bucket, view["days"][0]["key"]) == 1, view["days"][0]
    first: dict[str, int] = {}
    for d in twilio.log:
        first.setdefault(d.sid, d.status)
    acked_before_kill = len(groups[0])
    print(
        f"\nchaos: Redis SIGKILLed {outages}x under webhook load ({outages - 1} with busy workers; {n_jobs} jobs, "
        f"1 acknowledged delivery each): "
        f"{len(twilio.log)} deliveries, {statuses[204]} answered 204, {statuses[503]} answered 503 "
        f"({len(in_outage)} sent and answered while Redis was down, all 503); "
        f"{acked_before_kill} job(s) acknowledged just before the kill, "
        f"{sum(1 for s in first.values() if s == 503)} first refused with 503 -> "
        f"{n_jobs}/{n_jobs} acknowledged jobs copied byte-exact, 1 write each; "
        f"restarts by the supervisor: {', '.join(supervisor.restarts) or 'none'}"
    )
