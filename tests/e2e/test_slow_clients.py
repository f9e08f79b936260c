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
"""

from __future__ import annotations

import contextlib
import socket
import threading
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
PROBE_TIMEOUT_S = 1.0  # the bound, as the probe's request timeout (no duration assertion)
ROUNDS = 3  # probe rounds, one per drip tick: the attack is held ~3-4 s
FAKE_TOKEN = "x" * 32  # well-formed, unknown: a dripping body never becomes a real delivery


class SlowClients:
    """Hostile connections to 127.0.0.1:``port``, held open for the ``with`` block, always closed on exit.

    ``body_drips`` send complete headers announcing a 10000-byte body, ``header_drips`` an unfinished header
    block; both then get one more byte a second from one background thread. ``idle`` connections send nothing.
    ``ticks`` counts drip rounds; ``dropped`` counts connections the server closed or reset."""

    def __init__(self, port: int, body_drips: int, header_drips: int, idle: int) -> None:
        self.port = port
        self.counts = {"body": body_drips, "header": header_drips, "idle": idle}
        self.socks: dict[str, list[socket.socket]] = {kind: [] for kind in self.counts}
        self.ticks = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, name="slow-clients", daemon=True)

    def _open(self, kind: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        head = f"POST /hooks/bulkexport?token={FAKE_TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
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
                for _ in range(n):
                    self.socks[kind].append(self._open(kind))
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
    with SlowClients(port, body_drips=body_drips, header_drips=header_drips, idle=IDLE) as attack:
        for round_ in range(1, ROUNDS + 1):
            wait_until(lambda r=round_: attack.ticks >= r, timeout=10, what=f"drip round {round_}")
            answers = _probe(stack.url, hook_url, sandbox.auth_token)
            assert answers == expected, f"round {round_} with {attack.counts} slow connections held: {answers}"
        assert attack.dropped == 0, "the server closed slow connections: the probes were not answered beside them"
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
        for _ in range(BURST):  # every request but its last byte, so that all of them become complete at once
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
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
