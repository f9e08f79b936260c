"""Erasure rules: what is accepted, what is refused (with the field named), matching, transforms and hashes."""

from __future__ import annotations

import hmac
import re

import pytest

from app.erasure.rules import (
    MAX_VALUE_CHARS,
    MIN_SALT_BYTES,
    PSEUDONYM_PREFIX,
    Action,
    ErasureMatch,
    FieldTransform,
    InvalidFieldError,
    InvalidSaltError,
    InvalidValueError,
    KeyedHash,
    RuleError,
    Rules,
    UnknownActionError,
    audit_hash,
    parse_matches,
    parse_transforms,
    pseudonym,
)

SALT = b"s" * 32
OTHER_SALT = b"t" * 32
HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def message(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "sid": "SM" + "a" * 32,
        "account_sid": "AC" + "b" * 32,
        "from": "+14155550100",
        "to": "+12125550199",
        "body": "Your code is 123456",
        "status": "delivered",
        "num_segments": "1",
        "error_code": None,
        "date_created": "2026-01-01T00:00:00Z",
    }
    record.update(fields)
    return record


@pytest.mark.parametrize("name", ["to", "from", "account_sid", "messaging_service_sid", "x", "a" * 64])
def test_top_level_field_names_are_accepted(name: str) -> None:
    assert ErasureMatch(name, "v").field == name


@pytest.mark.parametrize(
    "name", ["", "To", "body.text", "$.to", "to[0]", "_sid", "1st", "a" * 65, "to ", "fröm", "a-b", 5, None]
)
def test_anything_but_a_top_level_identifier_is_refused(name: object) -> None:
    with pytest.raises(InvalidFieldError, match="not a top-level record field name"):
        ErasureMatch(name, "v")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "x" * (MAX_VALUE_CHARS + 1)])
def test_erasure_values_are_bounded(value: str) -> None:
    with pytest.raises(InvalidValueError, match="'body'"):
        ErasureMatch("body", value)


def test_erasure_values_are_strings_as_twilio_writes_them() -> None:
    with pytest.raises(InvalidValueError, match=r"'num_segments'.*string"):
        ErasureMatch("num_segments", 1)  # type: ignore[arg-type]
    assert ErasureMatch("body", "x" * MAX_VALUE_CHARS).value == "x" * MAX_VALUE_CHARS


@pytest.mark.parametrize(
    "value", ["+14155550100", "whatsapp:+14155550100", "client:alice", "12345", "MyBrand", "sip:a@b.example"]
)
def test_phone_fields_take_the_forms_twilio_writes(value: str) -> None:
    assert ErasureMatch("to", value).value == value


@pytest.mark.parametrize(
    "value", ["(415) 555-0100", "+1 415 555 0100", "+1-415-555-0100", "415.555.0100", "4155550100"]
)
def test_a_formatted_phone_number_is_refused_not_silently_never_matched(value: str) -> None:
    with pytest.raises(InvalidValueError, match=r"'from'.*E\.164"):
        ErasureMatch("from", value)


def test_formatting_is_only_policed_on_phone_fields() -> None:
    assert ErasureMatch("body", "(415) 555-0100").value == "(415) 555-0100"


def test_a_match_is_exact_on_the_string_value() -> None:
    match = ErasureMatch("to", "+12125550199")
    assert match.matches(message())
    assert not match.matches(message(to="+121255501990"))
    assert not match.matches(message(to="+1212555019"))
    assert not match.matches(message(to=None))
    assert not match.matches({"sid": "SM1"})
    assert not match.matches(message(body="+12125550199", to="+10000000000"))  # another field holds it


def test_a_non_string_value_never_matches() -> None:
    assert not ErasureMatch("error_code", "30003").matches(message(error_code=30003))
    assert ErasureMatch("error_code", "30003").matches(message(error_code="30003"))


def test_the_value_is_never_in_a_repr() -> None:
    assert "+1415" not in repr(ErasureMatch("to", "+14155550100"))
    assert repr(SALT) not in repr(Rules(salt=SALT))


def test_parse_transforms_takes_the_feed_configuration() -> None:
    assert parse_transforms({"body": "drop", "to": "sha256"}) == (
        FieldTransform("body", Action.DROP),
        FieldTransform("to", Action.SHA256),
    )


def test_an_unknown_action_is_refused_naming_the_field() -> None:
    with pytest.raises(UnknownActionError, match=r"field 'body': unknown action 'delete'.*drop, sha256"):
        parse_transforms({"body": "delete"})


def test_an_unknown_field_is_refused_in_transforms() -> None:
    with pytest.raises(InvalidFieldError, match=r"'body\.text'"):
        parse_transforms({"body.text": "drop"})
    with pytest.raises(RuleError, match="mapping"):
        parse_transforms(["body"])  # type: ignore[arg-type]


def test_parse_matches_takes_objects_with_field_and_value() -> None:
    assert parse_matches([{"field": "to", "value": "+14155550100"}]) == (ErasureMatch("to", "+14155550100"),)
    for bad in ({"field": "to"}, {"field": "to", "value": "x", "extra": 1}, "to"):
        with pytest.raises(RuleError, match="exactly the keys"):
            parse_matches([bad])  # type: ignore[list-item]


