"""Settings that guard against attacks (issue 12): key templates that merge days, plain-http endpoints, the download
allow-list and its loopback switch, and the admin token that only the web needs."""

from __future__ import annotations

import contextlib
import string
from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.platform.config import (
    DEFAULT_DOWNLOAD_HOSTS,
    KEY_TEMPLATE_FIELDS,
    RESOURCE_TYPES,
    ConfigError,
    load_settings,
    require_web_settings,
)
from workers.sink import DEFAULT_KEY_TEMPLATE, S3Sink, SinkSettings

BASE = {
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "PUBLIC_BASE_URL": "https://relay.example.com/",
    "S3_BUCKET": "b",
    "ADMIN_TOKEN": "x" * 20,
}


def _keys(template: str, prefix: str, pairs: list[tuple[str, str, str]]) -> list[str]:
    """Keys as the worker's sink renders them, for (resource_type, day, job_sid) triples."""
    sink = S3Sink(None, SinkSettings(bucket="b", prefix=prefix, key_template=template))  # type: ignore[arg-type]
    return [sink.day_key(rt, day, sid) for rt, day, sid in pairs]


# -- S3_KEY_TEMPLATE ---------------------------------------------------------------------------------------


def test_the_confirmed_attack_template_merged_days_and_is_now_refused() -> None:
    template = "{prefix}{resource_type}/{day:.4}.json.gz"  # accepted before: the year only
    first, second = _keys(template, "p/", [("Calls", "2026-01-01", "JS1"), ("Calls", "2026-07-04", "JS1")])
    assert first == second == "p/Calls/2026.json.gz", "two days, one key: one file overwrote the other"
    with pytest.raises(ConfigError, match="S3_KEY_TEMPLATE"):
        load_settings(BASE | {"S3_KEY_TEMPLATE": template})


@pytest.mark.parametrize(
    "template",
    [
        "{resource_type}/{day:.4}",
        "{resource_type}/{day:>20}",
        "{resource_type}/{day!r}",
        "{resource_type}/{day!s}",
        "{resource_type!a}/{day}",
        "{resource_type}/{day[0]}",
        "{resource_type}/{day.year}",
        "{resource_type}/{day:{prefix}}",
        "{resource_type}/{day}/{}",
        "{resource_type}/{day}/{0}",
        "{resource_type}/{day}/{bucket}",
        "{resource_type}/{day",
        "{resource_type}/day}",
        "{prefix}{resource_type}.gz",
    ],
)
def test_templates_with_conversions_specs_access_or_unknown_fields_are_refused(template: str) -> None:
    with pytest.raises(ConfigError, match="S3_KEY_TEMPLATE"):
        load_settings(BASE | {"S3_KEY_TEMPLATE": template})


def test_the_default_and_plain_templates_are_accepted() -> None:
    for template in (
        "{prefix}{resource_type}/day={day}/{resource_type}-{day}.json.gz",
        "{prefix}{job_sid}/{resource_type}/{day}.gz",
        "{{literal}}/{resource_type}{day}",
    ):
        assert load_settings(BASE | {"S3_KEY_TEMPLATE": template}).s3_key_template == template


_FIELD = st.sampled_from([*KEY_TEMPLATE_FIELDS, "bucket", ""])
_PIECE = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "/=_.-", max_size=6),  # literal text
    st.just("{{").map(str) | st.just("}}"),  # escaped braces
    _FIELD.map(lambda f: "{" + f + "}"),
    st.tuples(_FIELD, st.sampled_from(["!r", "!s", "!a", ":.4", ":>12", ":x", ".year", "[0]", ":"])).map(
        lambda t: "{" + t[0] + t[1] + "}"
    ),
)
# Templates that hold the two required fields somewhere among random other pieces (some of which are refused).
_TEMPLATES = st.lists(_PIECE, max_size=6).flatmap(
    lambda extra: st.permutations(["{resource_type}", "{day}", *extra]).map("".join)
)
_DAYS = st.dates(min_value=date(1970, 1, 1), max_value=date(2999, 12, 31)).map(date.isoformat)
_SIDS = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32).map(lambda h: "JS" + h)


@settings(max_examples=400, deadline=None)
@given(
    raw_template=_TEMPLATES,
    prefix=st.sampled_from(["", "twilio/", "a/b/"]),
    days=st.lists(_DAYS, min_size=1, max_size=6, unique=True),
    sids=st.lists(_SIDS, min_size=1, max_size=3),
    data=st.data(),
)
def test_every_accepted_template_gives_distinct_keys_for_distinct_type_and_day(
    raw_template: str, prefix: str, days: list[str], sids: list[str], data: st.DataObject
) -> None:
    try:
        loaded = load_settings(BASE | {"S3_KEY_TEMPLATE": raw_template, "S3_PREFIX": prefix})
    except ConfigError:
        assume(False)
        return
    template = loaded.s3_key_template or DEFAULT_KEY_TEMPLATE  # empty means the default
    pairs = [(rt, day) for rt in RESOURCE_TYPES for day in days]
    # Each (type, day) exported by any job: the job sid must never be what keeps two days apart, nor merge them.
    triples = [(rt, day, data.draw(st.sampled_from(sids))) for rt, day in pairs]
    keys = _keys(template, prefix, triples)
    assert len(set(keys)) == len(pairs), f"{template!r} merged days: {keys}"


