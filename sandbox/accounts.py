"""Twilio accounts in the sandbox: main (parent) accounts, their subaccounts, credentials and status.

Model (what the relay's multi-account support needs to meet):

- An account has a SID (``AC`` + 32 hex), an auth token (32 hex), a friendly name and a status
  (``active`` | ``suspended`` | ``closed``). A main account's ``owner_account_sid`` is its own SID; a
  subaccount's is its parent's. Subaccounts cannot own subaccounts (as at Twilio). A parent and its
  subaccounts form a *family*, keyed by the parent's SID: the daily quota is counted per family.
- Credentials for /v1 and the Accounts API: HTTP Basic with the account SID and its auth token (or the
  secondary token kept by a rotation), or an API key SID (``SK`` + 32 hex) and secret created for that
  account. A key acts as the account that owns it.
- ``revoked``: every credential of the account is refused (401), as when someone deletes its keys and
  rotates its token elsewhere; the parent still sees the account, active, through the Accounts API.
  ``suspended`` accounts authenticate but are refused with 403 / 20005 "Account not active"; ``closed``
  accounts are refused with 401. Statuses do not cascade from a parent to its subaccounts.
- ``editions`` (None: the scenario's ``editions``) decides whether ExportConfiguration Enabled=true is allowed.

Not thread-safe on its own: the Store calls it under its lock.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.scenario import ScenarioError

ACCOUNT_SID_RE = re.compile(r"^AC[0-9a-fA-F]{32}$")
KEY_SID_RE = re.compile(r"^SK[0-9a-fA-F]{32}$")
STATUSES = ("active", "suspended", "closed")


class UnknownAccount(KeyError):
    """No account with that SID (the control API answers 404)."""


@dataclass
class Account:
    sid: str
    auth_token: str
    friendly_name: str
    owner_account_sid: str
    created: datetime
    updated: datetime
    status: str = "active"
    secondary_token: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    revoked: bool = False
    editions: bool | None = None

    @property
    def is_main(self) -> bool:
        return self.owner_account_sid == self.sid

    @property
    def family(self) -> str:
        return self.owner_account_sid

    def control_view(self, default_sid: str) -> dict[str, Any]:
        """Everything about the account, secrets included (the control API is test-only)."""
        return {
            "sid": self.sid,
            "friendly_name": self.friendly_name,
            "owner_account_sid": self.owner_account_sid,
            "parent_sid": None if self.is_main else self.owner_account_sid,
            "status": self.status,
            "auth_token": self.auth_token,
            "secondary_auth_token": self.secondary_token,
            "api_keys": [{"sid": k, "secret": v} for k, v in self.keys.items()],
            "revoked": self.revoked,
            "editions": self.editions,
            "default": self.sid == default_sid,
        }


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _text(body: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
        raise ScenarioError(f"{key} is not valid" + (f" (expected {pattern.pattern})" if pattern else ""))
    return value


class Accounts:
    """All accounts; the default one (from the command line) always exists and is a main account."""

    def __init__(self, default_sid: str, default_token: str, key_sid: str | None, key_secret: str | None) -> None:
        self.default_sid = default_sid
        self._default = (default_token, key_sid, key_secret)
        self.by_sid: dict[str, Account] = {}
        self.reset(datetime(1970, 1, 1))

    def reset(self, now: datetime) -> None:
        """Only the default account, with its start-up credentials, active."""
        token, key_sid, key_secret = self._default
        acct = Account(self.default_sid, token, "Sandbox default account", self.default_sid, now, now)
        if key_sid and key_secret:
            acct.keys[key_sid] = key_secret
        self.by_sid = {acct.sid: acct}

    def authenticate(self, username: str, password: str) -> Account | None:
        """The account these Basic credentials act as, or None (unknown, wrong, revoked or closed)."""
        acct = self.by_sid.get(username)  # SIDs are not secrets; tokens and key secrets are compared in constant time
        if acct is not None:
            ok = _same(password, acct.auth_token) or (
                acct.secondary_token is not None and _same(password, acct.secondary_token)
            )
        else:
            acct = next((a for a in self.by_sid.values() if username in a.keys), None)
            ok = acct is not None and _same(password, acct.keys[username])
        if acct is None or not ok or acct.revoked or acct.status == "closed":
            return None
        return acct

    def get(self, sid: str) -> Account | None:
        return self.by_sid.get(sid)

    def require(self, sid: str) -> Account:
        acct = self.by_sid.get(sid)
        if acct is None:
            raise UnknownAccount(sid)
        return acct

    def family_of(self, sid: str) -> str:
        return self.require(sid).family

    def visible_to(self, caller: Account) -> list[Account]:
        """What the Accounts API lists for ``caller``: itself, plus its subaccounts when it is a parent."""
        if not caller.is_main:
            return [caller]
        return [a for a in self.by_sid.values() if a.sid == caller.sid or a.owner_account_sid == caller.sid]

    def add(self, body: dict[str, Any], parent_sid: str | None, now: datetime) -> Account:
        """Create a main account (``parent_sid`` None) or a subaccount from a control-API body."""
        unknown = set(body) - {"sid", "auth_token", "friendly_name", "editions", "parent_sid"}
        if unknown:
            raise ScenarioError(f"unknown account keys: {sorted(unknown)}")
        if parent_sid is not None:
            parent = self.require(parent_sid)
            if not parent.is_main:
                raise ScenarioError(f"{parent_sid} is a subaccount; subaccounts cannot own subaccounts")
        sid = _text(body, "sid", ACCOUNT_SID_RE) or "AC" + secrets.token_hex(16)
        if sid in self.by_sid:
            raise ScenarioError(f"account {sid} already exists")
        token = _text(body, "auth_token", re.compile(r"^[0-9a-fA-F]{32}$")) or secrets.token_hex(16)
        name = _text(body, "friendly_name") or f"{'Subaccount' if parent_sid else 'Account'} {sid[-6:]}"
        editions = body.get("editions")
        if editions is not None and not isinstance(editions, bool):
            raise ScenarioError("editions must be true, false or null")
        acct = Account(sid, token, name, parent_sid or sid, now, now, editions=editions)
        self.by_sid[sid] = acct
        return acct

    def update(self, sid: str, body: dict[str, Any], now: datetime) -> Account:
        """PATCH: ``status``, ``friendly_name``, ``editions``."""
        acct = self.require(sid)
        unknown = set(body) - {"status", "friendly_name", "editions"}
        if unknown:
            raise ScenarioError(f"unknown account keys: {sorted(unknown)}")
        if "status" in body:
            if body["status"] not in STATUSES:
                raise ScenarioError(f"status must be one of {STATUSES}")
            acct.status = body["status"]
        if "friendly_name" in body:
            acct.friendly_name = _text(body, "friendly_name") or acct.friendly_name
        if "editions" in body:
            if body["editions"] is not None and not isinstance(body["editions"], bool):
                raise ScenarioError("editions must be true, false or null")
            acct.editions = body["editions"]
        acct.updated = now
        return acct

    def rotate(self, sid: str, keep_secondary: bool, now: datetime) -> Account:
        """A new auth token; the old one stays valid as the secondary token only if ``keep_secondary``."""
        acct = self.require(sid)
        acct.secondary_token = acct.auth_token if keep_secondary else None
        acct.auth_token = secrets.token_hex(16)
        acct.updated = now
        return acct

    def add_key(self, sid: str, body: dict[str, Any]) -> tuple[str, str]:
        acct = self.require(sid)
        key_sid = _text(body, "sid", KEY_SID_RE) or "SK" + secrets.token_hex(16)
        if any(key_sid in a.keys for a in self.by_sid.values()):
            raise ScenarioError(f"API key {key_sid} already exists")
        secret = _text(body, "secret") or secrets.token_urlsafe(24)
        acct.keys[key_sid] = secret
        return key_sid, secret
