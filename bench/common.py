"""Shared pieces of the benchmarks: figures with targets, machine facts, child processes, CPU accounting.

Every benchmark measures its subject and its baseline side by side in one run and reports ratios; nothing
here asserts on time. Work files go under ``.bench/<name>/`` (git-ignored, removed by ``make clean``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from app.platform.units import GiB

REPO_ROOT = Path(__file__).resolve().parents[1]
WORK_ROOT = REPO_ROOT / ".bench"


@dataclass
class Figure:
    """One reported number; with a target it passes or fails (``op`` is ``>=`` or ``<=``)."""

    name: str
    value: float
    unit: str
    target: float | None = None
    op: str = ">="
    note: str = ""

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.op == ">=" else self.value <= self.target

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["value"] = round(self.value, 4)
        data["passed"] = self.passed
        data["result"] = {True: "met", False: "missed", None: None}[self.passed]
        return data


@dataclass
class BenchResult:
    """What one benchmark script returns: its figures plus free-form details (bounds, breakdowns)."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    @property
    def passed(self) -> bool:
        return self.error is None and all(f.passed is not False for f in self.figures)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "error": self.error,
            "figures": [f.to_json() for f in self.figures],
            "details": self.details,
        }


def workdir(name: str) -> Path:
    """A fresh ``.bench/<name>`` directory for logs and scratch files."""
    path = WORK_ROOT / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def machine_info() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / GiB, 1),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a benchmark child: this interpreter's venv first on PATH, repo importable."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO_ROOT),
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def run_json_child(argv: Sequence[str], env: Mapping[str, str], timeout: float, log_path: Path) -> dict[str, Any]:
    """Run a child to completion (killed at ``timeout``), stderr to ``log_path``; its last stdout line is JSON."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=log, env=dict(env), cwd=REPO_ROOT, start_new_session=True
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
            raise RuntimeError(f"{argv[2:4]} still running after {timeout}s: killed (log {log_path})") from None
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"child {argv[2:4]} exited {proc.returncode}; log tail:\n{tail}")
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]  # a profiler may print too
    if not lines:
        raise RuntimeError(f"child {argv[2:4]} printed no JSON (log {log_path})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


class CpuMeter:
    """CPU seconds used by process trees (e.g. gunicorn master + workers) between two samples."""

    def __init__(self, groups: Mapping[str, Iterable[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    @staticmethod
    def _tree_cpu(pids: Iterable[int]) -> float:
        total = 0.0
        seen: set[int] = set()
        for pid in pids:
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                if p.pid in seen:
                    continue
                seen.add(p.pid)
                try:
                    t = p.cpu_times()  # children_*: reaped children, e.g. RQ's forked work horses
                    total += t.user + t.system + t.children_user + t.children_system
                except psutil.NoSuchProcess:
                    pass
        return total

    @staticmethod
    def _machine_busy() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._start = {name: self._tree_cpu(pids) for name, pids in self.groups.items()}
        self._start["machine"] = self._machine_busy()

    def stop(self) -> dict[str, float]:
        """Cores used on average by each group since start (1.0 = one core busy all the time), plus
        ``other``: the rest of the machine's busy time (our idle helpers, and anything else running)."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        used = {name: (self._tree_cpu(pids) - self._start.get(name, 0.0)) / wall for name, pids in self.groups.items()}
        machine = (self._machine_busy() - self._start["machine"]) / wall
        used["other"] = max(0.0, machine - sum(used.values()))
        return {name: round(value, 3) for name, value in used.items()}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(q / 100 * len(sorted_values))))
    return sorted_values[rank - 1]
