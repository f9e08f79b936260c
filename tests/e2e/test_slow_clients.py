"""Slow clients must not take the web tier down (issue 12, "Denial of service by slow clients").

Against the Procfile ``web`` (real gunicorn with deploy/gunicorn.conf.py, its defaults: 2 workers on this 2-core
machine, real Redis behind it), hostile connections are opened and held: 200 that send a webhook POST's headers
with ``Content-Length: 10000`` then one body byte a second, 200 that connect and send nothing, and a request
that never finishes its headers (one header byte a second); then the same with 200 such unfinished requests.
While they are open, ``/livez``, ``/readyz`` and a signed webhook must each answer within a 1-s request timeout
(the issue's bound; a Kubernetes probe's default timeout), in three rounds as the drips go on.

Before the fix (gthread, 2 workers x 4 threads) every thread ended up blocked reading a dripping body or an
unfinished head, and the probes timed out (``ReadTimeout``) from the first round on. The gevent worker also
runs every pending request at once, so the last test checks that a burst larger than redis-py's default
connection pool queues for a Redis connection rather than being answered 503.

Issue 20 ("slow bodies still pin workers"): with one worker, 1,000 sign-in POSTs dripping their body from one
address plus 200 unfinished heads from another filled ``worker_connections`` and ``/livez`` timed out. Now one
address holds at most WEB_MAX_CONNECTIONS_PER_CLIENT connections per worker, every body must arrive within
WEB_BODY_TIMEOUT_SECONDS (408), a body announced too large is refused and its connection closed, and behind a
proxy the cap counts each forwarded client's bodies (app/web/client_limits.py). Issue 12's attack is therefore spread
over several loopback addresses, each under the cap.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Self

import pytest
import requests
from twilio.request_validator import RequestValidator

from devstack.procs import wait_until

pytestmark = pytest.mark.e2e

DRIPPING = 200
IDLE = 200
# Issue 12's attack comes from several clients, 8 loopback addresses, so that no address nears the per-client
# connection cap (WEB_MAX_CONNECTIONS_PER_CLIENT, 100 per worker) and the server has to hold every connection.
CROWD = tuple(f"127.0.0.{10 + i}" for i in range(8))
PROBE_TIMEOUT_S = 1.0  # the bound, as the probe's request timeout (no duration assertion)
ROUNDS = 3  # probe rounds, one per drip tick: the attack is held ~3-4 s
FAKE_TOKEN = "x" * 32  # well-formed, unknown: a dripping body never becomes a real delivery


class SlowClients:
    """Hostile connections to 127.0.0.1:``port``, held open for the ``with`` block, always closed on exit.

    ``body_drips`` send complete headers announcing a 10000-byte body, ``header_drips`` an unfinished header
    block; both then get one more byte a second from one background thread. ``idle`` connections send nothing.
    ``ticks`` counts drip rounds; ``dropped`` counts connections the server closed or reset."""

    def __init__(
        self,
        port: int,
        body_drips: int,
        header_drips: int,
        idle: int,
        sources: dict[str, tuple[str, ...]] | None = None,
        path: str = f"/hooks/bulkexport?token={FAKE_TOKEN}",
    ) -> None:
        self.port = port
        self.path = path
        self.counts = {"body": body_drips, "header": header_drips, "idle": idle}
        # each kind's loopback source addresses, used in turn (the server caps connections per client address)
        self.sources = {kind: ("127.0.0.1",) for kind in self.counts} | (sources or {})
        self.socks: dict[str, list[socket.socket]] = {kind: [] for kind in self.counts}
        self.ticks = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, name="slow-clients", daemon=True)

    def _open(self, kind: str, source: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(source, 0))
        head = f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
        if kind == "body":
            sock.sendall(
                (head + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n").encode()
            )
        elif kind == "header":
            sock.sendall((head + "X-Slow: ").encode())  # the header block never ends
        sock.setblocking(False)  # drips must never stall the drip thread
        return sock

    def __enter__(self) -> Self:
        try:
            for kind, n in self.counts.items():
                for i in range(n):
                    self.socks[kind].append(self._open(kind, self.sources[kind][i % len(self.sources[kind])]))
        except BaseException:
            self.close()
            raise
        self._thread.start()
        return self

    def _drip(self) -> None:
        while not self._stop.wait(1.0):  # the attack's pace: one byte a second per dripping connection
            for sock in [*self.socks["body"], *self.socks["header"]]:
                if sock.fileno() < 0:
                    continue
                try:
                    sock.send(b"a")
                except BlockingIOError:
                    pass  # the server is not reading: the buffer is full, which is the point
                except OSError:
                    self.dropped += 1
                    sock.close()
            self.ticks += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for socks in self.socks.values():
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _signed_webhook(url: str, auth_token: str) -> requests.Response:
    params = {"status": "completed"}
    signature = RequestValidator(auth_token).compute_signature(url, params)
    return requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=PROBE_TIMEOUT_S)


def _probe(base: str, hook_url: str, auth_token: str) -> dict[str, int | str]:
    """Each endpoint's status, or the name of the error that stopped it (a timeout after 1 s)."""
    calls = {
        "/livez": lambda: requests.get(f"{base}/livez", timeout=PROBE_TIMEOUT_S),
        "/readyz": lambda: requests.get(f"{base}/readyz", timeout=PROBE_TIMEOUT_S),
        "webhook": lambda: _signed_webhook(hook_url, auth_token),
    }
    answers: dict[str, int | str] = {}
    for name, call in calls.items():
        try:
            answers[name] = call().status_code
        except requests.RequestException as exc:
            answers[name] = type(exc).__name__
    return answers


