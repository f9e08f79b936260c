"""What the sink hands out and takes in: what S3 holds at a key, a stored day, a verified stream and its digest,
an upload's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    """What HeadObject tells about an object (metadata keys lower-case, as S3 returns them)."""

    size: int
    metadata: dict[str, str]
    etag: str
    # S3's own full-object SHA-256 (hex), when it has one (a single PutObject with ChecksumSHA256); None for a
    # multipart object (its checksum is one of part checksums) or when S3 keeps none
    s3_sha256: str | None = None


@dataclass(frozen=True)
class StoredDay:
    """A day file already at its final key: what the registry records about it."""

    key: str
    size: int
    sha256: str | None
    records: int | None  # None when the object does not say
    etag: str | None = field(default=None, compare=False)  # HeadObject's (not part of which file it is)


@dataclass(frozen=True)
class StreamDigest:
    """What a verified stream proved about its bytes."""

    size: int
    sha256: str
    records: int


@dataclass(frozen=True)
class UploadResult:
    key: str
    size: int
    sha256: str
    records: int
    etag: str


class VerifiedStream(Protocol):
    """A non-seekable byte stream that verifies itself; ``read`` raises instead of returning bad data, and returns
    fewer bytes than asked only at its verified end."""

    def read(self, size: int | None = -1, /) -> bytes: ...

    def digest(self) -> StreamDigest:
        """The verified digest; raises if the stream was not read to a verified end."""
        ...
