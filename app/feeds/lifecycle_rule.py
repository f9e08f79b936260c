"""The S3 lifecycle configuration equivalent to the feeds' ``retain_days`` (``relay lifecycle-rule``,
``GET /api/lifecycle-rule``), so the bucket's rules and the relay's windows never disagree.

One Expiration rule per feed with ``retain_days``, filtered on the feed's key prefix: the fixed text of
S3_KEY_TEMPLATE up to its first field that varies per day (``day``, ``job_sid``), with ``prefix``,
``resource_type`` and ``account_sid`` filled in. When that text does not reach the resource type (or, in a
template with ``account_sid``, the account), the feed's objects share a prefix with other feeds': no rule can
expire one feed's days only, and the document says so instead of giving a rule.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any

from app.feeds.store import Feed
from app.platform.config import Settings
from app.platform.config.settings import DEFAULT_KEY_TEMPLATE

NOTES = (
    "S3 counts Expiration days from each object's creation, the relay from the day in its key: a day copied "
    "late (a backfill) stays in S3 up to that much longer than the feed's window; the relay never fetches it again.",
    "PutBucketLifecycleConfiguration replaces the bucket's whole configuration: merge these rules with the ones "
    "already there (deploy/s3-lifecycle.json).",
)


def feed_prefix(template: str, s3_prefix: str, feed: Feed) -> str | None:
    """The fixed start of every key of the feed's day files; None when it does not name the feed alone."""
    values = {"prefix": s3_prefix, "resource_type": feed.resource_type, "account_sid": feed.account}
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    needed = {"resource_type"} | ({"account_sid"} & fields)
    text = ""
    for literal, name, _, _ in string.Formatter().parse(template):
        text += literal
        if name is None:
            continue
        if name not in values:
            break
        text += values[name]
        needed.discard(name)
    return text if not needed else None


def lifecycle_rule_doc(settings: Settings, feeds: Iterable[Feed]) -> dict[str, Any]:
    """``{"lifecycle_configuration": {"Rules": [...]}, "underivable": [...], "notes": [...]}``."""
    template = settings.s3_key_template or DEFAULT_KEY_TEMPLATE
    rules: list[dict[str, Any]] = []
    underivable: list[dict[str, str]] = []
    for feed in sorted(feeds, key=lambda f: (f.account, f.resource_type)):
        if not feed.retain_days:
            continue
        prefix = feed_prefix(template, settings.s3_prefix, feed)
        if prefix is None:
            underivable.append(
                {
                    "resource_type": feed.resource_type,
                    "account": feed.account,
                    "why": f"S3_KEY_TEMPLATE {template!r} puts a per-day field before the feed's "
                    "resource type or account: its keys have no prefix of their own",
                }
            )
            continue
        rules.append(
            {
                "ID": f"relay-retain-{feed.resource_type}-{feed.account}"[:255],
                "Status": "Enabled",
                "Filter": {"Prefix": prefix},
                "Expiration": {"Days": feed.retain_days},
            }
        )
    return {"lifecycle_configuration": {"Rules": rules}, "underivable": underivable, "notes": list(NOTES)}
