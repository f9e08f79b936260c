"""Multipart uploads in bounded memory: the part size for a file, how many parts may be held at once, S3's
composite checksum, and the pipeline that reads parts while earlier ones are being sent."""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from app.platform.s3_client import sha256_b64
from app.platform.units import MiB
from workers.sink.values import VerifiedStream

MAX_PARTS = 10_000
MIN_PART_SIZE = 8 * MiB
# Part buffers of a multipart upload (parts being sent plus the one being read) stay near this budget, so a
# worker stays well under 150 MiB RSS.
UPLOAD_BUFFER_BUDGET = 64 * MiB


def part_size_for(expected_size: int) -> int:
    """Smallest whole-MiB part size, at least 8 MiB, that fits the file in 10,000 parts."""
    needed = math.ceil(max(expected_size, 0) / MAX_PARTS / MiB) * MiB
    return max(MIN_PART_SIZE, needed)


def parts_in_memory(part_size: int, concurrency: int) -> int:
    """How many parts a multipart upload may hold at once: one being read plus up to ``concurrency`` being sent,
    within UPLOAD_BUFFER_BUDGET (but never fewer than 2: one read while one is sent, whatever the part size)."""
    return max(2, min(concurrency + 1, UPLOAD_BUFFER_BUDGET // part_size))


def composite_sha256(part_checksums: list[str]) -> str:
    """S3's checksum of a multipart object: SHA-256 of the parts' raw SHA-256 digests, then ``-<parts>``."""
    joined = b"".join(base64.b64decode(c) for c in part_checksums)
    return f"{sha256_b64(joined)}-{len(part_checksums)}"


class PartPipeline:
    """Reads parts on the calling thread and hands each to ``send`` on a small thread pool, holding at most
    ``slots`` parts in memory; the first failure of a send stops the reading. Used by ``workers.sink.writes``."""

    def __init__(self, send: Callable[[int, bytes], dict[str, Any]], slots: int) -> None:
        self._send = send
        self._slots = threading.BoundedSemaphore(slots)
        self._failed = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(1, slots - 1), thread_name_prefix="s3-part")
        self._futures: list[Future[dict[str, Any]]] = []

    def run(self, reader: VerifiedStream, part_size: int) -> list[dict[str, Any]]:
        """Every part of ``reader`` sent, in order: ``send``'s results. Raises the reader's or the first send's
        error only once no send is running any more (so an abort that follows leaves no part behind)."""
        finished = False
        try:
            for number in range(1, MAX_PARTS + 1):
                self._slots.acquire()
                if self._failed.is_set():
                    break
                data = reader.read(part_size)
                if not data and number > 1:
                    break
                self._futures.append(self._pool.submit(self._one, number, data))
                if len(data) < part_size:
                    break
            else:
                raise ValueError(f"more than {MAX_PARTS} parts of {part_size} bytes")
            finished = not self._failed.is_set()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=not finished)
        for future in self._futures:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                raise error
        return [future.result() for future in self._futures]

    def _one(self, number: int, data: bytes) -> dict[str, Any]:
        try:
            return self._send(number, data)
        except BaseException:
            self._failed.set()
            raise
        finally:
            del data
            self._slots.release()
