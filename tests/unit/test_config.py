import pytest

from app.platform.config import ConfigError, load_settings

BASE = {
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "PUBLIC_BASE_URL": "https://relay.example.com/",
    "S3_BUCKET": "b",
    "ADMIN_TOKEN": "x" * 20,
}


def test_defaults_and_normalisation():
    s = load_settings(BASE | {"S3_PREFIX": "exports", "WEBHOOK_METHOD": "get"})
    assert s.public_base_url == "https://relay.example.com"
    assert s.s3_prefix == "exports/"
    assert s.webhook_method == "GET"
    assert s.webhook_signature == "auto"  # unsigned deliveries only until a signed one has been seen (app.web.intake)
    assert s.twilio_base_url == "https://bulkexports.twilio.com"


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"TWILIO_ACCOUNT_SID": ""}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_ACCOUNT_SID": "ACnothex"}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"),
        ({"PUBLIC_BASE_URL": "ftp://x"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "https://x/?a=1"}, "PUBLIC_BASE_URL"),
        ({"S3_BUCKET": ""}, "S3_BUCKET"),
        ({"ADMIN_TOKEN": "short"}, "ADMIN_TOKEN"),
        ({"WEBHOOK_METHOD": "PUT"}, "WEBHOOK_METHOD"),
        ({"WEBHOOK_SIGNATURE": "sometimes"}, "WEBHOOK_SIGNATURE"),
        ({"POLL_INTERVAL_SECONDS": "soon"}, "POLL_INTERVAL_SECONDS"),
        ({"S3_SSE": "rot13"}, "S3_SSE"),
        ({"TWILIO_API_KEY_SID": "SK" + "1" * 32}, "TWILIO_API_KEY_SECRET"),
        ({"COPY_RETRY_INTERVALS": "1,x"}, "COPY_RETRY_INTERVALS"),
        ({"S3_KEY_TEMPLATE": "{prefix}{resource_type}/all.json.gz"}, "S3_KEY_TEMPLATE"),
        ({"S3_KEY_TEMPLATE": "{prefix}{resource_type}/{day}/{bucket}.gz"}, "S3_KEY_TEMPLATE"),
        ({"S3_KEY_TEMPLATE": "{day"}, "S3_KEY_TEMPLATE"),
        ({"S3_SSE_KMS_KEY_ID": "alias/x"}, "S3_SSE_KMS_KEY_ID"),
        ({"JANITOR_INTERVAL_SECONDS": "0"}, "JANITOR_INTERVAL_SECONDS"),
        ({"S3_SINGLE_PUT_MAX_MIB": "-1"}, "S3_SINGLE_PUT_MAX_MIB"),
        ({"S3_SINGLE_PUT_MAX_MIB": "257"}, "S3_SINGLE_PUT_MAX_MIB"),
        (
            {
                "TWILIO_AUTH_TOKEN": "",
                "TWILIO_API_KEY_SID": "SK" + "1" * 32,
                "TWILIO_API_KEY_SECRET": "s" * 32,
                "WEBHOOK_SIGNATURE": "required",
            },
            "TWILIO_AUTH_TOKEN",
        ),
    ],
)
def test_invalid_settings_name_the_variable(change, variable):
    with pytest.raises(ConfigError, match=variable):
        load_settings(BASE | change)


def test_api_key_replaces_auth_token_for_rest_calls():
    s = load_settings(
        BASE | {"TWILIO_AUTH_TOKEN": "", "TWILIO_API_KEY_SID": "SK" + "1" * 32, "TWILIO_API_KEY_SECRET": "s" * 32}
    )
    assert s.auth_tokens == ()


def test_secrets_never_in_repr():
    s = load_settings(BASE | {"TWILIO_AUTH_TOKEN_SECONDARY": "second-token-value"})
    assert "t" * 32 not in repr(s) and "second-token-value" not in repr(s)
    assert s.auth_tokens == ("t" * 32, "second-token-value")


@pytest.mark.parametrize(
    ("raw", "level"), [("info", "INFO"), ("", "INFO"), (" debug ", "DEBUG"), ("WARNING", "WARNING")]
)
def test_gunicorn_and_rq_logging_take_log_level_as_the_settings_do(monkeypatch, raw, level):
    """gunicorn and rq configure logging before settings load; a value the settings accept must work there too."""
    import logging.config

    from app.platform.logs import logging_dict_config

    monkeypatch.setenv("LOG_LEVEL", raw)
    config = logging_dict_config()
    assert config["root"]["level"] == level == load_settings(BASE | {"LOG_LEVEL": raw}).log_level
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        logging.config.dictConfig(config)  # raised "Unknown level" for 'info' and ''
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]


