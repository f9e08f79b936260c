"""A small closed-loop HTTP/1.1 load generator: N threads, one persistent connection each, fixed requests.

    python -m bench.loadgen --port 8000 --connections 16 --duration 5 --warmup 1 --rounds 2 \
        --spec '{"name": "livez", "method": "GET", "path": "/livez", "expect": 200}' --spec '{...}'

Runs in its own process (so its CPU is not the server's), against 127.0.0.1 only. Each phase runs one spec
for ``warmup + duration`` seconds; phases go round-robin over the specs ``rounds`` times, so the endpoints
being compared see the same machine state. Prints one JSON line per event on stdout:
``{"event": "start", "phase": i, "name": ...}``, ``{"event": "end", ...stats}`` and finally
``{"event": "done", "phases": [...]}``.

Why raw sockets and not http.client: the request bytes are built once and a response is parsed with a few
``bytes`` operations, so the generator spends as little CPU per request as possible (the machine has two
cores, shared with the server). Connections are kept alive (HTTP/1.1 default); when the server answers
``Connection: close`` (gunicorn's sync workers always do), the thread reconnects for the next request,
and that reconnect is part of the measured latency, as it would be for a real client.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.common import percentile

HOST = "127.0.0.1"
RECV = 65536
SOCKET_TIMEOUT = 10.0


@dataclass(frozen=True)
class Spec:
    name: str
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expect: int
    port: int | None

    @classmethod
    def from_json(cls, text: str) -> Spec:
        d = json.loads(text)
        return cls(
            name=str(d["name"]),
            method=str(d.get("method", "GET")).upper(),
            path=str(d["path"]),
            headers=tuple((str(k), str(v)) for k, v in (d.get("headers") or {}).items()),
            body=str(d.get("body", "")).encode(),
            expect=int(d.get("expect", 200)),
            port=int(d["port"]) if d.get("port") else None,
        )

    def request_bytes(self, port: int) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {HOST}:{port}", "User-Agent: bench-loadgen"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        if self.body or self.method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


class ResponseError(Exception):
    pass


def read_response(sock: socket.socket, method: str) -> tuple[int, bool]:
    """Read one response; return (status, server wants the connection closed)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(RECV)
        if not chunk:
            raise ResponseError("connection closed before the response headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    close = lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            raise ResponseError("chunked responses are not supported by this generator")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        length = 0
    remaining = length - len(rest)
    while remaining > 0:
        chunk = sock.recv(min(RECV, remaining))
        if not chunk:
            raise ResponseError("connection closed inside the response body")
        remaining -= len(chunk)
    return status, close


@dataclass
class ThreadStats:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    connects: int = 0


def client_loop(port: int, request: bytes, method: str, measure_from: float, stop_at: float, st: ThreadStats) -> None:
    sock: socket.socket | None = None
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                if sock is None:
                    sock = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    st.connects += 1
                sock.sendall(request)
                status, close = read_response(sock, method)
            except (OSError, ResponseError, ValueError, IndexError) as exc:
                if t0 >= measure_from:
                    st.errors[type(exc).__name__] += 1
                if sock is not None:
                    sock.close()
                    sock = None
                time.sleep(0.001)  # do not spin on a refused connection
                continue
            t1 = time.perf_counter()
            if close:
                sock.close()
                sock = None
            if t0 >= measure_from and t1 <= stop_at:
                st.latencies.append(t1 - t0)
                st.statuses[status] += 1
    finally:
        if sock is not None:
            sock.close()


def run_phase(port: int, spec: Spec, connections: int, warmup: float, duration: float) -> dict[str, Any]:
    port = spec.port or port
    request = spec.request_bytes(port)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    stats = [ThreadStats() for _ in range(connections)]
    threads = [
        threading.Thread(target=client_loop, args=(port, request, spec.method, measure_from, stop_at, st), daemon=True)
        for st in stats
    ]
    for t in threads:
        t.start()
    # Window markers, so the parent can account server CPU over exactly the measured seconds.
    time.sleep(max(0.0, measure_from - time.perf_counter()))
    emit({"event": "measure", "name": spec.name})
    time.sleep(max(0.0, stop_at - time.perf_counter()))
    emit({"event": "stop", "name": spec.name})
    for t in threads:
        t.join(timeout=2 * SOCKET_TIMEOUT)
    latencies = sorted(x for st in stats for x in st.latencies)
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    for st in stats:
        statuses.update(st.statuses)
        errors.update(st.errors)
    ok = statuses.get(spec.expect, 0)
    unexpected = sum(statuses.values()) - ok
    return {
        "name": spec.name,
        "connections": connections,
        "seconds": duration,
        "requests": len(latencies),
        "ok": ok,
        "unexpected_status": unexpected,
        "statuses": {str(k): v for k, v in statuses.items()},
        "errors": dict(errors),
        "connects": sum(st.connects for st in stats),
        "rps": ok / duration,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "latencies_ms": [round(x * 1000, 3) for x in latencies],
    }


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--spec", action="append", required=True, help="JSON: name, method, path, headers, body, expect, port"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 256 or not 0 < args.duration <= 120 or not 1 <= args.rounds <= 10:
        parser.error("connections 1..256, duration (0, 120] s, rounds 1..10: the run must stay bounded")
    specs = [Spec.from_json(s) for s in args.spec]
    phases = []
    index = 0
    for _ in range(args.rounds):
        for spec in specs:
            emit({"event": "start", "phase": index, "name": spec.name})
            result = run_phase(args.port, spec, args.connections, args.warmup, args.duration)
            latencies = result.pop("latencies_ms")
            emit({"event": "end", "phase": index, **result})
            phases.append({**result, "latencies_ms": latencies})
            index += 1
    emit({"event": "done", "phases": phases})


if __name__ == "__main__":
    main()