def test_the_property_test_reaches_accepted_templates() -> None:
    """Guard against a vacuous property: the generator produces accepted templates, and not only trivial ones."""
    accepted: list[str] = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(raw_template=_TEMPLATES)
    def collect(raw_template: str) -> None:
        with contextlib.suppress(ConfigError):
            accepted.append(load_settings(BASE | {"S3_KEY_TEMPLATE": raw_template}).s3_key_template or "")

    collect()
    assert len(accepted) >= 30 and sum(len(t) > 30 for t in accepted) >= 5, accepted


# -- plain http ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["PUBLIC_BASE_URL", "TWILIO_BULKEXPORTS_BASE_URL"])
@pytest.mark.parametrize(
    "url",
    [
        "http://relay.example.com",
        "http://10.0.0.5:8000",
        "http://169.254.169.254",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example",
        "http://[::ffff:10.0.0.1]",
    ],
)
def test_plain_http_off_loopback_is_refused_at_start_up(name: str, url: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be https"):
        load_settings(BASE | {name: url})


@pytest.mark.parametrize("name", ["PUBLIC_BASE_URL", "TWILIO_BULKEXPORTS_BASE_URL"])
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.3.2.1", "http://localhost:8080", "http://[::1]:8000", "https://x.io"]
)
def test_plain_http_to_loopback_and_https_anywhere_are_accepted(name: str, url: str) -> None:
    load_settings(BASE | {name: url})


@pytest.mark.parametrize("url", ["https://user:pw@relay.example.com", "https://relay.example.com:99999"])
def test_base_urls_with_credentials_or_bad_ports_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_settings(BASE | {"PUBLIC_BASE_URL": url})


# -- download allow-list and the loopback switch ---------------------------------------------------------------


def test_download_defaults_are_s3_hosts_and_no_loopback() -> None:
    s = load_settings(BASE)
    assert s.download_host_allowlist == DEFAULT_DOWNLOAD_HOSTS
    assert all(p.endswith(".amazonaws.com") for p in DEFAULT_DOWNLOAD_HOSTS)
    assert s.download_allow_loopback is False


def test_download_allowlist_is_parsed_and_normalised() -> None:
    s = load_settings(BASE | {"DOWNLOAD_HOST_ALLOWLIST": " *.S3.amazonaws.com. , 127.0.0.1,[::1], files.example.com"})
    assert s.download_host_allowlist == ("*.s3.amazonaws.com", "127.0.0.1", "::1", "files.example.com")


@pytest.mark.parametrize("value", ["*", "*.com", "example.*", "*.*", "evil..com", "ex ample.com", ",", "a_b.com"])
def test_download_allowlist_refuses_patterns_that_would_allow_too_much_or_nothing(value: str) -> None:
    with pytest.raises(ConfigError, match="DOWNLOAD_HOST_ALLOWLIST"):
        load_settings(BASE | {"DOWNLOAD_HOST_ALLOWLIST": value})


def test_download_allow_loopback_is_refused_unless_the_twilio_api_is_loopback() -> None:
    """Only a local stack (the sandbox as Twilio) may allow loopback downloads; a deployment talking to the real
    Twilio cannot, whatever else it sets."""
    with pytest.raises(ConfigError, match="DOWNLOAD_ALLOW_LOOPBACK"):
        load_settings(BASE | {"DOWNLOAD_ALLOW_LOOPBACK": "true"})  # default base URL: the real Twilio
    with pytest.raises(ConfigError, match="DOWNLOAD_ALLOW_LOOPBACK"):
        load_settings(BASE | {"DOWNLOAD_ALLOW_LOOPBACK": "true", "PUBLIC_BASE_URL": "http://127.0.0.1:8000"})
    local = BASE | {"DOWNLOAD_ALLOW_LOOPBACK": "TRUE", "TWILIO_BULKEXPORTS_BASE_URL": "http://127.0.0.1:8080"}
    assert load_settings(local).download_allow_loopback is True
    assert load_settings(local).download_host_allowlist == DEFAULT_DOWNLOAD_HOSTS
    with pytest.raises(ConfigError, match="DOWNLOAD_ALLOW_LOOPBACK"):
        load_settings(local | {"DOWNLOAD_ALLOW_LOOPBACK": "yes"})


# -- ADMIN_TOKEN: only the web ------------------------------------------------------------------------------


def test_worker_and_poller_settings_load_without_the_admin_token_but_the_web_refuses() -> None:
    settings_ = load_settings({k: v for k, v in BASE.items() if k != "ADMIN_TOKEN"})
    assert settings_.admin_token is None
    with pytest.raises(ConfigError, match="ADMIN_TOKEN is required by the web"):
        require_web_settings(settings_)
    assert require_web_settings(load_settings(BASE)).admin_token == "x" * 20
    with pytest.raises(ConfigError, match="ADMIN_TOKEN must be at least 16"):
        load_settings(BASE | {"ADMIN_TOKEN": "short"})


# -- ids with a trailing newline ------------------------------------------------------------------------------


def test_sid_patterns_refuse_a_trailing_newline_even_with_match() -> None:
    """``$`` matched before a final newline; the patterns are anchored with \\Z so even ``.match`` is exact."""
    from app.platform.config import ACCOUNT_SID_RE, API_KEY_SID_RE

    for pattern, sid in ((ACCOUNT_SID_RE, "AC" + "a" * 32), (API_KEY_SID_RE, "SK" + "1" * 32)):
        assert pattern.match(sid) and pattern.fullmatch(sid)
        assert not pattern.match(sid + "\n") and not pattern.fullmatch(sid + "\n")