def test_a_log_level_logging_does_not_know_stops_the_process(monkeypatch):
    from app.platform.logs import logging_dict_config

    monkeypatch.setenv("LOG_LEVEL", "verbose")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        logging_dict_config()


def test_storage_class_and_addressing_style_are_checked_at_start_up():
    assert load_settings(BASE | {"S3_STORAGE_CLASS": "STANDARD_IA"}).s3_storage_class == "STANDARD_IA"
    with pytest.raises(ConfigError, match="S3_STORAGE_CLASS"):
        load_settings(BASE | {"S3_STORAGE_CLASS": "standard-ia"})  # would fail every copy, hours later
    with pytest.raises(ConfigError, match="AWS_S3_ADDRESSING_STYLE"):
        load_settings(BASE | {"AWS_S3_ADDRESSING_STYLE": "paths"})


def test_cleartext_urls_off_this_host_are_refused():
    """Plain http off loopback would send Twilio's Basic auth / the webhook tokens in clear: refused at start-up
    (more cases in test_config_security.py)."""
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL must be https"):
        load_settings(BASE | {"PUBLIC_BASE_URL": "http://relay.example.com"})
    assert load_settings(BASE | {"PUBLIC_BASE_URL": "http://127.0.0.1:8000"})  # tests and the demo


@pytest.mark.parametrize(
    ("change", "secure"),
    [
        ({}, True),  # https PUBLIC_BASE_URL
        ({"PUBLIC_BASE_URL": ""}, True),  # nothing says the console is plain http: Secure
        ({"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}, False),  # the only plain http allowed: loopback
        ({"PUBLIC_BASE_URL": "http://127.0.0.1:8000", "CONSOLE_COOKIE_SECURE": "true"}, True),
        ({"PUBLIC_BASE_URL": "", "CONSOLE_COOKIE_SECURE": "false"}, False),
    ],
)
def test_the_console_cookie_is_secure_by_configuration(change, secure):
    assert load_settings(BASE | change).console.cookie_secure is secure


def test_console_session_settings():
    key = "k" * 40
    s = load_settings(BASE | {"CONSOLE_SECRET_KEY": key, "CONSOLE_SESSION_HOURS": "2"})
    assert (s.console.secret_key, s.console.session_hours) == (key, 2)
    assert key in s.secrets and key not in repr(s) and key not in repr(s.console)  # scrubbed from logs, never shown
    assert load_settings(BASE).console.session_hours == 12 and load_settings(BASE).console.secret_key is None


@pytest.mark.parametrize(
    "change",
    [
        {"CONSOLE_SECRET_KEY": "too-short"},
        {"CONSOLE_SESSION_HOURS": "0"},
        {"CONSOLE_SESSION_HOURS": "721"},
        {"CONSOLE_COOKIE_SECURE": "maybe"},
        {"CONSOLE_COOKIE_SECURE": "false"},  # with an https PUBLIC_BASE_URL
    ],
)
def test_bad_console_settings_are_refused(change):
    (variable,) = change
    with pytest.raises(ConfigError, match=variable) as err:
        load_settings(BASE | change)
    assert "too-short" not in str(err.value)


@pytest.mark.parametrize(
    "feeds", ["Calls:2007-12-31", "Messages:0001-01-01:2025-01-01", "Calls:2025-01-01,Messages:1999-01-01"]
)
def test_sync_feeds_cannot_start_before_the_earliest_day(feeds):
    """Issue 20: a feed's window is bounded below (app.platform.days.EARLIEST_DAY), SYNC_FEEDS like the API."""
    with pytest.raises(ConfigError, match=r"SYNC_FEEDS: .* starts before 2008-01-01"):
        load_settings(BASE | {"SYNC_FEEDS": feeds})


def test_sync_feeds_may_start_at_the_earliest_day():
    (spec,) = load_settings(BASE | {"SYNC_FEEDS": "Calls:2008-01-01"}).sync.feeds
    assert (spec.resource_type, spec.since) == ("Calls", "2008-01-01")
