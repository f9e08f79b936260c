"""Which Twilio jobs are ours, told by the marks our submissions leave on them, and the one way a job is tracked.

Every job we create carries its submission's token (``app.jobs.submission``): in our webhook URL
(``{PUBLIC_BASE_URL}/hooks/bulkexport?token=...``), or, made without a webhook, as a reference to the token's
hash at the end of its friendly name (``ref:`` + 20 hex digits). ``mark_of`` reads that mark back: a job is ours
only if its webhook URL is our webhook, or if it has no webhook and its name ends with such a reference. Recovery
(a lost registry), the adoption of ambiguous creates (``reconcile_pending``) and the search after a create whose
answer was lost all ask it. ``record_of`` makes the ``JobRecord`` of a Twilio job (submitted, recovered,
adopted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

from app.jobs.records import JobRecord, hash_token
from app.platform import clock
from app.twilio.client import TwilioJob

if TYPE_CHECKING:
    from app.services import Services

FEED_NAME_PREFIX = "bulkexport-relay feed "  # the friendly name of every job the planner submits starts so
_REF_RE = re.compile(r"(?:\A| )(ref:[0-9a-f]{20})\Z")


def webhook_url(svc: Services, token: str) -> str | None:
    """Our webhook for a job (None without PUBLIC_BASE_URL: then the poller alone follows the job)."""
    base = svc.settings.public_base_url
    return f"{base}/hooks/bulkexport?{urlencode({'token': token})}" if base else None


def hook_prefix(svc: Services) -> str:
    """What every webhook URL of ours starts with ("" without PUBLIC_BASE_URL)."""
    return (webhook_url(svc, "") or "").removesuffix("token=")


def token_ref(token_hash: str) -> str:
    """What a job's friendly name carries when it has no webhook URL, so an ambiguous create can still be found
    by its submission (a prefix of the token's hash, which reveals nothing of the token)."""
    return f"ref:{token_hash[:20]}"


@dataclass(frozen=True)
class Mark:
    """What in a Twilio job says it is ours: the hash of the token in our webhook URL ("" when the URL carries
    none), or the reference at the end of its friendly name ("" when it has our webhook)."""

    token_hash: str = ""
    ref: str = ""

    def is_of(self, token_hash: str) -> bool:
        """Whether this mark is the one the submission with ``token_hash`` left."""
        return self.token_hash == token_hash if self.token_hash else self.ref == token_ref(token_hash)


def mark_of(tj: TwilioJob, prefix: str) -> Mark | None:
    """The job's mark if it is ours (``prefix``: ``hook_prefix``), else None (another tool's job, or another
    deployment's)."""
    url = tj.webhook_url or ""
    if prefix and url.startswith(prefix):
        token = parse_qs(urlsplit(url).query).get("token", [""])[0]
        return Mark(token_hash=hash_token(token) if token else "")
    ref = _REF_RE.search(tj.friendly_name or "")
    return Mark(ref=ref.group(1)) if ref and not url else None


def origin_of(friendly_name: str) -> str:
    """ "feed" for a job the planner submitted (its name says so), else "api"."""
    return "feed" if friendly_name.startswith(FEED_NAME_PREFIX) else "api"


def record_of(
    tj: TwilioJob,
    resource_type: str,
    account_sid: str,
    origin: str,
    token_hash: str = "",
    sent: tuple[str, str, str] | None = None,
    email: str = "",
) -> JobRecord:
    """The record that tracks a Twilio job from now on; ``sent``: the (start day, end day, friendly name) we asked
    for, which win over Twilio's echo (a create answer may echo nulls)."""
    start, end, name = sent or (tj.start_day or "", tj.end_day or "", tj.friendly_name or "")
    now = clock.now()
    return JobRecord(
        job_sid=tj.job_sid,
        resource_type=resource_type,
        start_day=start,
        end_day=end,
        friendly_name=name,
        email=email,
        origin=origin,
        account_sid=account_sid,
        token_hash=token_hash,
        twilio=tj.snapshot(),
        created_at=now,
        updated_at=now,
    )
