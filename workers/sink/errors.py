"""S3 failures as the copy path's errors: every botocore exception becomes ``TransientS3Error`` (retry later) or
``PermanentS3Error`` (give up), with the operation, bucket and key (``workers.copy_errors``, the one hierarchy of
copy errors)."""

from __future__ import annotations

from botocore import exceptions as boto_exc
from botocore.exceptions import ClientError

from app.jobs.lifecycle import ManifestRefused
from workers.copy_errors import PermanentS3Error, S3Error, TransientS3Error


class ManifestWriteRefused(PermanentS3Error, ManifestRefused):
    """S3 refused the manifest for good (missing bucket, access denied): the job is finished as failed."""


_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "OperationAborted",
        "NoSuchUpload",  # the upload was aborted under us (janitor): start over
        "BadDigest",
        "InvalidDigest",
        "XAmzContentSHA256Mismatch",
        "IncompleteBody",
        "KMS.ThrottlingException",
        "KMS.KMSInternalException",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# botocore errors worth retrying: the network, or credentials that a metadata service will serve again.
_TRANSIENT_BOTOCORE = (
    boto_exc.HTTPClientError,
    boto_exc.ConnectionError,
    boto_exc.IncompleteReadError,
    boto_exc.CredentialRetrievalError,
    boto_exc.MetadataRetrievalError,
)


def classify_s3_error(exc: Exception, operation: str, bucket: str, key: str | None = None) -> S3Error:
    """Turn a botocore exception into TransientS3Error or PermanentS3Error with context."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"S3 {operation} on {where} failed: {code} (HTTP {status}) {error.get('Message', '')}".rstrip()
        transient = code in _TRANSIENT_CODES or status >= 500 or status == 429
        cls: type[S3Error] = TransientS3Error if transient else PermanentS3Error
        return cls(message, operation=operation, bucket=bucket, key=key, code=code)
    name = type(exc).__name__
    message = f"S3 {operation} on {where} failed: {name}: {exc}"
    cls = TransientS3Error if isinstance(exc, _TRANSIENT_BOTOCORE) else PermanentS3Error
    return cls(message, operation=operation, bucket=bucket, key=key, code=name)


def is_not_found(exc: ClientError) -> bool:
    """Whether S3 answered that the key (or bucket) does not exist."""
    return str(exc.response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES


def is_no_such_upload(exc: ClientError) -> bool:
    """NoSuchUpload: the upload was completed or aborted meanwhile (or, from rclone, there is none at all)."""
    return exc.response.get("Error", {}).get("Code") == "NoSuchUpload"
