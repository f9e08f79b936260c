"""``relay migrate-layout``: move every stored day to another key template inside the bucket, so that switching
``S3_KEY_TEMPLATE`` afterwards changes no coverage.

The days moved are the ones coverage records as ``copied``, at the key it records (``CoverageDay.key``); each is
copied server-side (``LayoutStore.copy_within``: CopyObject, a multipart copy above S3's 5 GiB limit; no download
from Twilio, no quota) to the key the new template gives it, then verified and recorded:

1. the old object must be the verified copy (its size, and sha256 / records from where the store keeps them:
   the tags, or the job manifest; ``LayoutStore.held``), else the day is not moved (a problem, reported);
2. after the copy (the sink checks the new key with a HeadObject, as after every write), the new object must
   have the recorded size, and on a store that keeps tags the recorded sha256 (the copy is tagged with it);
3. the coverage record gets the new key and ETag (``FeedStore.replace_days``: only if the record is still the
   one read). A reconciliation before the switch still finds the day (a recorded key absent from the listing
   is HEADed, ``app.bucket.reconcile.reconcile``); after it, the listing of the new template finds it at its key.
4. ``--delete-old`` deletes the old object only after 3.

Idempotent and resumable: a day already recorded at its new key is done (with ``--delete-old``, an old object
still at the current template's key, ``LayoutStore.day_key``, that is the same copy is deleted then); a day whose
new key already holds the verified object (a run killed before recording it) is recorded without copying again.
Runs on a worker (``workers.tasks.migrate_layout_task``): only the workers' role may read and write objects.
The plan alone (``plan``, ``--dry-run``) reads coverage only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from app.feeds.store import CoverageDay, Feed
from app.platform import clock
from app.platform.config import ConfigError, check_key_template, key_template_fields
from app.platform.errors import RequestError
from app.twilio.accounts import owner_of

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

PROBLEMS = ("missing", "unverified", "failed")


@dataclass(frozen=True)
class HeldObject:
    """What the bucket holds at a key: size, ETag, and sha256 / records where the store keeps them (None: not
    found)."""

    size: int
    etag: str
    sha256: str | None
    records: int | None


class LayoutStore(Protocol):
    """The bucket as the migration uses it (the workers' S3 sink implements it)."""

    @property
    def keeps_tags(self) -> bool:
        """Whether sha256 and records live in the object's tags (else only in the job manifests)."""
        ...

    def held(self, key: str) -> HeldObject | None: ...

    def day_key(self, resource_type: str, day: str, job_sid: str, account_sid: str = "") -> str:
        """The key the current template gives a day."""
        ...

    def copy_within(self, old_key: str, new_key: str, size: int, sha256: str | None, records: int | None) -> None:
        """Server-side copy, tagged with sha256 / records where the store keeps tags, checked by a HeadObject
        (raises if the new key does not hold the copy)."""
        ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class Move:
    resource_type: str
    account_sid: str
    day: str
    old_key: str
    new_key: str
    # planned (--dry-run), moved, recorded (the new key held the verified copy already: a killed run), done
    # (recorded at the new key before), or one of PROBLEMS (not moved)
    outcome: str = "planned"
    detail: str = ""
    deleted_old: bool = False

    def view(self) -> dict[str, Any]:
        return asdict(self)


def validate_template(svc: Services, template: str) -> str:
    """The new template, checked exactly as S3_KEY_TEMPLATE is (``app.platform.config``), with several accounts needing
    {account_sid}; a RequestError naming --to otherwise."""
    several = len(svc.accounts.all()) > 1 or svc.settings.accounts.discover_subaccounts
    try:
        check_key_template(template, several_accounts=several)
    except ConfigError as exc:
        raise RequestError(f"--to: {exc}") from None
    return template


def new_key(template: str, prefix: str, feed: Feed, day: str, rec: CoverageDay) -> str:
    return template.format(
        prefix=prefix, resource_type=feed.resource_type, day=day, job_sid=rec.job_sid or "", account_sid=feed.account
    )


def plan(svc: Services, template: str, account_sid: str | None = None) -> list[Move]:
    """Every copied day of the selected feeds with its recorded key and the new template's, in feed and day
    order (a template with {job_sid} needs the day's recorded job: a day without one is a problem)."""
    moves: list[Move] = []
    for feed in [f for f in svc.feeds.list_feeds() if account_sid in (None, f.account)]:
        cov = svc.feeds.coverage([feed.owner])[feed.owner]
        for day in sorted(d for d, rec in cov.items() if rec.state == "copied" and rec.key):
            rec = cov[day]
            move = Move(
                feed.resource_type,
                feed.account,
                day,
                str(rec.key),
                new_key(template, svc.settings.s3_prefix, feed, day, rec),
            )
            if move.old_key == move.new_key:
                move = replace(move, outcome="done", detail="recorded at its new key already")
            elif "job_sid" in key_template_fields(template) and not rec.job_sid:
                move = replace(move, outcome="failed", detail="no job recorded for the day: {job_sid} cannot be filled")
            moves.append(move)
    return moves


def migrate(svc: Services, store: LayoutStore, template: str, account_sid: str | None, delete_old: bool) -> list[Move]:
    """Carry out ``plan``: each day copied, verified, recorded (and its old object deleted), one at a time."""
    out = []
    for move in plan(svc, template, account_sid):
        if move.outcome in ("planned", "done"):
            try:
                move = _move_day(svc, store, move, delete_old)
            except Exception as exc:  # S3 refused or failed: reported, the day stays where it is recorded
                log.warning("migrate-layout: could not move %s: %s", move.old_key, exc)
                move = replace(move, outcome="failed", detail=f"{type(exc).__name__}: {exc}")
        if move.outcome in PROBLEMS:
            log.error("migrate-layout: %s %s not moved: %s", move.resource_type, move.day, move.detail)
        out.append(move)
    return out


def _move_day(svc: Services, store: LayoutStore, move: Move, delete_old: bool) -> Move:
    owner = owner_of(move.resource_type, move.account_sid)
    rec = svc.feeds.get_day(owner, move.day)
    if rec is None or rec.state != "copied" or rec.key != move.old_key:
        return replace(move, outcome="failed", detail="the day's record changed meanwhile: run again")
    if move.old_key == move.new_key:
        old = store.day_key(move.resource_type, move.day, rec.job_sid or "", move.account_sid)
        return _delete_old(store, replace(move, old_key=old), rec, delete_old and old != move.new_key)
    new = store.held(move.new_key)
    if new is None or not _is_copy(rec, new, strict=True):
        src = store.held(move.old_key)
        if src is None:
            return replace(move, outcome="missing", detail="the recorded object is gone (the reconcile drops it)")
        if not _is_copy(rec, src, strict=True):
            return replace(move, outcome="unverified", detail="the recorded object is not the verified copy")
        store.copy_within(move.old_key, move.new_key, src.size, rec.sha256, rec.records)
        new = store.held(move.new_key)
        if new is None or not _is_copy(rec, new, strict=store.keeps_tags):
            store.delete(move.new_key)  # not recorded anywhere: nothing unverified stays at the new key
            return replace(move, outcome="unverified", detail="the copy is not the verified object")
        outcome = "moved"
    else:
        outcome = "recorded"
    moved = replace(rec, key=move.new_key, etag=new.etag or None, updated_at=clock.now())
    if not svc.feeds.replace_days(owner, {move.day: (rec, moved)}):
        return replace(move, outcome="failed", detail="the day's record changed meanwhile: run again")
    return _delete_old(store, replace(move, outcome=outcome), rec, delete_old)


def _delete_old(store: LayoutStore, move: Move, rec: CoverageDay, delete: bool) -> Move:
    """The old object deleted (after the new one is verified and recorded), if it is still the same copy."""
    if not delete:
        return move
    old = store.held(move.old_key)
    if old is not None and _is_copy(rec, old, strict=False):
        store.delete(move.old_key)
        return replace(move, deleted_old=True)
    return move


def _is_copy(rec: CoverageDay, obj: HeldObject, strict: bool) -> bool:
    """Whether ``obj`` is the day's verified copy: its size, and (``strict``) the recorded sha256 and records
    (a record without a sha256, found in a listing, has its size only)."""
    if rec.size is not None and obj.size != rec.size:
        return False
    if rec.sha256 and (obj.sha256 != rec.sha256 if strict else obj.sha256 not in (None, rec.sha256)):
        return False
    return not (rec.records is not None and obj.records is not None and obj.records != rec.records)


def summary(moves: list[Move]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for m in moves:
        counts[m.outcome] = counts.get(m.outcome, 0) + 1
    return {
        "days": len(moves),
        "counts": counts,
        "deleted_old": sum(1 for m in moves if m.deleted_old),
        "moves": [m.view() for m in moves],
        "problems": [m.view() for m in moves if m.outcome in PROBLEMS],
    }


def summary_text(doc: dict[str, Any]) -> str:
    lines = [
        f"{m['outcome'].upper():<10} {m['resource_type']} {m['day']}  {m['old_key']} -> {m['new_key']}"
        + (f": {m['detail']}" if m["detail"] else "")
        + ("  (old deleted)" if m["deleted_old"] else "")
        for m in doc["moves"]
    ]
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(doc["counts"].items())) or "nothing to move"
    verdict = f"{len(doc['problems'])} problem day(s)" if doc["problems"] else "no problem"
    lines.append(f"{doc['days']} copied day(s): {counts}; {doc['deleted_old']} old object(s) deleted; {verdict}")
    return "\n".join(lines)
