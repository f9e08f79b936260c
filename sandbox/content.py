"""Deterministic day files: gzip JSON-lines built from reusable gzip members.

Why members: a real day file can be several GiB. Multi-member gzip is valid gzip (RFC 1952 §2.2;
``gzip.decompress`` and a zlib ``wbits=31`` + ``unused_data`` loop read it), so a big file is a few
precomputed members (each exactly ``MEMBER_SIZE`` bytes) repeated in a cycle plus one tail member.
Serving and hashing then never hold more than a few members in memory.

Exact sizes: every member is built to an exact byte length. Records are added while they fit, then
the leftover bytes go into the gzip header's FCOMMENT field (a NUL-terminated string that every gzip
reader skips). So the file size equals the target size whenever the target is at least the size of a
one-record member (``min_day_file_size``); below that the file holds one record and is that long.
A target size <= 0 means the empty file: one gzip member with zero bytes of payload.

Records repeat every ``POOL_MEMBERS`` members in big files (the price of member reuse); ``records``
counts lines, duplicates included.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sandbox import DEFAULT_ACCOUNT_SID, RESOURCE_TYPES

MEMBER_SIZE = 256 * 1024
"""Exact byte length of each reusable member of a big file."""

POOL_MEMBERS = 4
"""Distinct reusable members per (resource type, day, seed, account)."""

_GZIP_OVERHEAD = 10 + 8  # fixed header + CRC32/ISIZE trailer
_FINISH_RESERVE = 8  # bytes kept for the final deflate block (usually 2)
_FLG_FCOMMENT = 0x10


@dataclass(frozen=True)
class DayFileInfo:
    """What a downloader should end up with: exact length, sha256 hex digest and line count."""

    size: int
    sha256: str
    records: int


@dataclass(frozen=True)
class _Member:
    data: bytes
    records: int


def _day_str(day: date | str) -> str:
    return day.isoformat() if isinstance(day, date) else date.fromisoformat(day).isoformat()


def _check_type(resource_type: str) -> None:
    if resource_type not in RESOURCE_TYPES:
        raise ValueError(f"unknown resource type {resource_type!r}; expected one of {RESOURCE_TYPES}")


def _hex(rng: random.Random, n: int = 32) -> str:
    return f"{rng.getrandbits(n * 4):0{n}x}"


def _phone(rng: random.Random) -> str:
    return f"+1{rng.randrange(200, 999)}{rng.randrange(200, 999)}{rng.randrange(0, 10000):04d}"


def _ts(base: datetime, seconds: float) -> str:
    return (base + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(rng: random.Random, acct: str, base: datetime) -> dict[str, object]:
    t = rng.randrange(86_400)
    status = rng.choice(("delivered", "delivered", "delivered", "sent", "undelivered", "failed", "received"))
    return {
        "sid": "SM" + _hex(rng),
        "account_sid": acct,
        "messaging_service_sid": "MG" + _hex(rng) if rng.random() < 0.5 else None,
        "from": _phone(rng),
        "to": _phone(rng),
        "body": rng.choice(("Your code is ", "Reminder: appointment at ", "Order shipped #", "Hi! ref "))
        + str(rng.randrange(10**6)),
        "status": status,
        "direction": "inbound" if status == "received" else "outbound-api",
        "num_segments": str(rng.randrange(1, 4)),
        "num_media": "0",
        "price": None if rng.random() < 0.2 else f"-0.00{rng.randrange(750, 830)}",
        "error_code": 30003 if status in ("undelivered", "failed") else None,
        "date_created": _ts(base, t),
        "date_sent": _ts(base, t + 1),
        "date_updated": _ts(base, t + 3),
    }


def _call(rng: random.Random, acct: str, base: datetime) -> dict[str, object]:
    t = rng.randrange(86_400)
    duration = rng.randrange(0, 900)
    return {
        "sid": "CA" + _hex(rng),
        "account_sid": acct,
        "parent_call_sid": None,
        "from": _phone(rng),
        "to": _phone(rng),
        "phone_number_sid": "PN" + _hex(rng),
        "status": rng.choice(("completed", "completed", "completed", "busy", "no-answer", "failed")),
        "direction": rng.choice(("inbound", "outbound-api", "outbound-dial")),
        "duration": str(duration),
        "start_time": _ts(base, t),
        "end_time": _ts(base, t + duration),
        "price": None if rng.random() < 0.2 else f"-0.0{rng.randrange(130, 990)}",
        "price_unit": "USD",
        "answered_by": None,
        "caller_name": None,
        "forwarded_from": None,
        "queue_time": "0",
        "trunk_sid": None,
        "group_sid": None,
        "api_version": "2010-04-01",
        "date_created": _ts(base, t),
        "date_updated": _ts(base, t + duration + 1),
    }


def _conference(rng: random.Random, acct: str, base: datetime) -> dict[str, object]:
    t = rng.randrange(86_400)
    return {
        "sid": "CF" + _hex(rng),
        "account_sid": acct,
        "friendly_name": f"room-{rng.randrange(10**5)}",
        "status": "completed",
        "region": "us1",
        "reason_conference_ended": rng.choice(("last-participant-left", "conference-ended-via-api")),
        "call_sid_ending_conference": "CA" + _hex(rng),
        "date_created": _ts(base, t),
        "date_updated": _ts(base, t + rng.randrange(60, 3600)),
    }


def _participant(rng: random.Random, acct: str, base: datetime) -> dict[str, object]:
    t = rng.randrange(86_400)
    return {
        "account_sid": acct,
        "call_sid": "CA" + _hex(rng),
        "conference_sid": "CF" + _hex(rng),
        "call_sid_to_coach": None,
        "coaching": False,
        "hold": False,
        "muted": rng.random() < 0.1,
        "start_conference_on_enter": True,
        "end_conference_on_exit": rng.random() < 0.3,
        "status": "completed",
        "date_created": _ts(base, t),
        "date_updated": _ts(base, t + rng.randrange(30, 3600)),
    }


_RECORDS: dict[str, Callable[[random.Random, str, datetime], dict[str, object]]] = {
    "Messages": _message,
    "Calls": _call,
    "Conferences": _conference,
    "Participants": _participant,
}


def record(resource_type: str, rng: random.Random, account_sid: str, base: datetime) -> dict[str, object]:
    """One record of ``resource_type`` as the sandbox's day files hold it (also what the benches generate)."""
    return _RECORDS[resource_type](rng, account_sid, base)


