"""The one process supervisor of the local stack: start real server processes in their own process group with
their output in a log file, wait on them by polling with a deadline (never by sleeping), and always stop them:
group kill (descendants included), and an atexit hook for any the caller forgot."""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Every process we start is recorded so a session-end hook (and atexit) can make sure none is left behind.
_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


class NotReady(AssertionError):
    """A process exited or missed its deadline before it was ready (message: why, and its log tail)."""


# free_port's ports: below the kernel's ephemeral range, where the OS never picks a port by itself, so neither an
# outgoing connection nor another process's bind to port 0 takes one between the probe and the server's bind.
# Parallel pytest-xdist workers (make test) each draw from a slice of their own, so they never pick the same one.
_PORTS_FROM = 10000
_port_cursor: list[int] = []  # where the last free_port() of this process was, in its slice
_PORT_LOCK = threading.Lock()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _port_slice() -> range:
    """This process's ports: all of them, or its worker's share under pytest-xdist (PYTEST_XDIST_WORKER=gwN)."""
    ports = range(_PORTS_FROM, _ephemeral_start())
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker.startswith("gw") and worker[2:].isdigit() and count.isdigit() and int(worker[2:]) < int(count):
        share = len(ports) // int(count)
        ports = ports[int(worker[2:]) * share : (int(worker[2:]) + 1) * share]
    return ports


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A free TCP port on 127.0.0.1, from this process's slice (above), each port in turn so that none is handed
    out twice while its server may still be starting; the OS's pick when the ephemeral range leaves no room."""
    ports = _port_slice()
    with _PORT_LOCK:
        if len(ports) >= 100:
            if not _port_cursor:
                _port_cursor.append(random.randrange(len(ports)))
            for _ in range(len(ports)):
                _port_cursor[0] = (_port_cursor[0] + 1) % len(ports)
                if _bindable(ports[_port_cursor[0]]):
                    return ports[_port_cursor[0]]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll ``predicate`` until it returns something truthy or the deadline passes (then AssertionError)."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may raise until it is ready
            last_exc = exc
        time.sleep(interval)  # polling interval, not synchronisation: the deadline decides
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}; last error: {last_exc!r}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # fields after "(comm)": state, ppid, ...


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first), found through /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _ppid(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ManagedProcess:
    """A subprocess with its output in a log file, started in its own process group and always stopped."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **(env or {})}
        self.cwd = str(cwd) if cwd else None
        self.log_path = Path(log_path) if log_path else Path(log_dir) / f"{name}.log"
        self.log_offset = 0  # where this run's output starts in a log that may be shared or appended to
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05) -> object:
        """Poll ``predicate`` until truthy (returned); if the process exits or the deadline passes first, stop it
        and raise NotReady with the reason and this run's log tail."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                assert self.proc is not None
                reason = f"exited with code {self.proc.poll()} before it was ready"
            else:
                with contextlib.suppress(Exception):  # the thing we wait for may raise until it is ready
                    value = predicate()
                    if value:
                        return value
                if time.monotonic() < deadline:
                    time.sleep(interval)  # polling interval, not synchronisation: the deadline decides
                    continue
                reason = f"not ready after {timeout}s"
            self.stop()
            raise NotReady(f"{self.name} {reason}. Log tail:\n{self.tail(since_start=True)}")

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is still there, descendants in other process
        groups included (rq's work horse calls setpgid: a group signal alone would leave it running)."""
        if self.proc is None:
            return
        kids = descendants(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # children that outlived the leader
        _kill_all(kids)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL the process, its group and every descendant at once (crash simulation)."""
        if self.alive():
            assert self.proc is not None
            _kill_all(descendants(self.proc.pid))
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def read_log(self, since_start: bool = True) -> bytes:
        """The log's bytes (by default only what this run wrote); empty if there is no log yet."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self.log_offset if since_start else 0)
                return fh.read()
        except FileNotFoundError:
            return b""

    def tail(self, lines: int = 60, since_start: bool = False) -> str:
        """The last lines of the log (of every run into it, or only of this one)."""
        text = self.read_log(since_start).decode(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop_all() -> None:
    """Stop every process still running (session end, atexit); best effort, one failure stops no other."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for p in live:
        with contextlib.suppress(Exception):
            p.stop(timeout=3)


atexit.register(stop_all)


def python_argv(*args: str) -> list[str]:
    """argv running the current interpreter (the project's venv under `make test`)."""
    return [sys.executable, *args]
