"""The rules a day-file rewrite applies, validated up front, and the salted hashes: pure functions, no I/O.

Two kinds of rule:

- an **erasure match** (``ErasureMatch``): drop every record whose top-level ``field`` equals ``value``. The
  comparison is exact, on the value as Twilio writes it: a JSON string (a number, ``null`` or an object never
  matches). Phone numbers are **not normalised**: Twilio writes ``to``/``from`` of phone channels in E.164
  (``+14155550100``), other channels with a prefix (``whatsapp:+14155550100``, ``client:alice``, ``sip:...``),
  short codes as bare digits. Guessing equivalences (is ``whatsapp:+1...`` the same person as ``+1...``?) is the
  requester's decision, not the relay's, and a guessed equivalence can erase someone else's records. So a request
  lists each address form it means, and a ``to``/``from`` value that can never match what Twilio writes (a
  formatted number: spaces, dashes, dots, parentheses; or 10+ digits without the ``+``) is rejected as an error,
  not accepted as an erasure that silently erases nothing.
- a **field transform** (``FieldTransform``) per feed, e.g. ``{"body": "drop", "to": "sha256", "from": "sha256"}``:
  ``drop`` sets the field to ``null``; ``sha256`` replaces it by ``PSEUDONYM_PREFIX`` + the salted HMAC-SHA256 hex
  digest (``pseudonym``; the prefix tells a reader, and a second rewrite, that it is one already). ``drop``
  keeps the key, with ``null``, rather than removing it: the record keeps Twilio's shape (every key, in order,
  ``null`` where Twilio has no value too), so a consumer's ``record["body"]`` or an inferred table schema keeps
  working across redacted and unredacted days, and the value is gone either way. A field a record does not have
  is not added.

Field names are top-level keys only, checked against ``FIELD_NAME`` (snake_case identifiers, as Twilio's are):
never a JSON path, so a rule cannot reach into nested values or be built from an injected expression.

Hashes are HMAC-SHA256 keyed with a secret salt (bytes, from a mounted Secret): phone numbers are a small space,
so an unkeyed hash would be reversed by enumerating it. The pseudonym and the audit hash use distinct domain tags,
so an audit record never equals the pseudonym of the same value in a redacted file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
"""A top-level record field: a snake_case identifier of at most 64 characters (``to``, ``account_sid``)."""

MAX_VALUE_CHARS = 1024
"""Longest erasure value accepted (Twilio's longest identifiers are far shorter; a body is at most 1600)."""

MIN_SALT_BYTES = 16
"""Shortest accepted salt: 128 bits, so the keyed hashes cannot be reversed by guessing the key."""

PSEUDONYM_PREFIX = "hmac-sha256:"
"""Marks a ``sha256``-transformed value: a reader can tell a pseudonym from a value, and a second rewrite of the
same day leaves it as is (transforms are idempotent) instead of hashing the hash."""

PHONE_FIELDS = frozenset({"to", "from"})
PSEUDONYM_CACHE = 16_384  # distinct values remembered per rule set: a day's from numbers repeat a lot

_PHONE_CHARS = re.compile(r"[+0-9() .\-]+\Z")
_PSEUDONYM_TAG = b"relay-erasure-pseudonym-v1\x00"
_AUDIT_TAG = b"relay-erasure-audit-v1\x00"
_SHA256_BLOCK = 64


class RuleError(ValueError):
    """A rule is not valid; the message names the field (and never contains a value or the salt)."""


class InvalidFieldError(RuleError):
    """The field is not a top-level record field name (``FIELD_NAME``)."""


class InvalidValueError(RuleError):
    """The erasure value is empty, too long, not a string, or can never match what Twilio writes."""


class UnknownActionError(RuleError):
    """A field transform names an action other than ``drop`` and ``sha256``."""


class InvalidSaltError(RuleError):
    """The salt is missing, not bytes, or shorter than ``MIN_SALT_BYTES``."""


class Action(StrEnum):
    DROP = "drop"
    SHA256 = "sha256"


def check_field(name: object) -> str:
    """``name`` if it is a valid top-level field name, else ``InvalidFieldError``."""
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        shown = repr(name)[:80]
        raise InvalidFieldError(f"field {shown} is not a top-level record field name (snake_case, <= 64 characters)")
    return name


def check_salt(salt: object) -> bytes:
    if not isinstance(salt, bytes | bytearray):
        raise InvalidSaltError(f"salt must be bytes, not {type(salt).__name__}")
    if len(salt) < MIN_SALT_BYTES:
        raise InvalidSaltError(f"salt must be at least {MIN_SALT_BYTES} bytes, got {len(salt)}")
    return bytes(salt)


def _canonical(value: object) -> str:
    """The text that is hashed: a string as is, anything else as compact JSON with sorted keys."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def pseudonym(value: object, salt: bytes) -> str:
    """``PSEUDONYM_PREFIX`` + HMAC-SHA256 hex of ``value`` keyed by ``salt``: equal values, equal pseudonyms (joins
    across records and days still work), unknown without the salt."""
    digest = hmac.digest(check_salt(salt), _PSEUDONYM_TAG + _canonical(value).encode("utf-8"), "sha256")
    return PSEUDONYM_PREFIX + digest.hex()


def audit_hash(value: str, salt: bytes) -> str:
    """What an audit record keeps instead of an erased value: a keyed HMAC-SHA256 hex digest, so a later request
    for the same value can be recognised without the relay keeping the value itself."""
    if not isinstance(value, str):
        raise InvalidValueError(f"audit value must be a string, not {type(value).__name__}")
    return hmac.digest(check_salt(salt), _AUDIT_TAG + value.encode("utf-8"), "sha256").hex()


@dataclass(frozen=True)
class ErasureMatch:
    """Drop every record whose top-level ``field`` is the string ``value`` (exact, case-sensitive)."""

    field: str
    value: str = dataclasses.field(repr=False)  # personal data: never in logs or reprs

    def __post_init__(self) -> None:
        check_field(self.field)
        value = self.value
        if not isinstance(value, str):
            raise InvalidValueError(f"erasure value for field {self.field!r} must be a string (Twilio writes strings)")
        if not value or len(value) > MAX_VALUE_CHARS:
            raise InvalidValueError(f"erasure value for field {self.field!r} must be 1..{MAX_VALUE_CHARS} characters")
        if self.field in PHONE_FIELDS and _never_written_by_twilio(value):
            raise InvalidValueError(
                f"erasure value for field {self.field!r} is a formatted phone number, which never matches: Twilio "
                "writes E.164 (+14155550100, no spaces, dashes, dots or parentheses); give it in that form"
            )

    def matches(self, record: Mapping[str, object]) -> bool:
        found = record.get(self.field)
        return type(found) is str and found == self.value

    @property
    def needle(self) -> bytes:
        """Bytes every line holding this value unescaped contains (the rewriter's pre-filter)."""
        return self.value.encode("utf-8")


def _never_written_by_twilio(value: str) -> bool:
    if not _PHONE_CHARS.match(value) or not any(c.isdigit() for c in value):
        return False  # not a phone number (whatsapp:+1..., client:alice, an alphanumeric sender ID)
    if value.startswith("+") and value[1:].isdigit():
        return False  # E.164
    if value.isdigit():
        return len(value) >= 10  # a short code is 3-8 digits; a national number without its + never matches
    return True  # formatting characters: spaces, dashes, dots, parentheses


@dataclass(frozen=True)
class FieldTransform:
    field: str
    action: Action


def parse_transforms(spec: Mapping[str, str]) -> tuple[FieldTransform, ...]:
    """``{"body": "drop", "to": "sha256"}`` -> transforms; ``RuleError`` naming the field on anything else."""
    if not isinstance(spec, Mapping):
        raise RuleError(f"field transforms must be a mapping of field to action, not {type(spec).__name__}")
    out = []
    for name, action in spec.items():
        check_field(name)
        try:
            out.append(FieldTransform(name, Action(action)))
        except ValueError:
            allowed = ", ".join(a.value for a in Action)
            shown = str(action)[:40]
            raise UnknownActionError(f"field {name!r}: unknown action {shown!r} (allowed: {allowed})") from None
    return tuple(out)


def parse_matches(items: Iterable[Mapping[str, object]]) -> tuple[ErasureMatch, ...]:
    """``[{"field": "to", "value": "+14155550100"}, ...]`` -> matches (each validated)."""
    out = []
    for item in items:
        if not isinstance(item, Mapping) or set(item) != {"field", "value"}:
            raise RuleError("an erasure match is an object with exactly the keys 'field' and 'value'")
        out.append(ErasureMatch(item["field"], item["value"]))  # type: ignore[arg-type]  # validated in __post_init__
    return tuple(out)


@dataclass(frozen=True)
class Rules:
    """What one rewrite applies: drop records matching any of ``matches``, then ``transforms`` on the rest.

    ``salt`` is required when a transform is ``sha256``. Build from configuration with ``Rules.build``."""

    matches: tuple[ErasureMatch, ...] = ()
    transforms: tuple[FieldTransform, ...] = ()
    salt: bytes | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not all(isinstance(m, ErasureMatch) for m in self.matches):
            raise RuleError("matches must be ErasureMatch instances")
        seen: set[str] = set()
        for t in self.transforms:
            if t.field in seen:
                raise RuleError(f"field {t.field!r} has more than one transform")
            seen.add(t.field)
        drops = tuple(t.field for t in self.transforms if t.action is Action.DROP)
        hashed = tuple(t.field for t in self.transforms if t.action is Action.SHA256)
        object.__setattr__(self, "_drops", drops)
        object.__setattr__(self, "_hashed", hashed)
        if hashed or self.salt is not None:
            object.__setattr__(self, "_keyed", KeyedHash(check_salt(self.salt), _PSEUDONYM_TAG))
            object.__setattr__(self, "_cache", {})

    @classmethod
    def build(
        cls,
        matches: Iterable[Mapping[str, object]] = (),
        transforms: Mapping[str, str] | None = None,
        salt: bytes | None = None,
    ) -> Rules:
        return cls(parse_matches(matches), parse_transforms(transforms or {}), salt)

    def matching(self, record: Mapping[str, object]) -> list[int]:
        """Indexes (into ``matches``) of the matches ``record`` satisfies: non-empty means drop it."""
        return [i for i, m in enumerate(self.matches) if m.matches(record)]

    def transform(self, record: dict[str, object]) -> int:
        """Apply the transforms to ``record`` in place; return how many values changed (0: leave the line as is).

        A missing or ``null`` field is left alone (nothing to hide; no key is added). The hot loop of a redaction
        rewrite: one pass per action over precomputed field names."""
        changed = 0
        for name in self._drops:  # type: ignore[attr-defined]
            if record.get(name) is not None:
                record[name] = None
                changed += 1
        for name in self._hashed:  # type: ignore[attr-defined]
            value = record.get(name)
            if value is None:
                continue
            if type(value) is not str:
                value = _canonical(value)
            elif value.startswith(PSEUDONYM_PREFIX):
                continue  # already a pseudonym: a second rewrite of the same day must not hash the hash
            record[name] = self._pseudonym(value)
            changed += 1
        return changed

    def _pseudonym(self, text: str) -> str:
        """``pseudonym(text, salt)``, remembered for up to ``PSEUDONYM_CACHE`` values (then forgotten at once:
        cheaper per lookup than an LRU, and a day's repeated numbers are back in the cache within a few records)."""
        cache: dict[str, str] = self._cache  # type: ignore[attr-defined]
        found = cache.get(text)
        if found is None:
            if len(cache) >= PSEUDONYM_CACHE:
                cache.clear()
            found = cache[text] = PSEUDONYM_PREFIX + self._keyed.hexdigest(text.encode("utf-8"))  # type: ignore[attr-defined]
        return found


class KeyedHash:
    """HMAC-SHA256 (RFC 2104) of ``tag + data`` under ``key``, the key's padded blocks hashed once.

    Equal to ``hmac.digest(key, tag + data, "sha256")`` (the unit tests check it) at ~0.7 µs per value instead of
    ~1.8: a redaction hashes two values per record, millions of records per day."""

    def __init__(self, key: bytes, tag: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._inner.update(tag)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, data: bytes) -> str:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()