class _Lines:
    """Record lines of one member, generated on demand and remembered (a trial batch may be retried)."""

    def __init__(self, resource_type: str, day: str, seed: int, account_sid: str, member: int) -> None:
        self._rng = random.Random(f"{resource_type}|{day}|{seed}|{account_sid}|{member}")
        self._make = _RECORDS[resource_type]
        self._acct = account_sid
        self._base = datetime.fromisoformat(day)
        self._lines: list[bytes] = []

    def get(self, start: int, count: int) -> bytes:
        while len(self._lines) < start + count:
            rec = self._make(self._rng, self._acct, self._base)
            self._lines.append(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
        return b"".join(self._lines[start : start + count])


def _header(pad: int) -> bytes:
    """Gzip member header (mtime 0, OS unknown); ``pad`` > 0 adds an FCOMMENT of exactly that many bytes."""
    if pad <= 0:
        return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return b"\x1f\x8b\x08" + bytes([_FLG_FCOMMENT]) + b"\x00\x00\x00\x00\x00\xff" + b" " * (pad - 1) + b"\x00"


def _empty_member() -> bytes:
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    return _header(0) + co.flush() + struct.pack("<II", 0, 0)


def _build_member(lines: _Lines, size: int, min_records: int = 1) -> _Member:
    """A gzip member of exactly ``size`` bytes (or the smallest one holding ``min_records`` records)."""
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    pieces: list[bytes] = []
    used = _GZIP_OVERHEAD + _FINISH_RESERVE
    crc = 0
    isize = 0
    n = 0
    batch = 64
    while True:
        data = lines.get(n, batch)
        trial = co.copy()
        piece = trial.compress(data) + trial.flush(zlib.Z_SYNC_FLUSH)
        if used + len(piece) > size:
            if batch > 1:
                batch = max(1, batch // 4)
                continue
            if n >= min_records:
                break
        co = trial
        pieces.append(piece)
        used += len(piece)
        crc = zlib.crc32(data, crc)
        isize += len(data)
        n += batch
    body = b"".join(pieces) + co.flush(zlib.Z_FINISH)
    pad = max(0, size - (_GZIP_OVERHEAD + len(body)))
    return _Member(_header(pad) + body + struct.pack("<II", crc, isize & 0xFFFFFFFF), n)


@functools.lru_cache(maxsize=64)
def _pool(resource_type: str, day: str, seed: int, account_sid: str) -> tuple[_Member, ...]:
    return tuple(
        _build_member(_Lines(resource_type, day, seed, account_sid, i), MEMBER_SIZE) for i in range(POOL_MEMBERS)
    )


@functools.lru_cache(maxsize=256)
def _tail(resource_type: str, day: str, seed: int, account_sid: str, size: int) -> _Member:
    return _build_member(_Lines(resource_type, day, seed, account_sid, POOL_MEMBERS), size)


@functools.lru_cache(maxsize=256)
def min_day_file_size(
    resource_type: str, day: date | str, seed: int = 0, account_sid: str = DEFAULT_ACCOUNT_SID
) -> int:
    """Length of a one-record file: targets below it produce a file of this length."""
    _check_type(resource_type)
    d = _day_str(day)
    return len(_build_member(_Lines(resource_type, d, seed, account_sid, POOL_MEMBERS), 0).data)


def _layout(
    resource_type: str, day: date | str, target_size: int, seed: int, account_sid: str
) -> tuple[list[_Member], int]:
    """(distinct members in cycle order, how many full cycle members precede the tail)."""
    _check_type(resource_type)
    d = _day_str(day)
    if target_size <= 0:
        return [_Member(_empty_member(), 0)], 0
    if target_size <= 2 * MEMBER_SIZE:
        return [_tail(resource_type, d, seed, account_sid, target_size)], 0
    full = target_size // MEMBER_SIZE - 1  # leaves a tail in [MEMBER_SIZE, 2 * MEMBER_SIZE)
    pool = list(_pool(resource_type, d, seed, account_sid))
    tail = _tail(resource_type, d, seed, account_sid, target_size - full * MEMBER_SIZE)
    return [*pool, tail], full


def day_file_size(
    resource_type: str,
    day: date | str,
    target_size: int,
    seed: int = 0,
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> int:
    """Exact file length without building big files (cheap: ListDay needs it for every day)."""
    if target_size <= 0:
        return len(_empty_member())
    return max(target_size, min_day_file_size(resource_type, day, seed, account_sid))


def iter_day_file(
    resource_type: str,
    day: date | str,
    target_size: int,
    seed: int = 0,
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> Iterator[bytes]:
    """The file's bytes, one gzip member per chunk (each at most 2 * MEMBER_SIZE bytes)."""
    members, full = _layout(resource_type, day, target_size, seed, account_sid)
    for member in _members_in_order(members, full):
        yield member.data


@functools.lru_cache(maxsize=1024)
def describe_day_file(
    resource_type: str,
    day: date | str,
    target_size: int,
    seed: int = 0,
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> DayFileInfo:
    """Size, sha256 and record count of the file, hashed member by member (cached per arguments)."""
    members, full = _layout(resource_type, day, target_size, seed, account_sid)
    h = hashlib.sha256()
    size = 0
    records = 0
    for member in _members_in_order(members, full):
        h.update(member.data)
        size += len(member.data)
        records += member.records
    return DayFileInfo(size=size, sha256=h.hexdigest(), records=records)


def _members_in_order(members: list[_Member], full: int) -> Iterator[_Member]:
    if full == 0:
        yield members[-1]
        return
    cycle = members[:-1]
    for i in range(full):
        yield cycle[i % len(cycle)]
    yield members[-1]