@pytest.mark.parametrize(
    ("body_drips", "header_drips"),
    [(DRIPPING, 1), (0, DRIPPING)],
    ids=["dripping-bodies-and-an-unfinished-header", "unfinished-headers"],
)
def test_health_and_webhook_answer_within_1s_while_slow_clients_hold_connections(
    make_stack, sandbox, body_drips, header_drips
):
    sandbox.set_scenario(webhook={"drop": True})  # the only deliveries are the probes'
    stack = make_stack(workers=0)
    the_day = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    r = stack.api("POST", "/api/jobs", json={"resource_type": "Messages", "start_day": the_day, "end_day": the_day})
    assert r.status_code == 201, r.text
    hook_url = sandbox.job(r.json()["job_sid"])["webhook_url"]
    expected = {"/livez": 200, "/readyz": 200, "webhook": 204}
    assert _probe(stack.url, hook_url, sandbox.auth_token) == expected  # before the attack

    port = int(stack.url.rsplit(":", 1)[1])
    crowd = {kind: CROWD for kind in ("body", "header", "idle")}  # each address well under the per-client cap
    with SlowClients(port, body_drips=body_drips, header_drips=header_drips, idle=IDLE, sources=crowd) as attack:
        for round_ in range(1, ROUNDS + 1):
            wait_until(lambda r=round_: attack.ticks >= r, timeout=10, what=f"drip round {round_}")
            answers = _probe(stack.url, hook_url, sandbox.auth_token)
            assert answers == expected, f"round {round_} with {attack.counts} slow connections held: {answers}"
        assert attack.dropped == 0, "the server closed slow connections: the probes were not answered beside them"
    assert stack.procs["web"].alive()


SIGN_IN_DRIPS = 1000
HEAD_DRIPS = 200
PER_CLIENT_CAP = 100  # WEB_MAX_CONNECTIONS_PER_CLIENT's default, per worker


