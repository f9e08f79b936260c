"""The limit on failed console sign-ins, over plain HTTP against the real web tier and Redis: 429 with Retry-After
after MAX_PER_CLIENT failures from one address (a correct token included), other addresses unaffected until the
shared ceiling, the counters expiring in Redis, the refusals counted in /metrics and logged without the token.

The web runs with PROXY_FIX_HOPS=1, so X-Forwarded-For names the client (as behind one proxy in production) and
one test can be many clients."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from app.platform.guess_limit import CONSOLE_SIGNIN
from devstack.procs import wait_until
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e
KEY_PREFIX, WINDOW_SECONDS = CONSOLE_SIGNIN.key_prefix, CONSOLE_SIGNIN.window_seconds
MAX_PER_CLIENT, MAX_EVERYONE = CONSOLE_SIGNIN.max_per_client, CONSOLE_SIGNIN.max_everyone


class Client:
    """A browser-less visitor of the sign-in page from ``address`` (its CSRF token read from the page)."""

    def __init__(self, base_url: str, address: str) -> None:
        self.url = f"{base_url}/console/sign-in"
        self.http = requests.Session()
        self.http.headers["X-Forwarded-For"] = address
        page = self.http.get(self.url, timeout=10).text
        found = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert found, page
        self.csrf = found[1]

    def sign_in(self, token: str) -> requests.Response:
        form = {"token": token, "csrf_token": self.csrf}
        return self.http.post(self.url, data=form, allow_redirects=False, timeout=10)


def guesses(n: int) -> list[str]:
    return [f"guess-{i:03d}-not-the-token" for i in range(n)]


def metric(stack, outcome: str) -> float:
    text = requests.get(f"{stack.url}/metrics", timeout=10).text
    found = re.search(rf'^relay_console_signins_total\{{outcome="{outcome}"\}} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


def test_concurrent_wrong_tokens_are_compared_at_most_the_limit(make_stack):
    """Many wrong sign-ins at once from one address: each is counted before its token is compared, so exactly
    MAX_PER_CLIENT are compared (401) and the others are limited (429), however they interleave."""
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    guessers = [Client(stack.url, "203.0.113.12") for _ in range(3 * MAX_PER_CLIENT)]
    start = threading.Barrier(len(guessers))

    def guess(pair: tuple[Client, str]) -> int:
        start.wait(timeout=30)
        return pair[0].sign_in(pair[1]).status_code

    with ThreadPoolExecutor(len(guessers)) as pool:
        answers = list(pool.map(guess, zip(guessers, guesses(len(guessers)), strict=True)))
    assert (answers.count(401), answers.count(429)) == (MAX_PER_CLIENT, len(guessers) - MAX_PER_CLIENT), answers
    assert (metric(stack, "refused"), metric(stack, "limited")) == (MAX_PER_CLIENT, len(guessers) - MAX_PER_CLIENT)


def test_an_address_is_limited_after_its_failures_even_with_the_right_token(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    guesser = Client(stack.url, "203.0.113.7")
    wrong = guesses(MAX_PER_CLIENT)
    assert [guesser.sign_in(t).status_code for t in wrong] == [401] * MAX_PER_CLIENT

    limited = guesser.sign_in(ADMIN_TOKEN)
    assert limited.status_code == 429
    assert 0 < int(limited.headers["Retry-After"]) <= WINDOW_SECONDS
    assert "Too many failed sign-ins from your address" in limited.text and ADMIN_TOKEN not in limited.text
    assert guesser.sign_in(wrong[0]).status_code == 429  # not even compared: still limited
    assert guesser.http.get(f"{stack.url}/console/jobs", allow_redirects=False, timeout=10).status_code == 302

    # Someone else, from another address, signs in as usual.
    colleague = Client(stack.url, "198.51.100.20")
    ok = colleague.sign_in(ADMIN_TOKEN)
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/console/")
    assert colleague.http.get(f"{stack.url}/console/jobs", timeout=10).status_code == 200

    assert metric(stack, "refused") == MAX_PER_CLIENT
    assert metric(stack, "limited") == 2
    assert metric(stack, "ok") == 1
    logs = "\n".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))
    assert "too many failed sign-ins" in logs and "203.0.113.7" in logs
    assert not any(guess in logs for guess in wrong) and ADMIN_TOKEN not in logs


def test_an_ipv6_client_is_counted_by_its_64(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    for n in range(MAX_PER_CLIENT):  # a new address of the same /64 for every guess
        assert Client(stack.url, f"2001:db8:1:2::{n + 1:x}").sign_in("wrong").status_code == 401
    assert Client(stack.url, "2001:db8:1:2:ffff::9").sign_in(ADMIN_TOKEN).status_code == 429
    assert Client(stack.url, "2001:db8:1:3::1").sign_in(ADMIN_TOKEN).status_code == 302  # another /64


def test_the_shared_ceiling_limits_every_address(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    per_address = MAX_PER_CLIENT - 1  # no single address reaches its own limit
    addresses = [f"192.0.2.{n}" for n in range(1, MAX_EVERYONE // per_address + 2)]
    sent = 0
    for address in addresses:
        client = Client(stack.url, address)
        for _ in range(min(per_address, MAX_EVERYONE - sent)):
            assert client.sign_in("wrong").status_code == 401
            sent += 1
    assert sent == MAX_EVERYONE
    newcomer = Client(stack.url, "198.51.100.99").sign_in(ADMIN_TOKEN)
    assert newcomer.status_code == 429 and "from everywhere" in newcomer.text
    assert int(newcomer.headers["Retry-After"]) > 0


def test_the_counters_expire_and_the_address_may_sign_in_again(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    guesser = Client(stack.url, "203.0.113.8")
    for token in guesses(MAX_PER_CLIENT):
        guesser.sign_in(token)
    assert guesser.sign_in(ADMIN_TOKEN).status_code == 429
    r = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    keys = [f"{KEY_PREFIX}203.0.113.8", f"{KEY_PREFIX}*"]
    for key in keys:
        assert 0 < r.ttl(key) <= WINDOW_SECONDS, key  # every counter expires by itself
    assert [r.get(k) for k in keys] == [str(MAX_PER_CLIENT)] * 2

    for key in keys:  # the window's end, brought forward: what Redis does after WINDOW_SECONDS
        r.pexpire(key, 1)
    wait_until(lambda: not any(r.exists(k) for k in keys), timeout=10, what="the counters expired")
    assert guesser.sign_in(ADMIN_TOKEN).status_code == 302
    assert guesser.http.get(f"{stack.url}/console/jobs", timeout=10).status_code == 200


def test_a_successful_sign_in_forgives_its_addresss_failures(make_stack):
    stack = make_stack(workers=0, PROXY_FIX_HOPS="1")
    typo = Client(stack.url, "203.0.113.9")
    for token in guesses(MAX_PER_CLIENT - 1):
        assert typo.sign_in(token).status_code == 401
    assert typo.sign_in(ADMIN_TOKEN).status_code == 302
    r = redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True)
    assert not r.exists(f"{KEY_PREFIX}203.0.113.9")
    assert r.get(f"{KEY_PREFIX}*") == str(MAX_PER_CLIENT - 1)  # the shared count stays until its window ends
