"""The lake's settings as start-up reads them (``load_settings``): off unless LAKE_CATALOG is set, defaults next to
the day files, a clear ConfigError for each bad value, and no secret in a repr."""

from __future__ import annotations

import pytest

from app.platform.config import ConfigError, load_settings

BASE = {
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "S3_BUCKET": "bucket",
    "S3_PREFIX": "exports",
}


def test_no_lake_unless_lake_catalog_is_set() -> None:
    assert load_settings(BASE).lake is None
    assert load_settings(BASE | {"LAKE_CATALOG": " ", "LAKE_CATALOG_URI": "sqlite:////x.db"}).lake is None


def test_the_defaults_put_the_lake_next_to_the_day_files() -> None:
    lake = load_settings(BASE | {"LAKE_CATALOG": "SQL", "LAKE_CATALOG_URI": "sqlite:////var/lake.db"}).lake
    assert lake is not None
    assert (lake.catalog, lake.warehouse, lake.namespace) == ("sql", "s3://bucket/exports/lake", "twilio")
    assert not lake.shared_safely  # a SQLite file: one machine only (docs/lake.md)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAKE_CATALOG": "hive"}, "LAKE_CATALOG must be one of sql, glue, rest"),
        ({"LAKE_CATALOG": "sql"}, "LAKE_CATALOG=sql needs LAKE_CATALOG_URI"),
        ({"LAKE_CATALOG": "rest"}, "LAKE_CATALOG=rest needs LAKE_CATALOG_URI"),
        ({"LAKE_CATALOG": "glue", "LAKE_CATALOG_PROPERTIES": "{"}, "LAKE_CATALOG_PROPERTIES must be a JSON object"),
        ({"LAKE_CATALOG": "glue", "LAKE_CATALOG_PROPERTIES": '{"a": 1}'}, "LAKE_CATALOG_PROPERTIES must be a JSON"),
    ],
)
def test_bad_lake_settings_stop_the_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(BASE | env)


def test_the_catalog_secrets_are_never_printed_and_are_masked_in_logs() -> None:
    env = BASE | {
        "LAKE_CATALOG": "rest",
        "LAKE_CATALOG_URI": "https://user:uri-password@catalog.example/api",
        "LAKE_CATALOG_PROPERTIES": '{"credential": "client:property-secret"}',
        "LAKE_NAMESPACE": "telephony",
        "LAKE_WAREHOUSE": "analytics",
    }
    settings = load_settings(env)
    assert settings.lake is not None
    assert (settings.lake.warehouse, settings.lake.namespace) == ("analytics", "telephony")
    for text in (repr(settings), repr(settings.lake)):
        assert "uri-password" not in text and "property-secret" not in text
    assert {"uri-password", "client:property-secret"} <= set(settings.secrets)