class DrippingSignIn:
    """One sign-in POST announcing a 100-byte body, sent a byte a second from ``source``, watched for the answer."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
        self.sock.sendall(
            (
                f"POST /console/sign-in HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nt"
            ).encode()
        )
        self.sock.setblocking(False)
        self.last_drip = time.monotonic()

    def answer(self) -> str | None:
        """The status code the server answered, ``closed`` if it closed without one, None while it waits."""
        try:
            head = self.sock.recv(4096)
        except BlockingIOError:
            if time.monotonic() - self.last_drip >= 1.0:  # the attack's pace, not a synchronisation
                with contextlib.suppress(OSError):
                    self.sock.send(b"a")
                self.last_drip = time.monotonic()
            return None
        except OSError:
            return "closed"
        return head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/1.1 ") else "closed"

    def close(self) -> None:
        self.sock.close()


def test_one_client_dripping_1000_sign_in_bodies_and_200_heads_leaves_probes_answering_within_1s(make_stack, sandbox):
    """Issue 20: one web worker; 1,000 sign-in POSTs dripping their body from one address and 200 unfinished heads
    from another. Before the fix the body was read inside the handler without a deadline: the worker's 1,000
    connections were all taken and ``/livez`` timed out. Now one address holds at most 100 connections of a
    worker (the rest are closed as soon as they are accepted), and a body still incomplete after
    WEB_BODY_TIMEOUT_SECONDS (10 s) is answered 408 and its connection closed."""
    sandbox.set_scenario(webhook={"drop": True})  # the only deliveries are the probes'
    stack = make_stack(workers=0, WEB_CONCURRENCY="1")
    the_day = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    r = stack.api("POST", "/api/jobs", json={"resource_type": "Messages", "start_day": the_day, "end_day": the_day})
    assert r.status_code == 201, r.text
    hook_url = sandbox.job(r.json()["job_sid"])["webhook_url"]
    expected = {"/livez": 200, "/readyz": 200, "webhook": 204}
    port = int(stack.url.rsplit(":", 1)[1])
    sources = {"body": ("127.0.0.2",), "header": ("127.0.0.3",)}
    witness = DrippingSignIn(port, "127.0.0.4")
    try:
        with SlowClients(port, SIGN_IN_DRIPS, HEAD_DRIPS, idle=0, sources=sources, path="/console/sign-in") as attack:
            for round_ in range(1, ROUNDS + 1):
                wait_until(lambda r=round_: attack.ticks >= r, timeout=10, what=f"drip round {round_}")
                answers = _probe(stack.url, hook_url, sandbox.auth_token)
                assert answers == expected, f"round {round_} with {attack.counts} slow connections held: {answers}"
            over_cap = SIGN_IN_DRIPS + HEAD_DRIPS - 2 * PER_CLIENT_CAP
            wait_until(lambda: attack.dropped >= over_cap, timeout=15, what="connections over the cap closed")
            answer = wait_until(witness.answer, timeout=30, what="the dripping sign-in body to be answered")
            assert answer in ("408", "closed"), answer
            assert _probe(stack.url, hook_url, sandbox.auth_token) == expected
    finally:
        witness.close()
    assert stack.procs["web"].alive()


BURST = 300  # concurrent deliveries: more than redis-py's default pool (100 connections) per worker


def test_a_burst_of_concurrent_deliveries_waits_for_redis_connections_rather_than_failing(make_stack):
    """Under gevent every connection's request runs at once: a burst must queue for a Redis connection (the app's
    pools are capped and blocking), not be answered 503 "Too many connections"."""
    stack = make_stack(workers=0)
    port = int(stack.url.rsplit(":", 1)[1])
    body = "status=completed"
    request = (
        f"POST /hooks/bulkexport?token={FAKE_TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    socks: list[socket.socket] = []
    try:
        for i in range(BURST):  # every request but its last byte, so that all of them become complete at once
            # from 6 loopback addresses: 300 from one would pass the per-client connection cap (100 per worker)
            sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(f"127.0.1.{i % 6}", 0))
            socks.append(sock)
            sock.sendall(request[:-1])
        wait_until(lambda: _listen_queue(port) == 0, timeout=30, what="the server to accept every connection")
        for sock in socks:
            sock.sendall(request[-1:])
        statuses = Counter(_status(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
    assert statuses == {404: BURST}, statuses  # an unknown token, looked up in Redis by every one of them


def _listen_queue(port: int) -> int:
    """Connections waiting in the accept queue of the socket listening on ``port`` (Linux: /proc/net/tcp reports
    a listening socket's accept backlog as its rx_queue)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # state LISTEN
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


def _status(sock: socket.socket) -> int | str:
    head = b""
    while b"\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            return "closed"
        head += chunk
    return int(head.split(b" ", 2)[1])


def test_a_body_announced_too_large_is_refused_at_once_and_its_connection_closed(make_stack):
    """413 on the declared length, before a byte of the body is read; the connection is then closed, where gunicorn
    would otherwise drain the announced 10 MB for as long as the client takes to drip it (up to ``keepalive``)."""
    stack = make_stack(workers=0, WEB_CONCURRENCY="1")
    port = int(stack.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            (
                f"POST /console/sign-in HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\ntoken=x"
            ).encode()
        )
        assert _status(sock) == 413
        sock.settimeout(10)  # a bound for the assertion below, not a synchronisation: closed means recv gives b""
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                received += chunk
        assert b"HTTP/1.1" not in received  # nothing but the rest of the one answer came; then the end of stream


def test_behind_a_proxy_the_cap_counts_each_forwarded_clients_bodies(make_stack):
    """With PROXY_FIX_HOPS=1 every connection comes from the proxy (here 127.0.0.1), so connections are not capped
    per address; the cap applies instead to the bodies one client, by its forwarded address, is sending at once:
    its 101st answers 429 while another client behind the same proxy is served."""
    stack = make_stack(workers=0, WEB_CONCURRENCY="1", PROXY_FIX_HOPS="1")
    port = int(stack.url.rsplit(":", 1)[1])

    def sign_in(client: str, length: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(
            (
                f"POST /console/sign-in HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Forwarded-For: {client}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\nt"
            ).encode()
        )
        return sock

    def answered(client: str) -> int | str:
        with sign_in(client, 1) as sock:  # a complete body
            return _status(sock)

    dripping = [sign_in("203.0.113.7", 1000) for _ in range(PER_CLIENT_CAP + 20)]  # more than the worker's cap
    try:
        wait_until(lambda: answered("203.0.113.7") == 429, timeout=10, what="the client's bodies over the cap")
        other = answered("198.51.100.1")  # another client behind the same proxy: served (its form is refused)
        assert isinstance(other, int) and other != 429, other
        assert requests.get(f"{stack.url}/livez", timeout=PROBE_TIMEOUT_S).status_code == 200
    finally:
        for sock in dripping:
            sock.close()
    wait_until(lambda: answered("203.0.113.7") != 429, timeout=10, what="the slots given back")
