"""Where and how the sink stores day files (``SinkSettings``, built by ``workers.tasks`` from the process's
Settings) and the keys it writes: day files from the key template, job manifests, the old staging prefix."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date

from app.platform.config import DEFAULT_S3_PREFIX, DEFAULT_SINGLE_PUT_MAX_MIB
from app.platform.config.settings import DEFAULT_KEY_TEMPLATE
from app.platform.units import GiB, MiB

# Day files up to this size are held in memory, verified, and written with one PutObject (see the package
# docstring): faster than a multipart upload up to about this size, slower above (bench/README.md).
SINGLE_PUT_MAX = DEFAULT_SINGLE_PUT_MAX_MIB * MiB
SINGLE_PUT_LIMIT = 5 * GiB  # S3's own PutObject limit
# Versions before the streaming multipart path staged big files here. Nothing writes there any more; the
# janitor still deletes what they left (and the lifecycle rule expires it) for one release: remove after that.
STAGING_DIR = "_staging/"
SSE_MODES = (None, "AES256", "aws:kms")


@dataclass(frozen=True)
class SinkSettings:
    """Where and how day files are stored. ``key_template`` is a str.format template; ``prefix`` defaults to
    S3_PREFIX's default (``app.platform.config.DEFAULT_S3_PREFIX``)."""

    bucket: str
    prefix: str = DEFAULT_S3_PREFIX
    key_template: str = DEFAULT_KEY_TEMPLATE
    sse: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None
    multipart_concurrency: int = 4
    single_put_max: int = SINGLE_PUT_MAX  # bytes; 0 sends every non-empty file through a multipart upload
    # The store's write path (``app.bucket.probe.decide``): sha256 and records as object tags, or only in the job
    # manifests; whether HeadObject keeps CompleteMultipartUpload's ETag (the check after a write compares it).
    digest_in_tags: bool = True
    multipart_etag_kept: bool = True

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("SinkSettings.bucket is empty")
        if self.sse not in SSE_MODES:
            raise ValueError(f"SinkSettings.sse must be one of {SSE_MODES}, not {self.sse!r}")
        if self.kms_key_id and self.sse != "aws:kms":
            raise ValueError("SinkSettings.kms_key_id needs sse='aws:kms'")
        if self.multipart_concurrency < 1:
            raise ValueError("SinkSettings.multipart_concurrency must be at least 1")
        if not 0 <= self.single_put_max <= SINGLE_PUT_LIMIT:
            raise ValueError(f"SinkSettings.single_put_max must be within 0..{SINGLE_PUT_LIMIT}")
        try:
            self.key_template.format(
                prefix="p/", resource_type="Messages", day="2024-01-02", job_sid="JS1", account_sid="AC1"
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"SinkSettings.key_template {self.key_template!r} is invalid: {exc!r}") from None

    @property
    def staging_prefix(self) -> str:
        """Where older versions staged big files (see STAGING_DIR): only the janitor still looks there."""
        return f"{self.prefix}{STAGING_DIR}"

    def day_key(self, resource_type: str, day: str | date, job_sid: str, account_sid: str = "") -> str:
        """The final key of a day file, from the key template."""
        day_text = day.isoformat() if isinstance(day, date) else str(day)
        return self.key_template.format(
            prefix=self.prefix, resource_type=resource_type, day=day_text, job_sid=job_sid, account_sid=account_sid
        )

    def manifest_key(self, resource_type: str, job_sid: str) -> str:
        """Where a job's manifest goes (``app.jobs.lifecycle.ManifestStore``)."""
        return f"{self.prefix}{resource_type}/_manifests/{job_sid}.json"


def key_pattern(
    settings: SinkSettings, resource_type: str | None, account_sid: str | None = None
) -> tuple[re.Pattern[str], str]:
    """The key template as a regex capturing ``day`` (and the literal prefix before its first variable part);
    ``resource_type`` (``account_sid``) None matches any resource type (account)."""
    fixed = {"prefix": settings.prefix} | ({"resource_type": resource_type} if resource_type else {})
    fixed |= {"account_sid": account_sid} if account_sid is not None else {}
    variable = {
        "day": r"(?P<day>\d{4}-\d{2}-\d{2})",
        "job_sid": r"J[A-Z][0-9a-fA-F]{32}",
        "resource_type": r"(?P<resource_type>[A-Za-z]+)",
        "account_sid": r"(?P<account_sid>AC[0-9a-fA-F]{32})",
    }
    regex, literal_prefix, seen_variable, seen = "", "", False, set()
    for text, name, _spec, _conv in string.Formatter().parse(settings.key_template):
        regex += re.escape(text)
        literal_prefix += "" if seen_variable else text
        if name in fixed:
            regex += re.escape(fixed[name])
            literal_prefix += "" if seen_variable else fixed[name]
        elif name in variable:
            regex += f"(?P={name})" if name in seen and name != "job_sid" else variable[name]
            seen.add(name)
            seen_variable = True
    return re.compile(regex), literal_prefix
