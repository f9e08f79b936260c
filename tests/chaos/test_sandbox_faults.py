"""Twilio misbehaving: one fault of each kind, then at random 10% of API calls answer 429 (with Retry-After) or
500 and 10% of downloads are cut short or answer 500 or 403 "Request has expired". Across a 30-day job (three at
once in the long variant) every day must land byte-exact, written once; nothing partial is ever listed at the
data keys.

The sandbox's fault stream is seeded: reproduce a run with the seed it prints (CHAOS_SEED=<seed>).
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest

from tests.chaos.conftest import LONG, DataKeyWatcher, assert_days_exact, day, expected_sizes

pytestmark = pytest.mark.chaos

RATE = 0.1
N_DAYS = 30
DAY_SIZE = 120_000


def test_random_sandbox_faults_across_a_30_day_job(chaos_stack, sandbox, s3, bucket):
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
    rts = ["Messages", "Calls", "Conferences"] if LONG else ["Messages"]
    days = [day(3 + i) for i in range(N_DAYS)]
    sandbox.set_scenario(default_day_size=DAY_SIZE)
    stack = chaos_stack(workers=3, poller=True)
    sids = {}
    for rt in rts:
        r = stack.api("POST", "/api/jobs", json={"resource_type": rt, "start_day": days[-1], "end_day": days[0]})
        assert r.status_code == 201, r.text
        sids[rt] = r.json()["job_sid"]
    sandbox.set_faults(
        rate=RATE,
        seed=seed,
        # One of each kind up front (so every kind shows up whatever the seed), then 10% at random.
        api={"429": 1, "500": 1, "kinds": ["429", "500"], "retry_after": 1},
        files={"cut": 1, "500": 1, "expired": 1, "kinds": ["cut", "500", "expired"]},
    )
    client = s3.client()
    for sid in sids.values():
        sandbox.complete(sid)
    sizes = {k: v for rt in rts for k, v in expected_sizes(sandbox, rt, days).items()}
    with DataKeyWatcher(client, bucket, sizes) as watcher:
        views = {rt: stack.wait_job(sid, timeout=240) for rt, sid in sids.items()}
        watcher.check_once()
    sandbox.set_faults()

    for rt, view in views.items():
        assert view["state"] == "done", view
        assert len(view["days"]) == N_DAYS
        assert_days_exact(client, bucket, sandbox, rt, view)
        for d in view["days"]:
            assert s3.writes(bucket, d["key"]) == 1, d
    assert not watcher.violations, watcher.violations
    file_faults = Counter(d["fault"] for d in sandbox.downloads() if d["fault"])
    api_faults = Counter(r["fault"] for r in sandbox.requests() if r.get("fault"))
    downloads = len(sandbox.downloads())
    requests_ = len(sandbox.requests())
    attempts = sum(d["attempts"] for v in views.values() for d in v["days"])
    n = N_DAYS * len(rts)
    assert set(api_faults) == {"429", "500"} and set(file_faults) == {"cut", "500", "expired"}  # all happened
    print(
        f"\nchaos (seed {seed}): {RATE:.0%} faults over {len(rts)} x {N_DAYS}-day job(s): "
        f"{sum(api_faults.values())} of {requests_} API calls faulted {dict(api_faults)}, "
        f"{sum(file_faults.values())} of {downloads} downloads faulted {dict(file_faults)} -> "
        f"{n}/{n} days byte-exact, 1 write per day, {attempts} copy attempts for {n} days, "
        f"0 partial objects in {watcher.listings} listings"
    )
