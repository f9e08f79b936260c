"""Which names stand for an account (app/platform/labels.py, issue 20 item 3): a SID always resolves to itself; a
friendly name that looks like a SID (whatever case, spacing or invisible characters), is not plain ASCII, or is
shared with another account is nobody's label; a TWILIO_ACCOUNTS_FILE label keeps its own. Discovery is a plain
function here; tests/e2e/test_accounts.py runs the same renames against the sandbox and the real processes."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from app.platform.config import ConfigError, load_settings
from app.platform.errors import RequestError
from app.platform.labels import display_text, label_key, looks_like_sid, shown_name
from app.twilio.accounts import AccountDirectory

PARENT = "AC" + "a" * 32
VICTIM, ATTACKER, OTHER = "AC" + "b" * 32, "AC" + "c" * 32, "AC" + "d" * 32
FILED = "AC" + "e" * 32
PER_ACCOUNT = "{prefix}{resource_type}/account={account_sid}/day={day}/{resource_type}-{day}.json.gz"
BASE = {
    "TWILIO_ACCOUNT_SID": PARENT,
    "TWILIO_AUTH_TOKEN": "parent-auth-token-0123456789abcdef",
    "S3_BUCKET": "b",
    "S3_KEY_TEMPLATE": PER_ACCOUNT,
    "TWILIO_DISCOVER_SUBACCOUNTS": "true",
}
FULLWIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "0123456789abcdefAC"})

SID_DISGUISES = [
    VICTIM,
    VICTIM.upper(),
    VICTIM.lower(),
    f" {VICTIM} ",
    "\u200b" + VICTIM,  # zero-width space
    VICTIM[:10] + "\u200d" + VICTIM[10:],  # zero-width joiner inside
    "\u202e" + VICTIM,  # right-to-left override
    VICTIM[:2] + " " + VICTIM[2:18] + "-" + VICTIM[18:],
    VICTIM.translate(FULLWIDTH),
    VICTIM + "\x00",
    f"prod {VICTIM}",
]


@pytest.mark.parametrize("name", SID_DISGUISES)
def test_a_name_that_reads_as_a_sid_is_never_shown_nor_a_label(name: str) -> None:
    assert looks_like_sid(display_text(name)) or not display_text(name).isascii()
    assert shown_name(name) == ""


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("team-a", "team-a"),
        ("  Sub   A\t", "Sub A"),
        ("te\u200bam\x07-a", "team-a"),
        ("\uff34\uff45\uff41\uff4d", "Team"),  # full-width
        ("x" * 60, "x" * 40),
        ("Équipe", ""),  # not plain ASCII: other scripts can imitate a SID
        ("\u0410\u0421" + "b" * 32, ""),  # Cyrillic A and C
        ("---", ""),
        ("", ""),
        (None, ""),
        ("AC" + "b" * 31, "AC" + "b" * 31),  # one digit short of a SID
    ],
)
def test_friendly_names_are_sanitised(raw: Any, shown: str) -> None:
    assert shown_name(raw) == shown


def test_labels_differing_only_in_case_or_punctuation_share_a_key() -> None:
    assert label_key("team-a") == label_key("Team A") == label_key("team_a") == label_key("TEAM.A") == "teama"


def directory(found: list[dict[str, Any]], **env: str) -> AccountDirectory:
    def discover(parent: Any) -> list[dict[str, Any]]:
        return found

    return AccountDirectory(load_settings(BASE | env), discover)


def sub(sid: str, name: str) -> dict[str, Any]:
    return {"sid": sid, "auth_token": f"token-{sid[-4:]}-0123456789abcdef", "friendly_name": name, "status": "active"}


@pytest.mark.parametrize("disguise", SID_DISGUISES)
def test_a_sid_always_resolves_to_its_own_account_whatever_another_is_named(disguise: str) -> None:
    accounts = directory([sub(VICTIM, "victim"), sub(ATTACKER, disguise)])
    assert accounts.resolve(VICTIM).sid == VICTIM
    assert accounts.resolve(VICTIM.upper()).sid == VICTIM
    assert accounts.resolve(ATTACKER).sid == ATTACKER
    assert accounts.get(ATTACKER).label == "" and accounts.get(ATTACKER).name == ATTACKER
    if disguise not in (VICTIM, VICTIM.upper(), VICTIM.lower()):  # anything but the SID itself names nobody
        with pytest.raises(RequestError, match="is not served"):
            accounts.resolve(disguise)


def test_a_shared_name_is_nobodys_label_and_each_account_is_reached_by_sid() -> None:
    accounts = directory([sub(VICTIM, "team-a"), sub(ATTACKER, "Team A"), sub(OTHER, "team-b")])
    for value in ("team-a", "Team A"):
        with pytest.raises(RequestError, match="is not served"):
            accounts.resolve(value)
    assert accounts.resolve(VICTIM).sid == VICTIM and accounts.resolve(ATTACKER).sid == ATTACKER
    assert accounts.resolve("team-b").sid == OTHER  # unaffected
    views = {a.sid: a.public_view() for a in accounts.all()}
    assert views[VICTIM]["label"] is None and views[VICTIM]["friendly_name"] == "team-a"  # shown, not resolved
    assert views[ATTACKER]["label"] is None and views[ATTACKER]["friendly_name"] == "Team A"


def test_a_files_label_stays_its_own_when_a_subaccount_takes_the_same_name(tmp_path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps([{"sid": FILED, "label": "billing", "auth_token": "file-token-0123456789abcdef"}]))
    accounts = directory([sub(ATTACKER, "Billing")], TWILIO_ACCOUNTS_FILE=str(path))
    assert accounts.resolve("billing").sid == FILED
    with pytest.raises(RequestError):
        accounts.resolve("Billing")
    assert accounts.get(ATTACKER).label == ""


def test_a_refused_name_is_logged_once_by_sid_without_the_name(caplog) -> None:
    found = [sub(VICTIM, "victim"), sub(ATTACKER, VICTIM)]
    accounts = directory(found)
    with caplog.at_level(logging.WARNING, logger="app.twilio.accounts"):
        accounts.all()
        accounts.refresh(force=True)
    refused = [r.getMessage() for r in caplog.records if "friendly name" in r.getMessage()]
    assert len(refused) == 1 and ATTACKER in refused[0] and "named by SID only" in refused[0]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (["AC" + "b" * 32], "must not look like an account SID"),
        (["ac" + "B" * 32], "must not look like an account SID"),
        (["AC-" + "b" * 32], "must not look like an account SID"),
        (["---"], "needs a letter or digit"),
        (["team-a", "Team_A"], "label twice"),
    ],
)
def test_a_file_label_that_looks_like_a_sid_or_repeats_another_is_refused(tmp_path, labels, message) -> None:
    entries = [
        {"sid": "AC" + f"{n:032x}", "label": label, "auth_token": "file-token-0123456789abcdef"}
        for n, label in enumerate(labels, 1)
    ]
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(ConfigError, match=message):
        load_settings(BASE | {"TWILIO_ACCOUNTS_FILE": str(path)})
