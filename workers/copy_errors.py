"""Every error a day copy raises on purpose, in one hierarchy: retry it, or give up on the day.

``RetryableCopyError``: try again later (for a download link: with a fresh one from FetchDay); RQ's Retry policy
spaces the attempts. ``PermanentCopyError``: retrying will not help without a change (configuration, permissions,
a file Twilio deleted); the failure callback stops retrying at once and the day is recorded as failed. One
``except RetryableCopyError`` covers the download, the verification, S3 and the day-level conditions alike.
"""

from __future__ import annotations


class CopyError(Exception):
    """Base of every error the day copy raises on purpose."""


class RetryableCopyError(CopyError):
    """Try again later (for a download link: with a fresh one)."""


class PermanentCopyError(CopyError):
    """Retrying will not help without a change (configuration, permissions, a gone file)."""


# -- the day ---------------------------------------------------------------------------------------------------


class CopyBusy(RetryableCopyError):
    """Another worker is copying the same S3 object right now; RQ retries this task later."""


class DayNotReady(RetryableCopyError):
    """Twilio says the day is done but has no file for it yet; retried."""


# -- the download link (workers.copy) ------------------------------------------------------------------------


class CopyIntegrityError(RetryableCopyError):
    """The bytes are not the intact day file (size, gzip framing, CRC). Retried with a fresh link: a
    cut or mangled transfer heals that way; a file that is really corrupt at Twilio fails every try."""


class LinkExpiredError(RetryableCopyError):
    """403 (or an expired-token 400): the link is spent or expired. Fetch a fresh one and retry."""


class LinkNotFoundError(PermanentCopyError):
    """404/410: the file is gone (Twilio deletes day files 7 days after creation)."""


class LinkRejectedError(PermanentCopyError):
    """Another 4xx, or a link the relay refuses to follow: retrying the same way will not help."""


class TransientDownloadError(RetryableCopyError):
    """5xx, 429, timeouts, refused or cut connections, redirect trouble: try again later."""


# -- S3 (workers.sink) ---------------------------------------------------------------------------------------


class S3Error(CopyError):
    """An S3 call failed; says which call, bucket and key."""

    def __init__(self, message: str, *, operation: str, bucket: str, key: str | None, code: str | None) -> None:
        super().__init__(message)
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.code = code


class TransientS3Error(S3Error, RetryableCopyError):
    """Throttling, a 5xx, a dropped connection: S3 may well work a little later."""


class PermanentS3Error(S3Error, PermanentCopyError):
    """Access denied, no such bucket, invalid arguments: needs a human."""