def test_sha256_needs_a_salt_of_bytes_long_enough() -> None:
    with pytest.raises(InvalidSaltError, match="bytes"):
        Rules.build(transforms={"to": "sha256"})
    with pytest.raises(InvalidSaltError, match=f"at least {MIN_SALT_BYTES} bytes"):
        Rules.build(transforms={"to": "sha256"}, salt=b"short")
    with pytest.raises(InvalidSaltError, match="bytes, not str"):
        Rules.build(transforms={"to": "sha256"}, salt="s" * 32)  # type: ignore[arg-type]
    assert Rules.build(transforms={"body": "drop"}).transforms == (FieldTransform("body", Action.DROP),)


def test_one_transform_per_field() -> None:
    with pytest.raises(RuleError, match="'to' has more than one transform"):
        Rules(transforms=(FieldTransform("to", Action.DROP), FieldTransform("to", Action.SHA256)), salt=SALT)


def test_drop_sets_null_and_keeps_the_records_shape() -> None:
    rules = Rules.build(transforms={"body": "drop"})
    record = message()
    assert rules.transform(record) == 1
    assert record["body"] is None
    assert list(record) == list(message())
    assert {k: v for k, v in record.items() if k != "body"} == {k: v for k, v in message().items() if k != "body"}


def test_missing_and_null_fields_are_left_alone() -> None:
    rules = Rules.build(transforms={"body": "drop", "to": "sha256", "price": "sha256"}, salt=SALT)
    record = message(body=None, to=None)
    assert rules.transform(record) == 0
    assert record == message(body=None, to=None)
    assert "price" not in record


def test_sha256_replaces_the_value_by_a_keyed_pseudonym() -> None:
    rules = Rules.build(transforms={"to": "sha256", "from": "sha256"}, salt=SALT)
    record = message(**{"from": "+14155550100", "to": "+14155550100"})
    assert rules.transform(record) == 2
    assert record["to"] == record["from"] == pseudonym("+14155550100", SALT)  # the same number, the same pseudonym
    assert isinstance(record["to"], str) and record["to"].startswith(PSEUDONYM_PREFIX)
    assert HEX64.match(record["to"].removeprefix(PSEUDONYM_PREFIX))
    assert "4155550100" not in str(record["to"])


@pytest.mark.parametrize("salt", [b"k" * 16, b"k" * 63, b"k" * 64, b"k" * 65, bytes(range(200))])
def test_the_fast_keyed_hash_is_hmac_sha256(salt: bytes) -> None:
    for data in (b"", b"+14155550100", "café".encode(), b"x" * 200):
        assert KeyedHash(salt, b"tag\x00").hexdigest(data) == hmac.new(salt, b"tag\x00" + data, "sha256").hexdigest()
    rules = Rules.build(transforms={"to": "sha256"}, salt=salt)
    record = message()
    rules.transform(record)
    assert record["to"] == pseudonym(message()["to"], salt)


def test_the_salt_changes_every_pseudonym() -> None:
    assert pseudonym("+14155550100", SALT) != pseudonym("+14155550100", OTHER_SALT)
    assert pseudonym("+14155550100", SALT) != pseudonym("+14155550101", SALT)


def test_transforms_are_idempotent() -> None:
    rules = Rules.build(transforms={"body": "drop", "to": "sha256"}, salt=SALT)
    record = message()
    rules.transform(record)
    once = dict(record)
    assert rules.transform(record) == 0
    assert record == once


def test_drop_removes_an_earlier_pseudonym_too() -> None:
    record = message(to=pseudonym("+12125550199", SALT))
    assert Rules.build(transforms={"to": "drop"}).transform(record) == 1
    assert record["to"] is None


def test_a_non_string_value_is_hashed_as_its_json() -> None:
    rules = Rules.build(transforms={"error_code": "sha256"}, salt=SALT)
    record = message(error_code=30003)
    assert rules.transform(record) == 1
    assert record["error_code"] == pseudonym("30003", SALT)


def test_matching_lists_every_satisfied_match() -> None:
    rules = Rules.build([{"field": "to", "value": "+12125550199"}, {"field": "from", "value": "+14155550100"}])
    assert rules.matching(message()) == [0, 1]
    assert rules.matching(message(to="+10000000000")) == [1]
    assert rules.matching(message(to="+10000000000", **{"from": "+10000000001"})) == []


def test_audit_hash_is_keyed_hex_and_never_the_value() -> None:
    for value in ("+14155550100", "a", "0" * 64, HEX64.pattern):
        digest = audit_hash(value, SALT)
        assert HEX64.match(digest)
        assert digest != value
        assert digest == audit_hash(value, SALT)
        assert digest != audit_hash(value, OTHER_SALT)
        assert digest != pseudonym(value, SALT).removeprefix(PSEUDONYM_PREFIX)  # an audit record links to no pseudonym


def test_audit_hash_refuses_a_bad_salt_or_value() -> None:
    with pytest.raises(InvalidSaltError):
        audit_hash("+14155550100", b"")
    with pytest.raises(InvalidValueError):
        audit_hash(14155550100, SALT)  # type: ignore[arg-type]
