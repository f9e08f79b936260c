"""A TCP listener that only counts who connects: the stand-in for an address the relay must never contact.

Bound on a loopback address of its own (127.0.0.2, ...: Linux routes all of 127/8 to lo), it accepts in a thread,
records each connection and what the peer sent in its first second (e.g. an Authorization header), and closes it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class Tripwire:
    def __init__(self, host: str = "127.0.0.2", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.received: list[bytes] = []  # one entry per accepted connection
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name=f"tripwire-{host}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.received)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(1.0)
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                with self._lock:
                    self.received.append(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.sock.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Tripwire:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
