"""Outbound events, the pure parts: deterministic ids, the Standard Webhooks body, a signature the reference library
accepts, and the NOTIFY_* settings' validation (never echoing the secret)."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from app.jobs.events import EVENT_TYPES, body, event_id
from app.platform.config import ConfigError, load_notify_settings

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def test_an_event_id_is_the_same_for_the_same_event_and_new_for_a_new_occurrence() -> None:
    first = event_id("job.done", "JS" + "a" * 32, "1764500000.25")
    assert first == event_id("job.done", "JS" + "a" * 32, "1764500000.25")
    assert re.fullmatch(r"evt_[0-9a-f]{32}", first)
    others = {
        event_id("job.failed", "JS" + "a" * 32, "1764500000.25"),  # another type
        event_id("job.done", "JS" + "b" * 32, "1764500000.25"),  # another subject
        event_id("job.done", "JS" + "a" * 32, "1764600000.5"),  # the job finished again after a requeue
        event_id("job.done", "JS" + "a" * 32 + "\n1764500000.25", ""),  # fields cannot run into each other
    }
    assert first not in others and len(others) == 4


def test_the_body_is_the_standard_webhooks_shape_and_stable_bytes() -> None:
    at = datetime(2026, 11, 30, 12, 0, 5, 123456, tzinfo=UTC)
    data = {"job_sid": "JS1", "failed_days": ["2026-11-20"], "b": 1, "a": 2}
    text = body("job.failed", data, at)
    assert json.loads(text) == {"type": "job.failed", "timestamp": "2026-11-30T12:00:05Z", "data": data}
    assert text == body("job.failed", dict(reversed(list(data.items()))), at), "key order does not change bytes"
    assert " " not in text and text.isascii()
    assert set(EVENT_TYPES) == {
        "job.done",
        "job.failed",
        "day.failed",
        "feed.lagging",
        "retention.at_risk",
        "registry.recovered",
    }


def test_a_signature_made_as_the_relay_makes_it_verifies_with_the_library_and_only_for_its_bytes() -> None:
    now = datetime.now(UTC)
    eid, text = "evt_" + "0" * 32, body("day.failed", {"day": "2026-11-20"}, now)
    headers = {
        "webhook-id": eid,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign(eid, now, text),
    }
    assert Webhook(SECRET).verify(text, headers)["data"] == {"day": "2026-11-20"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(text.replace("11-20", "11-21"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(text, {**headers, "webhook-id": "evt_" + "1" * 32})


def test_notify_settings_accept_https_loopback_http_and_a_whsec_key() -> None:
    assert load_notify_settings({}).url is None
    settings = load_notify_settings(
        {"NOTIFY_URL": "https://hooks.example.com/relay?x=1", "NOTIFY_SECRET": SECRET, "NOTIFY_RETRY_INTERVALS": "1,2"}
    )
    assert (settings.url, settings.secret, settings.retry_intervals) == (
        "https://hooks.example.com/relay?x=1",
        SECRET,
        (1, 2),
    )
    assert load_notify_settings({"NOTIFY_URL": "http://127.0.0.1:8080/hook"}).secret is None  # web: no secret needed
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NOTIFY_URL": "http://hooks.example.com/"}, "must be https"),
        ({"NOTIFY_URL": "ftp://hooks.example.com/"}, "http(s) URL"),
        ({"NOTIFY_URL": "https://user:pw@hooks.example.com/"}, "credentials"),
        ({"NOTIFY_URL": "https://hooks.example.com:99999/"}, "not a valid URL"),
        ({"NOTIFY_SECRET": SECRET}, "NOTIFY_URL is not"),
        ({"NOTIFY_URL": "https://h.example.com/", "NOTIFY_SECRET": SECRET[6:]}, "whsec_"),
        ({"NOTIFY_URL": "https://h.example.com/", "NOTIFY_SECRET": "whsec_c2hvcnQ="}, "24 to 64"),
        ({"NOTIFY_URL": "https://h.example.com/", "NOTIFY_SECRET": "whsec_!!not-base64!!" * 3}, "base64"),
        ({"NOTIFY_URL": "https://h.example.com/", "NOTIFY_RETRY_INTERVALS": "soon"}, "NOTIFY_RETRY_INTERVALS"),
    ],
)
def test_bad_notify_settings_are_refused_naming_the_variable_without_echoing_secrets(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_notify_settings(env)
    assert message in str(err.value)
    assert env.get("NOTIFY_SECRET", "\0") not in str(err.value)
    assert "pw" not in str(err.value)
