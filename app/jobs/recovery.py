"""A lost registry (Redis flushed, or restarted without persistence) detected, and rebuilt from the sources of truth.

The registry carries a marker (``ber:registry:marker``) and the bucket a copy of it (``{prefix}_relay/registry.json``,
written by the workers). Redis without the marker while the bucket has it means the registry was lost, not a fresh
install: /readyz and /health say so, and the poller rebuilds it at once (``relay recover`` asks for it too):

- jobs: Twilio lists every job of the last 7 days per resource type; those the marks of our submissions show to
  be ours (``app.jobs.ownership``: this deployment's webhook URL, whose token rebuilds the token mapping, hashed;
  without a webhook, the reference at the end of the friendly name) are tracked again and synced;
- copied days: coverage is reconciled with an S3 listing before any feed is planned again, and each day copy first
  asks S3 whether the file is already there (``S3Sink.stored_day``), so nothing in the bucket is fetched again;
- "a validly signed webhook was seen" (WEBHOOK_SIGNATURE=auto refuses unsigned deliveries from then on,
  app/web/intake.py): the web remembers it in Redis, and the poll after copies it into the bucket's marker
  (``signed_webhook_seen_at``), once. Recovery restores it before any job's token is usable again, so a lost
  Redis does not reopen the door to unsigned deliveries (issue 20). Only a Redis lost within one poll interval of
  the very first signed delivery forgets it (the next signed delivery sets it again).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from app.jobs import events
from app.jobs.ownership import hook_prefix, mark_of, origin_of, record_of
from app.platform import clock
from app.platform.config import RESOURCE_TYPES
from app.platform.metrics import JOBS
from app.twilio.client import TwilioError

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

LOST, FRESH, OK = "lost", "fresh", "ok"
MARKER_KEY = "_relay/registry.json"  # under S3_PREFIX
SIGNED_SEEN = "signed_webhook_seen_at"  # the marker's field: when the first validly signed webhook arrived


class MarkerStore(Protocol):
    """Where the bucket's copy of the marker lives (the workers' S3 sink implements it)."""

    def read_marker(self) -> dict[str, Any] | None: ...

    def write_marker(self, marker: dict[str, Any]) -> None: ...


def registry_state(svc: Services, client: Any) -> str:
    """OK, FRESH (no marker anywhere yet) or LOST; ``client`` an S3 client allowed to list the bucket (the web's
    probe): listing is enough, so the web needs no read access to objects."""
    if svc.marks.marker():
        return OK
    key = f"{svc.settings.s3_prefix}{MARKER_KEY}"
    listed = client.list_objects_v2(Bucket=svc.settings.s3_bucket, Prefix=key, MaxKeys=1)
    return LOST if any(o.get("Key") == key for o in listed.get("Contents") or []) else FRESH


@dataclass
class Recovery:
    adopted: list[str]
    state_before: str


def ensure_registry(svc: Services, store: MarkerStore) -> Recovery:
    """Run by every poll (cheap when the marker is there): create the marker on a fresh install, recover a lost
    registry."""
    marker = svc.marks.marker()
    if marker:
        keep_signed_seen(svc, store, marker)
        return Recovery([], OK)
    bucket = store.read_marker()
    if bucket is None:
        marker = {"id": uuid.uuid4().hex, "created_at": str(clock.now())}
        store.write_marker(marker)
        svc.marks.put_marker(marker)
        log.info("registry marker created (fresh install)")
        return Recovery([], FRESH)
    if bucket.get(SIGNED_SEEN):  # before any token is mapped again: no unsigned delivery slips in between
        svc.tokens.mark_signed_seen(_seconds(bucket[SIGNED_SEEN]))
    adopted = recover_jobs(svc)
    svc.marks.put_marker({**{k: str(v) for k, v in bucket.items()}, "recovered_at": str(clock.now())})
    log.warning("registry was lost and has been rebuilt from Twilio and the bucket", extra={"adopted": len(adopted)})
    events.registry_recovered(svc, adopted)  # queued only, never raises
    return Recovery(adopted, LOST)


def keep_signed_seen(svc: Services, store: MarkerStore, marker: dict[str, str]) -> None:
    """Copy "a validly signed webhook was seen" from Redis into the bucket's marker, once (the registry's marker
    then carries it too, so later polls cost one GET); and set it again from the registry's marker if only the
    flag was lost."""
    seen = svc.tokens.signed_seen()
    if marker.get(SIGNED_SEEN):
        if seen is None:
            svc.tokens.mark_signed_seen(_seconds(marker[SIGNED_SEEN]))
        return
    if seen is None:
        return
    store.write_marker({**(store.read_marker() or marker), SIGNED_SEEN: str(seen)})
    svc.marks.put_marker({SIGNED_SEEN: str(seen)})
    log.info("registry marker in the bucket now remembers that a signed webhook was seen")


def _seconds(raw: Any) -> float | None:
    """A stored time; None (now) if it is unreadable: the fact that one was seen is what matters."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def recover_jobs(svc: Services) -> list[str]:
    """Track again every job of ours that Twilio still lists (it keeps them 7 days after they finish)."""
    adopted = []
    prefix = hook_prefix(svc)
    for account in svc.accounts.all():
        try:
            adopted += _recover_account(svc, account.sid, prefix)
        except TwilioError as exc:  # one account's refused credentials must not stop the others' recovery
            log.warning("could not list %s's jobs for recovery: %s", account.name, exc)
    return adopted


def _recover_account(svc: Services, account_sid: str, prefix: str) -> list[str]:
    adopted = []
    for rt in RESOURCE_TYPES:
        for tj in svc.twilio_for(account_sid).list_jobs(rt):
            mark = mark_of(tj, prefix)
            if mark is None or not (tj.start_day and tj.end_day):
                continue  # not ours (another tool's job, or another deployment's), or no range to track
            record = record_of(tj, rt, account_sid, origin_of(tj.friendly_name or ""), mark.token_hash)
            if svc.jobs.add_job(record):
                JOBS.labels("recovered").inc()
                svc.enqueuer.sync(tj.job_sid)
                adopted.append(tj.job_sid)
    return adopted
