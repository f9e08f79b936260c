"""Run the sandbox as a real process from tests, ``make demo`` and benchmarks.

    with SandboxProcess(log_path=tmp / "sandbox.log") as sb:
        sb.set_scenario(step_seconds=0.05, days={"2026-11-02": "failed"})
        client = sb.twilio_client()
        ...

The child is a devstack.procs.ManagedProcess (the one supervisor): its own process group, stop() sends
SIGTERM to the group, then SIGKILL, and an atexit hook stops any instance the caller forgot. Readiness is
the one ``SANDBOX READY`` line, polled in this run's part of the log. The child also exits by itself when
its parent dies (``--parent-pid``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from devstack.procs import ManagedProcess, NotReady
from sandbox import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

_READY = re.compile(rb"^SANDBOX READY api=(\S+) files=(\S+)\s*$", re.MULTILINE)
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class SandboxError(RuntimeError):
    """The sandbox did not start, or a control call failed (message carries the log tail or the body)."""


class SandboxProcess:
    """A sandbox server subprocess plus typed helpers for its control API."""

    def __init__(
        self,
        *,
        log_path: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        files_port: int = 0,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        api_key_sid: str | None = None,
        api_key_secret: str | None = None,
        scenario: Mapping[str, Any] | None = None,
        log_level: str = "INFO",
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.files_port = files_port
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_key_sid = api_key_sid
        self.api_key_secret = api_key_secret
        self.scenario = dict(scenario) if scenario else None
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.python = python or sys.executable
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="sandbox-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.api_url = ""
        self.files_url = ""
        self._managed: ManagedProcess | None = None
        self._scenario_file: str | None = None
        self._http = requests.Session()

    # ---- lifecycle -----------------------------------------------------------------------------------
    def argv(self) -> list[str]:
        args = [
            self.python,
            "-m",
            "sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--files-port",
            str(self.files_port),
            "--account-sid",
            self.account_sid,
            "--auth-token",
            self.auth_token,
            "--log-level",
            self.log_level,
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.api_key_sid and self.api_key_secret:
            args += ["--api-key-sid", self.api_key_sid, "--api-key-secret", self.api_key_secret]
        if self._scenario_file:
            args += ["--scenario", self._scenario_file]
        return args + self.extra_args

    def start(self) -> SandboxProcess:
        """Start the process and wait for its READY line; on failure stop it and raise with the log tail."""
        if self.alive():
            return self
        if self.scenario is not None:
            fd, self._scenario_file = tempfile.mkstemp(prefix="sandbox-scenario-", suffix=".json")
            with os.fdopen(fd, "w") as fh:
                json.dump(self.scenario, fh)
        env = {**self.env, "PYTHONUNBUFFERED": "1"}
        pythonpath = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), pythonpath) if p)
        managed = ManagedProcess("sandbox", self.argv(), self.log_path.parent, env=env, log_path=self.log_path)
        self._managed = managed.start()
        try:
            match = managed.wait_ready(lambda: _READY.search(managed.read_log()), timeout=self.startup_timeout)
        except NotReady as exc:
            self.stop()
            raise SandboxError(str(exc)) from None
        assert isinstance(match, re.Match)
        self.api_url, self.files_url = match.group(1).decode(), match.group(2).decode()
        return self

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._managed.proc if self._managed else None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self._managed is not None and self._managed.alive()

    def stop(self) -> None:
        """SIGTERM the process group, wait, then SIGKILL whatever is left. Safe to call twice."""
        if self._managed is not None:
            self._managed.stop(timeout=self.stop_timeout)
        if self._scenario_file:
            Path(self._scenario_file).unlink(missing_ok=True)
            self._scenario_file = None
        self._http.close()
        self._http = requests.Session()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def tail(self, lines: int = 60) -> str:
        """The last lines this process wrote to its log."""
        return self._managed.tail(lines, since_start=True) if self._managed else "(empty log)"

    # ---- clients ------------------------------------------------------------------------------------
    @property
    def auth(self) -> tuple[str, str]:
        """Basic-auth pair for /v1 requests."""
        return (self.account_sid, self.auth_token)

    def twilio_client(
        self, username: str | None = None, password: str | None = None, account_sid: str | None = None
    ) -> Any:
        """A twilio.rest.Client whose BulkExports and Accounts (api) domains point at this sandbox."""
        from twilio.rest import Client

        client = Client(
            username or self.account_sid, password or self.auth_token, account_sid=account_sid or self.account_sid
        )
        client.bulkexports.base_url = self.api_url
        client.api.base_url = self.api_url
        return client

    # ---- control API -----------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        if not self.api_url:
            raise SandboxError("sandbox is not running")
        resp = self._http.request(method, f"{self.api_url}/_sandbox{path}", json=body, timeout=30)
        if resp.status_code >= 400:
            raise SandboxError(f"{method} /_sandbox{path} -> {resp.status_code}: {resp.text}")
        return resp.json()

    def health(self) -> dict[str, Any]:
        return dict(self._control("GET", "/health"))

    def reset(self) -> None:
        """Forget jobs, files, links, logs, faults, added accounts; clock to real time; scenario to defaults."""
        self._control("POST", "/reset")

    def set_scenario(self, **scenario: Any) -> dict[str, Any]:
        """Replace the scenario (keys not given take their defaults). Returns the effective scenario."""
        return dict(self._control("PUT", "/scenario", scenario))

    def update_scenario(self, **changes: Any) -> dict[str, Any]:
        """Merge into the scenario (``days`` and ``webhook`` are merged key by key)."""
        return dict(self._control("PATCH", "/scenario", changes))

    def get_scenario(self) -> dict[str, Any]:
        return dict(self._control("GET", "/scenario"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault plan, e.g. ``set_faults(api={"429": 2}, files={"cut": 1})``."""
        return dict(self._control("PUT", "/faults", faults))

    def faults(self) -> dict[str, Any]:
        """Current fault plan with the counters that remain."""
        return dict(self._control("GET", "/faults"))

    def advance_clock(self, seconds: float) -> float:
        """Move the sandbox clock forward: jobs progress and links age as if that much time passed."""
        return float(self._control("POST", "/clock", {"advance": seconds})["offset_seconds"])

    def jobs(self, account: str | None = None) -> list[dict[str, Any]]:
        """Every account's jobs, or one account's."""
        return list(self._control("GET", f"/jobs{_account_q(account)}")["jobs"])

    def job(self, sid: str) -> dict[str, Any]:
        return dict(self._control("GET", f"/jobs/{sid}"))

    def complete(self, sid: str) -> dict[str, Any]:
        """Finish every unfinished day of the job now (its webhook fires as on natural completion)."""
        return dict(self._control("POST", f"/jobs/{sid}/complete"))

    def redeliver(self, sid: str) -> dict[str, Any]:
        """Send the job's webhook once more, now."""
        return dict(self._control("POST", f"/jobs/{sid}/webhook"))

    def webhooks(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "/webhooks")["deliveries"])

    def downloads(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "/downloads")["downloads"])

    def requests(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "/requests")["requests"])

    def expected_day(self, resource_type: str, day: str, account: str | None = None) -> dict[str, Any]:
        """{size, sha256, records, outcome, exists, ...} of that day's file (existing, else per scenario)."""
        return dict(self._control("GET", f"/days/{resource_type}/{day}{_account_q(account)}"))

    # ---- clock, quota, daily exports (contract: sandbox/routes/control.py) ----------------------------
    def clock(self) -> dict[str, Any]:
        """{"now", "today", "offset_seconds", "wall_offset_seconds"} of the sandbox clock."""
        return dict(self._control("GET", "/clock"))

    def set_today(self, day: str) -> dict[str, Any]:
        """Sandbox "now" = 00:00:00 UTC of ``day``; forward runs every midnight crossed. Returns clock()."""
        return dict(self._control("POST", "/clock", {"today": day}))

    def set_now(self, instant: str) -> dict[str, Any]:
        """Sandbox "now" = ``instant`` (``yyyy-mm-ddTHH:MM:SS[.fff]Z``). Returns clock()."""
        return dict(self._control("POST", "/clock", {"now": instant}))

    def advance_days(self, days: int) -> dict[str, Any]:
        """Let ``days`` whole days pass (midnights crossed run the daily exports). Returns clock()."""
        return dict(self._control("POST", "/clock", {"advance_days": days}))

    def quota(self, account: str | None = None) -> dict[str, Any]:
        """{"family", "limit", "today", "used_today", "days"} of the account's family (default account)."""
        return dict(self._control("GET", f"/quota{_account_q(account)}"))

    def quota_usage(self, account: str | None = None) -> dict[str, int]:
        """Requested days per simulated UTC day ({"yyyy-mm-dd": n}) of the account's family."""
        return dict(self.quota(account)["days"])

    def daily_exports(self) -> list[dict[str, Any]]:
        """Every daily auto-export generated so far (account, type, day, size, webhook)."""
        return list(self._control("GET", "/daily")["exports"])

    def export_configuration(self, account: str | None = None) -> dict[str, dict[str, Any]]:
        """{resource_type: {"enabled", "webhook_url", "webhook_method"}} of an account."""
        return dict(self._control("GET", f"/configuration{_account_q(account)}")["configurations"])

    def set_export_configuration(self, resource_type: str, account: str | None = None, **cfg: Any) -> dict[str, Any]:
        """Set enabled/webhook_url/webhook_method directly (no Editions check: test set-up)."""
        return dict(self._control("PUT", f"/configuration/{resource_type}{_account_q(account)}", cfg))

    # ---- accounts ---------------------------------------------------------------------------------------
    def accounts(self) -> list[dict[str, Any]]:
        return list(self._control("GET", "/accounts")["accounts"])

    def account(self, sid: str) -> dict[str, Any]:
        """{"sid", "auth_token", "owner_account_sid", "status", "api_keys", "revoked", ...}."""
        return dict(self._control("GET", f"/accounts/{sid}"))

    def add_account(self, **body: Any) -> dict[str, Any]:
        """A new main (parent) account: optional sid, auth_token, friendly_name, editions."""
        return dict(self._control("POST", "/accounts", body))

    def add_subaccount(self, parent_sid: str, **body: Any) -> dict[str, Any]:
        """A new subaccount of ``parent_sid`` (a main account)."""
        return dict(self._control("POST", f"/accounts/{parent_sid}/subaccounts", body))

    def update_account(self, sid: str, **changes: Any) -> dict[str, Any]:
        """Change status (active|suspended|closed), friendly_name or editions."""
        return dict(self._control("PATCH", f"/accounts/{sid}", changes))

    def suspend_account(self, sid: str) -> dict[str, Any]:
        return self.update_account(sid, status="suspended")

    def rotate_token(self, sid: str, keep_secondary: bool = False) -> dict[str, Any]:
        """A new auth token (the old one kept as secondary only if asked)."""
        return dict(self._control("POST", f"/accounts/{sid}/rotate", {"keep_secondary": keep_secondary}))

    def revoke_credentials(self, sid: str) -> dict[str, Any]:
        """Every credential of the account is refused (401) until restore_credentials()."""
        return dict(self._control("POST", f"/accounts/{sid}/revoke"))

    def restore_credentials(self, sid: str) -> dict[str, Any]:
        return dict(self._control("POST", f"/accounts/{sid}/restore"))

    def add_api_key(self, sid: str, **body: Any) -> dict[str, Any]:
        """{"sid": "SK…", "secret", "account_sid"}: an API key acting as that account."""
        return dict(self._control("POST", f"/accounts/{sid}/keys", body))

    def delete_api_key(self, sid: str, key_sid: str) -> None:
        self._control("DELETE", f"/accounts/{sid}/keys/{key_sid}")


def _account_q(account: str | None) -> str:
    return f"?account={account}" if account else ""
