"""Sampling profiles with py-spy (optional dev tool: ``pip install py-spy==0.4.3``), summarised as text.

``PySpy(pid, path).start()`` records the process and its children (``--subprocesses``) in py-spy's
collapsed-stack format, idle frames included (``--idle``), so time spent *waiting* (sockets, locks, sleeps)
shows up as well as time on CPU. ``summarize(path)`` prints the frames with the most samples, inclusive and
self, which is what a report needs. Without py-spy the benchmarks run unchanged and say so.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def py_spy_binary() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


class PySpy:
    def __init__(self, pid: int, out: Path, rate: int = 200, idle: bool = True, duration: int = 600) -> None:
        self.pid = pid
        self.out = out
        self.rate = rate
        self.idle = idle
        self.duration = duration
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> bool:
        binary = py_spy_binary()
        if binary is None:
            print("  (py-spy not installed: no profile)", flush=True)
            return False
        argv = [
            binary,
            "record",
            "-p",
            str(self.pid),
            "--subprocesses",
            "--format",
            "raw",
            "-o",
            str(self.out),
            "-r",
            str(self.rate),
            "-d",
            str(self.duration),
            "--nonblocking",
        ]
        if self.idle:
            argv.append("--idle")
        log = open(self.out.with_suffix(".log"), "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return True

    def stop(self) -> None:
        """SIGINT makes py-spy write its output; it is killed if it does not exit in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


def _frames(stack: str) -> list[str]:
    # py-spy raw lines: "process name;frame (file:line);frame ... count"
    return [f for f in stack.split(";") if f]


def summarize(path: Path, top: int = 25, only: str | None = None, skip_idle_roots: tuple[str, ...] = ()) -> str:
    """Top frames by inclusive and self samples. ``only`` keeps stacks containing that substring."""
    if not path.exists():
        return f"(no profile at {path})"
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        if only and only not in stack:
            continue
        if any(s in stack for s in skip_idle_roots):
            continue
        count = int(count_text)
        frames = _frames(stack)[1:]  # drop the process label
        total += count
        for f in {_short(f, line=False) for f in frames}:
            inclusive[f] += count
        if frames:
            self_time[_short(frames[-1])] += count
    if not total:
        return "(profile empty)"
    lines = [f"{total} samples" + (f" in stacks containing {only!r}" if only else "")]
    lines.append("inclusive:")
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(top)]
    lines.append("self:")
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in self_time.most_common(top)]
    return "\n".join(lines)


def _short(frame: str, line: bool = True) -> str:
    """'func (/long/path/site-packages/pkg/mod.py:12)' -> 'func (pkg/mod.py:12)' (or without ':12')."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    if not line:
        where = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3.11/", "/work/main/"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    return f"{name} ({where})" if where else name
