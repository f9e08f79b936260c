"""The health checks' short cache: one refresher at a time, never a queue of threads behind a slow check."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from app.web.health import CachedCheck


def test_a_slow_refresh_does_not_block_other_callers_when_an_answer_exists():
    entered, release = threading.Event(), threading.Event()
    calls = []

    def check(svc):
        calls.append(1)
        entered.set()
        release.wait(10)
        return "fresh"

    cached = CachedCheck(check)
    svc = SimpleNamespace(cache={"check": (time.monotonic() - 60, "stale")})  # expired
    refresher = threading.Thread(target=cached, args=(svc,))
    refresher.start()
    assert entered.wait(10)  # the refresher is inside the slow check, holding the lock
    assert cached(svc) == "stale"  # answered at once from the previous result, no second check
    release.set()
    refresher.join(10)
    assert cached(svc) == "fresh" and len(calls) == 1


def test_the_first_call_waits_for_a_result():
    cached = CachedCheck(lambda svc: "first")
    assert cached(SimpleNamespace(cache={})) == "first"
