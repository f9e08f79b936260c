"""free_port under parallel test workers: ports the OS never hands out by itself, a slice per worker, none twice."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack.procs import free_port


def test_each_xdist_worker_gets_free_ports_of_its_own_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    ports: dict[str, list[int]] = {}
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        ports[worker] = [free_port() for _ in range(50)]
        assert len(set(ports[worker])) == 50, "a port is handed out once, not again while its server may start"
        assert all(10000 <= port < ephemeral for port in ports[worker])
    assert max(ports["gw0"]) < min(ports["gw1"]) and max(ports["gw1"]) < min(ports["gw2"]), "slices are disjoint"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", free_port()))  # free indeed
