"""Feeds: "keep resource type R complete in the bucket from day S (to day U)", declared by API/CLI or SYNC_FEEDS.

SYNC_FEEDS wins over the API: a feed it declares is ``managed_by: env``, rewritten from the environment at every
poll, and the API refuses to change or delete it (409 naming the setting), so a Kubernetes deploy and an operator
with curl never undo each other. A feed that leaves SYNC_FEEDS stops being planned (it is deleted; what was copied
stays). Feeds made through the API are ``managed_by: api``.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from app.feeds.store import Feed, FeedStore
from app.platform.config import FeedSettings
from app.platform.days import EARLIEST_DAY, newest_exportable_day
from app.platform.errors import Conflict, NotFound, RequestError
from app.platform.validation import parse_day, validate_resource_type
from app.twilio.accounts import owner_of

log = logging.getLogger(__name__)

FEED_FIELDS = {"since", "until", "enabled", "retain_days"}


def feed_from_body(resource_type: Any, body: Any, account_sid: str, today: date | None = None) -> Feed:
    """Validate a PUT /api/feeds/<rt> body (for an account already resolved); every error names the field and
    nothing is stored."""
    rt = validate_resource_type(resource_type)
    if not isinstance(body, dict):
        raise RequestError("body must be a JSON object")
    unknown = set(body) - FEED_FIELDS
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
    since = parse_day(body.get("since"), "since")
    until = None if body.get("until") is None else parse_day(body.get("until"), "until")
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RequestError("enabled must be true or false")
    retain = body.get("retain_days")
    if retain is not None and (isinstance(retain, bool) or not isinstance(retain, int) or retain < 1):
        raise RequestError("retain_days must be a whole number of days >= 1 (or null: keep every day)")
    if until is not None and since > until:
        raise RequestError("since must not be after until")
    if since < EARLIEST_DAY:
        raise RequestError(f"since must be {EARLIEST_DAY} or later (Twilio has no records that old)")
    latest = newest_exportable_day(today)
    if since > latest:
        raise RequestError(f"since must be at most {latest.isoformat()} (two days before today, UTC)")
    return Feed(
        rt, since.isoformat(), until.isoformat() if until else None, enabled, account=account_sid, retain_days=retain
    )


def put_feed(store: FeedStore, feed: Feed) -> Feed:
    existing = store.get_feed(feed.owner)
    _refuse_env_managed(existing)
    if existing is not None:
        feed.created_at = existing.created_at
    store.put_feed(feed)
    log.info("feed set", extra={"resource_type": feed.resource_type, "since": feed.since, "until": feed.until})
    return feed


def require_feed(store: FeedStore, resource_type: Any, account_sid: str) -> Feed:
    feed = store.get_feed(owner_of(validate_resource_type(resource_type), account_sid))
    if feed is None:
        raise NotFound(f"no feed for {resource_type}")
    return feed


def delete_feed(store: FeedStore, resource_type: Any, account_sid: str) -> Feed:
    """Stop planning the feed; copied data and jobs in flight are untouched."""
    feed = require_feed(store, resource_type, account_sid)
    _refuse_env_managed(feed)
    store.delete_feed(feed.owner)
    return feed


def _refuse_env_managed(feed: Feed | None) -> None:
    if feed is not None and feed.managed_by == "env":
        raise Conflict(f"the {feed.resource_type} feed is declared by SYNC_FEEDS: change it there (the setting wins)")


def apply_env_feeds(store: FeedStore, settings: FeedSettings, account_sids: list[str]) -> None:
    """Make the stored feeds match SYNC_FEEDS, for every account served (idempotent; run by every poll)."""
    declared = {(owner_of(spec.resource_type, sid), sid): spec for spec in settings.feeds for sid in account_sids}
    owners = {owner for owner, _ in declared}
    stored = {feed.owner: feed for feed in store.list_feeds()}  # one read for every feed, not one per feed
    for feed in stored.values():
        if feed.managed_by == "env" and feed.owner not in owners:
            store.delete_feed(feed.owner)
            log.info("feed no longer in SYNC_FEEDS: stopped", extra={"resource_type": feed.resource_type})
    for (owner, sid), spec in declared.items():
        current = stored.get(owner)
        wanted = Feed(spec.resource_type, spec.since, spec.until, managed_by="env", account=sid)
        wanted.retain_days = spec.retain_days
        same = current is not None and _same_declaration(current, wanted)
        if not same:
            if current is not None:
                wanted.created_at = current.created_at
            store.put_feed(wanted)
            log.info("feed set from SYNC_FEEDS", extra={"resource_type": spec.resource_type, "since": spec.since})


def _same_declaration(a: Feed, b: Feed) -> bool:
    return (a.since, a.until, a.enabled, a.managed_by, a.retain_days) == (
        b.since,
        b.until,
        b.enabled,
        b.managed_by,
        b.retain_days,
    )


def feed_view(feed: Feed) -> dict[str, Any]:
    return {
        "resource_type": feed.resource_type,
        "account": feed.account,
        "since": feed.since,
        "until": feed.until,
        "enabled": feed.enabled,
        "managed_by": feed.managed_by,
        "retain_days": feed.retain_days,
    }
