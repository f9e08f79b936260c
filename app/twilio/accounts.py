"""The Twilio accounts this relay serves: the TWILIO_* account, a file of accounts mounted from a secret, and the
active subaccounts a parent's credentials discover (Accounts API), refreshed every ACCOUNTS_REFRESH_SECONDS.

Credentials stay in this process's memory: never in Redis, S3, logs (each is registered with the log scrubber) or
an API answer. What other processes and people may see (label, family, state: ok / credentials refused /
suspended, last error) is kept in Redis by ``app.twilio.account_states.AccountStateStore``. A parent and its
subaccounts form one *family*, which shares Twilio's daily quota of requested days.

Naming an account (``account=`` in the API, CLI and console; :meth:`AccountDirectory.resolve`): a SID always
resolves to that account and is never compared with labels; a label is used only if it is one of the accounts'
labels exactly. Labels are safe by construction (``app.platform.labels``): a discovered subaccount's friendly name,
which that subaccount's holder can change to anything, becomes its label only if it is plain printable ASCII,
does not look like a SID (spacing, case and invisible characters ignored) and no other account has the same label
key; otherwise that account is reached by SID only (and a SID-looking name is not even shown).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from app.platform.config import ACCOUNT_SID_RE, AccountSpec, Settings
from app.platform.errors import NotFound, RequestError
from app.platform.labels import label_key, shown_name
from app.platform.logs import add_secrets
from app.twilio.account_states import AccountStateStore

log = logging.getLogger(__name__)

OK, REFUSED, SUSPENDED = "ok", "credentials refused", "suspended"
FORCED_REFRESH_SECONDS = 30
_noted: dict[str, str] = {}  # this process's last recorded state per account: Redis is written on changes only


def owner_of(resource_type: str, account_sid: str) -> str:
    """One account's resource type, as a key: what feeds, coverage and daily exports are kept per, and what a
    submission marks its days in flight under."""
    return f"{account_sid}:{resource_type}"


def note_outcome(states: AccountStateStore, sid: str, error: Exception | None) -> None:
    """Record what a call with the account's credentials showed: ok, or refused (401/403 from Twilio), so
    /api/accounts, /health and the metrics show which account is broken while the others keep syncing."""
    status = getattr(error, "status", None)
    state = OK if error is None else REFUSED if status in (401, 403) else None
    if state is None or _noted.get(sid) == state:
        return
    states.put(sid, state=state, error="" if error is None else str(error)[:300])
    _noted[sid] = state
    if state != OK:
        log.warning("Twilio refused the credentials of account %s: %s", sid, error)


@dataclass(frozen=True)
class Account:
    sid: str
    label: str
    family: str  # the parent's SID (its own for a parent or a lone account): one daily quota per family
    source: str  # settings | file | discovered
    status: str = "active"  # Twilio's status for discovered subaccounts (suspended ones are listed, not used)
    auth_token: str | None = field(default=None, repr=False)
    auth_token_secondary: str | None = field(default=None, repr=False)
    api_key_sid: str | None = None
    api_key_secret: str | None = field(default=None, repr=False)
    friendly_name: str = ""  # Twilio's, sanitised, shown only (app.platform.labels.shown_name); never resolved

    @property
    def name(self) -> str:
        return self.label or self.sid

    @property
    def auth_tokens(self) -> tuple[str, ...]:
        """What its webhooks may be signed with (the secondary during a rotation)."""
        return tuple(t for t in (self.auth_token, self.auth_token_secondary) if t)

    def public_view(self) -> dict[str, Any]:
        """What the API shows: never a credential."""
        return {
            "sid": self.sid,
            "label": self.label or None,
            "friendly_name": self.friendly_name or None,
            "family": self.family,
            "source": self.source,
            "twilio_status": self.status,
        }


def _from_spec(spec: AccountSpec, source: str) -> Account:
    return Account(
        spec.sid,
        spec.label,
        spec.parent_sid or spec.sid,
        source,
        "active",
        spec.auth_token,
        spec.auth_token_secondary,
        spec.api_key_sid,
        spec.api_key_secret,
    )


class AccountDirectory:
    """Every account, by SID or label; discovery refreshed lazily (at most every refresh_seconds, one thread)."""

    def __init__(self, settings: Settings, discover: Callable[[Account], list[dict[str, Any]]] | None = None) -> None:
        primary = AccountSpec(
            settings.twilio_account_sid,
            "",
            settings.twilio_auth_token,
            settings.twilio_auth_token_secondary,
            settings.twilio_api_key_sid,
            settings.twilio_api_key_secret,
        )
        self.primary = _from_spec(primary, "settings")
        self._static = {self.primary.sid: self.primary} | {
            a.sid: _from_spec(a, "file") for a in settings.accounts.listed
        }
        self._discovered: dict[str, Account] = {}
        self._discover = discover if settings.accounts.discover_subaccounts else None
        self._refresh_seconds = settings.accounts.refresh_seconds
        self._refreshed = 0.0
        self._lock = threading.Lock()
        self.last_discovery_error: str | None = None
        self._label_notes: dict[str, str] = {}  # SID -> the friendly name last refused as its label (logged once)

    def all(self) -> list[Account]:
        self.refresh()
        return list((self._static | self._discovered).values())

    def get(self, sid: str) -> Account:
        """By SID (jobs and feeds name their account by SID); NotFound if it is not served (any more).

        The webhook calls this, so it waits for the Accounts API only when it must: a process's first call
        discovers (a web worker's first request may be a subaccount's webhook), and a SID not known yet forces a
        refresh at most every 30 s (a subaccount created since). A list older than ACCOUNTS_REFRESH_SECONDS (a
        rotated auth token) is refreshed in a background thread while the current one answers."""
        if not self._refreshed:
            self.refresh()
        elif (
            self._discover is not None
            and time.monotonic() - self._refreshed >= self._refresh_seconds
            and not self._lock.locked()
        ):
            threading.Thread(target=self.refresh, name="accounts-refresh", daemon=True).start()
        account = self._static.get(sid) or self._discovered.get(sid)
        if account is None and time.monotonic() - self._refreshed > FORCED_REFRESH_SECONDS:
            self.refresh(force=True)  # a subaccount created since the last refresh (at most every 30 s)
            account = self._discovered.get(sid)
        if account is None:
            raise NotFound(f"account {sid} is not served by this relay")
        return account

    def resolve(self, value: Any) -> Account:
        """An account named by SID or label (the rule in the module docstring); none given: the only account, if
        there is exactly one."""
        accounts = self.all()
        if value is None or value == "":
            if len(accounts) == 1:
                return accounts[0]
            raise RequestError(f"account is required: one of {', '.join(a.name for a in accounts)}")
        if not isinstance(value, str) or len(value) > 64:
            raise RequestError("account must be an account SID or label")
        if ACCOUNT_SID_RE.fullmatch(value):
            found = [a for a in accounts if a.sid.casefold() == value.casefold()]
        else:
            found = [a for a in accounts if a.label and a.label == value]
        if len(found) != 1:
            raise RequestError(f"account {value!r} is not served by this relay")
        return found[0]

    def refresh(self, force: bool = False) -> None:
        stale = not self._refreshed or time.monotonic() - self._refreshed >= self._refresh_seconds
        if self._discover is None or not (force or stale):  # never refreshed: stale, however young the host's uptime
            return
        first = not self._refreshed
        if not self._lock.acquire(blocking=first):
            return  # another thread refreshes; the current list stays valid meanwhile
        try:
            if first and self._refreshed:
                return  # the first discovery was made by the thread we waited for
            self._refreshed = time.monotonic()
            found = self._discover(self.primary)
            listed = [a for a in (_discovered(item, self.primary, self._label_notes) for item in found) if a]
            self._discovered = {a.sid: a for a in self._unique_labels(listed)}
            self.last_discovery_error = None
        except Exception as exc:  # keep what was known; the error shows in /api/accounts and /health
            self.last_discovery_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("subaccount discovery failed: %s", self.last_discovery_error)
        finally:
            self._lock.release()

    def _unique_labels(self, discovered: list[Account]) -> list[Account]:
        """Discovered accounts, their label dropped where it is not unique (rule 4 of ``app.platform.labels``); each
        refused name is logged once per process (by SID: the name is the customer's)."""
        kept = unique_labels(discovered, self._static.values())
        for before, after in zip(discovered, kept, strict=True):
            if before.label != after.label and self._label_notes.get(after.sid) != before.label:
                self._label_notes[after.sid] = before.label
                log.warning(
                    "subaccount %s: its friendly name is another account's label too; it is named by SID only",
                    after.sid,
                )
        return kept


def unique_labels(discovered: list[Account], configured: Iterable[Account]) -> list[Account]:
    """``discovered`` with the label removed where its key is another configured account's, or another discovered
    account's: a shared name is nobody's label, so no rename can take a label over."""
    sids = {a.sid for a in discovered}
    taken = {label_key(a.label) for a in configured if a.label and a.sid not in sids}
    counts = Counter(label_key(a.label) for a in discovered if a.label)
    return [
        a
        if not a.label or (counts[label_key(a.label)] == 1 and label_key(a.label) not in taken)
        else replace(a, label="")
        for a in discovered
    ]


def _discovered(item: dict[str, Any], parent: Account, notes: dict[str, str]) -> Account | None:
    sid, token = item.get("sid"), item.get("auth_token")
    if not isinstance(sid, str) or not ACCOUNT_SID_RE.fullmatch(sid) or sid == parent.sid:
        return None
    if not isinstance(token, str) or not token:
        return None
    add_secrets(token)
    raw = str(item.get("friendly_name") or "")
    name = shown_name(raw)
    if raw and not name and notes.get(sid) != raw:
        notes[sid] = raw
        log.warning(
            "subaccount %s: its friendly name looks like an account SID, is not plain printable ASCII or has no "
            "letter or digit; it is neither shown nor a label (named by SID only)",
            sid,
        )
    status = str(item.get("status") or "active")
    return Account(sid, name, parent.sid, "discovered", status, token, friendly_name=name)


def accounts_view(svc: Any) -> dict[str, Any]:
    """Every account served, with its state as last recorded (``AccountStateStore.put``): no credential."""
    states = svc.account_states.all()
    out = []
    for account in svc.accounts.all():
        recorded = states.get(account.sid, {})
        state = SUSPENDED if account.status != "active" else recorded.get("state", OK)
        out.append(account.public_view() | {"state": state, "error": recorded.get("error") or None})
    return {"accounts": out, "discovery_error": svc.accounts.last_discovery_error}
