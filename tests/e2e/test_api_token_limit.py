"""The limit on failed API authentications (app/platform/guess_limit.py ``API_TOKEN``), over plain HTTP against the real
web tier (Procfile gunicorn, two workers) and Redis: 401 for each wrong bearer token, then 429 with Retry-After
for that address, the right token included; other addresses unaffected (no shared ceiling); a correct token not
clearing the count; the counter expiring in Redis; the refusals counted in /metrics and logged without the tokens.

The web runs with PROXY_FIX_HOPS=1, so X-Forwarded-For names the client (as behind one proxy in production) and
one test can be many clients."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from app.platform.guess_limit import API_TOKEN
from devstack.procs import free_port, wait_until
from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_observability import metric

pytestmark = pytest.mark.e2e
MAX, WINDOW = API_TOKEN.max_per_client, API_TOKEN.window_seconds


def call(stack, address: str, token: str, path: str = "/api/jobs") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": address}
    return requests.get(f"{stack.url}{path}", headers=headers, timeout=10)


def guesses(n: int) -> list[str]:
    return [f"api-guess-{i:03d}-not-the-token" for i in range(n)]


def refusals(stack, outcome: str) -> float:
    """relay_api_auth_total{outcome} as /metrics shows it (summed over the gunicorn workers)."""
    return metric(requests.get(f"{stack.url}/metrics", timeout=10).text, "relay_api_auth_total", outcome=outcome)


def counts(stack) -> redis.Redis:
    return redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)


def all_logs(stack) -> str:
    return "\n".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))


def test_an_address_is_limited_after_its_failures_even_with_the_right_token(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    wrong = guesses(MAX)
    refused = [call(stack, "203.0.113.7", t) for t in wrong]
    assert [r.status_code for r in refused] == [401] * MAX
    assert refused[0].json()["error"] == "unauthorized"

    limited = call(stack, "203.0.113.7", ADMIN_TOKEN)
    assert limited.status_code == 429
    retry_after = int(limited.headers["Retry-After"])
    assert 0 < retry_after <= WINDOW
    body = limited.json()
    assert body["error"] == "too many failed attempts" and body["retry_after"] == retry_after
    assert "Too many failed API authentications from your address" in body["detail"]
    assert call(stack, "203.0.113.7", wrong[0], "/api/feeds").status_code == 429  # the feeds API too
    assert counts(stack).get(API_TOKEN.key_of("203.0.113.7")) == str(MAX)  # while limited, nothing is compared

    # Another address: its right token works, its wrong one is an ordinary 401.
    assert call(stack, "198.51.100.20", ADMIN_TOKEN).status_code == 200
    assert call(stack, "198.51.100.20", "also-wrong").status_code == 401

    assert refusals(stack, "refused") == MAX + 1
    assert refusals(stack, "limited") == 2
    logs = all_logs(stack)
    assert "too many failed authentications" in logs and "missing or wrong token" in logs
    assert "203.0.113.7" in logs and "198.51.100.20" in logs
    assert not any(guess in logs for guess in [*wrong, "also-wrong"]) and ADMIN_TOKEN not in logs


def test_concurrent_wrong_tokens_are_compared_at_most_the_limit(make_stack):
    """The attack: many wrong tokens at once, so that all pass a check made before any is counted. Each is counted
    before its comparison, so exactly MAX of them are compared (401) and every other one is limited (429)."""
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    wrong = guesses(3 * MAX)
    start = threading.Barrier(len(wrong))

    def guess(token: str) -> int:
        start.wait(timeout=30)
        return call(stack, "203.0.113.11", token).status_code

    with ThreadPoolExecutor(len(wrong)) as pool:
        answers = list(pool.map(guess, wrong))
    assert (answers.count(401), answers.count(429)) == (MAX, len(wrong) - MAX), answers
    assert (refusals(stack, "refused"), refusals(stack, "limited")) == (MAX, len(wrong) - MAX)
    assert call(stack, "203.0.113.11", ADMIN_TOKEN).status_code == 429


def test_a_correct_token_does_not_clear_the_count(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    for token in guesses(MAX - 1):
        assert call(stack, "203.0.113.9", token).status_code == 401
    assert call(stack, "203.0.113.9", ADMIN_TOKEN).status_code == 200  # not limited yet: works
    assert counts(stack).get(API_TOKEN.key_of("203.0.113.9")) == str(MAX - 1)
    assert call(stack, "203.0.113.9", "one-more-guess").status_code == 401
    assert call(stack, "203.0.113.9", ADMIN_TOKEN).status_code == 429


def test_there_is_no_shared_ceiling(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    addresses = [f"192.0.2.{n}" for n in range(1, 7)]
    for address in addresses:  # 6 * (MAX - 1) failures in all, more than MAX; no address reaches its own limit
        for token in guesses(MAX - 1):
            assert call(stack, address, token).status_code == 401
    assert all(call(stack, address, ADMIN_TOKEN).status_code == 200 for address in addresses)
    assert call(stack, "198.51.100.99", ADMIN_TOKEN).status_code == 200
    assert counts(stack).keys(f"{API_TOKEN.key_prefix}*") and not counts(stack).exists(API_TOKEN.key_of("*"))


def test_the_counter_expires_and_the_address_may_call_again(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    for token in guesses(MAX):
        call(stack, "2001:db8:5:6::1", token)
    assert call(stack, "2001:db8:5:6::2", ADMIN_TOKEN).status_code == 429  # counted by the /64
    r = counts(stack)
    key = API_TOKEN.key_of("2001:db8:5:6::/64")
    assert r.get(key) == str(MAX)
    assert 0 < r.ttl(key) <= WINDOW  # the counter expires by itself

    r.pexpire(key, 1)  # the window's end, brought forward: what Redis does after WINDOW seconds
    wait_until(lambda: not r.exists(key), timeout=10, what="the counter expired")
    assert call(stack, "2001:db8:5:6::1", ADMIN_TOKEN).status_code == 200


def test_without_redis_the_api_refuses_rather_than_running_unlimited(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    for token in ("not-the-token", ADMIN_TOKEN):
        answer = call(stack, "203.0.113.10", token)
        assert answer.status_code == 503 and answer.json()["error"] == "storage unavailable"
    assert refusals(stack, "refused") == 0  # the token was never compared
    assert "not-the-token" not in all_logs(stack)
