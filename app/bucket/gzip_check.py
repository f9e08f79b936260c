"""The gzip check of a day file: every member's framing, CRC-32 and length trailers, and its record count, in
bounded memory (at most INFLATE_CHUNK inflated bytes at a time, whatever the compression ratio).

In the core because two places verify day files: the copy (``workers.copy.VerifyingReader``, as bytes pass from
Twilio to S3) and ``relay verify`` (``app.bucket.verify``, re-reading what the bucket holds), and the core never imports
the workers.
"""

from __future__ import annotations

import importlib
import zlib
from types import ModuleType
from typing import Any

from app.platform.units import MiB

INFLATE_CHUNK = MiB  # max decompressed bytes per zlib call: bounds memory for highly compressible data


def _inflate_backend() -> ModuleType:
    """ISA-L's zlib-compatible inflater if the optional ``isal`` package is installed, else zlib.

    Inflating is most of the reader's CPU time; ISA-L does it about 2x faster (measured here: the
    whole reader goes from ~70 to ~115 MiB/s of gzip JSON), with the same gzip framing, CRC-32 and
    ISIZE checks and the same decompressobj interface. Both backends run the same unit tests.
    """
    try:
        return importlib.import_module("isal.isal_zlib")
    except ImportError:
        return zlib


INFLATE: ModuleType = _inflate_backend()  # tests swap it to check both backends


class GzipCorrupt(ValueError):
    """The bytes are not an intact gzip stream (the default error of ``GzipCheck``)."""


class GzipCheck:
    """Inflate a (multi-member) gzip stream in bounded steps: CRC/length trailers and record count.

    ``error``: the exception class raised for a corrupt or truncated stream (the copy raises its own
    ``CopyIntegrityError``, which RQ retries)."""

    def __init__(self, error: type[Exception] = GzipCorrupt) -> None:
        self._error = error
        self._backend = INFLATE
        self._errors: tuple[type[Exception], ...] = (zlib.error, self._backend.error)
        self._inflater: Any = self._backend.decompressobj(wbits=31)
        self.members = 1
        self._member_out = 0
        self._newlines = 0
        self._out = 0
        self._last = 0

    def feed(self, data: bytes) -> None:
        inflater = self._inflater
        if inflater.eof:
            inflater = self._next_member()
        while True:
            try:
                out = inflater.decompress(data, INFLATE_CHUNK)
            except self._errors as exc:
                raise self._corrupt(exc) from None
            self._count(out)
            if inflater.eof:
                if not inflater.unused_data:
                    return  # member ended with this data; the next feed starts a new one
                data = inflater.unused_data
                inflater = self._next_member()
                continue
            data = inflater.unconsumed_tail
            if not data and len(out) < INFLATE_CHUNK:
                return  # all input consumed and no output held back by the size cap

    def finish(self, compressed_size: int) -> int:
        """Raise unless the stream ended exactly at the end of a gzip member; return the record count."""
        if compressed_size == 0:
            return 0  # an empty body is only accepted when Twilio announced size 0 (checked by the caller)
        if not self._inflater.eof:
            what = "truncated or has trailing garbage" if self.members > 1 else "truncated"
            raise self._error(f"gzip stream {what}: ends inside member {self.members}")
        return self._newlines + (1 if self._out and self._last != 0x0A else 0)

    def _next_member(self) -> Any:
        self._inflater = self._backend.decompressobj(wbits=31)
        self.members += 1
        self._member_out = 0
        return self._inflater

    def _count(self, out: bytes) -> None:
        if out:
            self._newlines += out.count(b"\n")
            self._out += len(out)
            self._member_out += len(out)
            self._last = out[-1]

    def _corrupt(self, exc: Exception) -> Exception:
        if self.members > 1 and self._member_out == 0:
            return self._error(f"trailing garbage after gzip member {self.members - 1}: {exc}")
        return self._error(f"corrupt gzip data in member {self.members}: {exc}")
