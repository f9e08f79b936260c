"""``python -m sandbox``: run both listeners until SIGTERM/SIGINT.

Prints exactly one line to stdout once both sockets listen:
``SANDBOX READY api=http://HOST:PORT files=http://HOST:FPORT``.
Every flag has an environment default (SANDBOX_HOST, SANDBOX_PORT, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from werkzeug.serving import BaseWSGIServer, make_server

from sandbox import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from sandbox.app import ApiSettings, create_app
from sandbox.files import FilesApp
from sandbox.scenario import Scenario, ScenarioError
from sandbox.state import Store
from sandbox.webhooks import Notifier

log = logging.getLogger("sandbox")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m sandbox", description="Local Twilio BulkExports v1 sandbox")
    p.add_argument("--host", default=env("SANDBOX_HOST", "127.0.0.1"), help="bind address")
    p.add_argument("--port", type=int, default=int(env("SANDBOX_PORT", "0")), help="API port (0 = pick)")
    p.add_argument("--files-port", type=int, default=int(env("SANDBOX_FILES_PORT", "0")), help="files port (0 = pick)")
    p.add_argument("--account-sid", default=env("SANDBOX_ACCOUNT_SID", DEFAULT_ACCOUNT_SID))
    p.add_argument("--auth-token", default=env("SANDBOX_AUTH_TOKEN", DEFAULT_AUTH_TOKEN))
    p.add_argument("--api-key-sid", default=env("SANDBOX_API_KEY_SID"))
    p.add_argument("--api-key-secret", default=env("SANDBOX_API_KEY_SECRET"))
    p.add_argument(
        "--public-host",
        default=env("SANDBOX_PUBLIC_HOST"),
        help="host name put into URLs (default: the bind address, or 127.0.0.1 for 0.0.0.0)",
    )
    p.add_argument("--scenario", default=env("SANDBOX_SCENARIO"), help="JSON file with the initial scenario")
    p.add_argument(
        "--parent-pid",
        type=int,
        default=int(env("SANDBOX_PARENT_PID", "0")),
        help="exit when this process is gone (SandboxProcess passes its own pid, so no sandbox outlives it)",
    )
    p.add_argument("--log-level", default=env("SANDBOX_LOG_LEVEL", "INFO"), help="DEBUG logs every request")
    args = p.parse_args(argv)
    if bool(args.api_key_sid) != bool(args.api_key_secret):
        p.error("--api-key-sid and --api-key-secret go together")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if level <= logging.DEBUG else logging.WARNING)

    store = Store(
        args.account_sid,
        auth_token=args.auth_token,
        api_key_sid=args.api_key_sid,
        api_key_secret=args.api_key_secret,
    )
    if args.scenario:
        try:
            with open(args.scenario, encoding="utf-8") as fh:
                store.set_scenario(Scenario.from_json(json.load(fh)))
        except (OSError, ValueError, ScenarioError) as exc:
            log.error("cannot load scenario %s: %s", args.scenario, exc)
            return 2
    notifier = Notifier(store, args.auth_token)
    store.set_listener(notifier.submit)
    settings = ApiSettings(args.account_sid, args.auth_token, args.api_key_sid, args.api_key_secret)

    api_server = make_server(args.host, args.port, create_app(store, notifier, settings), threaded=True)
    files_server = make_server(args.host, args.files_port, FilesApp(store), threaded=True)
    public = args.public_host or ("127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host)
    settings.api_url = f"http://{public}:{api_server.server_port}"
    settings.files_url = f"http://{public}:{files_server.server_port}"

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
        for name, s in (("api", api_server), ("files", files_server))
    ]
    threads.append(threading.Thread(target=_tick, args=(store, stop, args.parent_pid), name="ticker", daemon=True))
    for t in threads:
        t.start()
    print(f"SANDBOX READY api={settings.api_url} files={settings.files_url}", flush=True)
    log.info("account %s; api %s; files %s", args.account_sid, settings.api_url, settings.files_url)
    stop.wait()
    _shutdown([api_server, files_server], notifier)
    log.info("stopped")
    return 0


def _tick(store: Store, stop: threading.Event, parent_pid: int) -> None:
    """Apply time-driven events (files appearing, jobs finishing, webhooks) even when nobody asks."""
    ticks = 0
    while not stop.wait(0.02):
        try:
            store.tick()
        except Exception:  # keep ticking; the error is in the log
            log.exception("tick failed")
        ticks += 1
        if parent_pid and ticks % 25 == 0 and not _alive(parent_pid):
            log.warning("parent process %d is gone: stopping", parent_pid)
            stop.set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _shutdown(servers: list[BaseWSGIServer], notifier: Notifier) -> None:
    for s in servers:
        s.shutdown()  # stops serve_forever; in-flight request threads are daemons
        s.server_close()
    notifier.shutdown()


if __name__ == "__main__":
    sys.exit(main())
