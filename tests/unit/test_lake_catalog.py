"""The lake's settings (app/platform/config/lake.py) and catalog (app/lake/catalog.py): what the environment turns
into, what load_catalog gets, what start-up refuses."""

from __future__ import annotations

import pytest

from app.lake.catalog import catalog_properties, s3_properties
from app.platform.config import ConfigError, LakeSettings, default_warehouse, load_lake_settings

RELAY_S3 = {
    "AWS_ENDPOINT_URL_S3": "https://s3.example:9000",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def test_the_lake_is_off_without_lake_catalog() -> None:
    assert load_lake_settings({}, "bucket") is None
    assert load_lake_settings({"LAKE_CATALOG": " "}, "bucket") is None


def test_defaults_put_the_lake_next_to_the_day_files() -> None:
    settings = load_lake_settings({"LAKE_CATALOG": "sql", "LAKE_CATALOG_URI": "sqlite:////var/lake.db"}, "b", "twilio/")
    assert settings == LakeSettings(catalog="sql", uri="sqlite:////var/lake.db", warehouse="s3://b/twilio/lake")
    assert settings.namespace == "twilio"
    assert default_warehouse("b") == "s3://b/lake"


def test_every_setting_is_read() -> None:
    env = {
        "LAKE_CATALOG": "REST",
        "LAKE_CATALOG_URI": "https://catalog.example",
        "LAKE_WAREHOUSE": "analytics",
        "LAKE_NAMESPACE": "telephony",
        "LAKE_CATALOG_PROPERTIES": '{"credential": "id:secret"}',
    }
    settings = load_lake_settings(env, "b")
    assert settings is not None
    assert (settings.catalog, settings.uri, settings.warehouse, settings.namespace) == (
        "rest",
        "https://catalog.example",
        "analytics",
        "telephony",
    )
    assert catalog_properties(settings, {})["credential"] == "id:secret"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAKE_CATALOG": "hive"}, "must be one of"),
        ({"LAKE_CATALOG": "sql"}, "needs LAKE_CATALOG_URI"),
        ({"LAKE_CATALOG": "rest"}, "needs LAKE_CATALOG_URI"),
        ({"LAKE_CATALOG": "glue", "LAKE_CATALOG_PROPERTIES": "[1]"}, "JSON object"),
    ],
)
def test_bad_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_lake_settings(env, "b")


def test_sqlite_is_for_one_machine_only() -> None:
    assert not LakeSettings("sql", "s3://b/lake", "sqlite:///lake.db").shared_safely
    assert LakeSettings("sql", "s3://b/lake", "postgresql+psycopg2://u@db/lake").shared_safely
    assert LakeSettings("glue", "s3://b/lake").shared_safely


def test_the_file_io_uses_the_relays_s3_endpoint_and_credentials() -> None:
    props = catalog_properties(LakeSettings("sql", "s3://b/lake", "sqlite:///x.db"), RELAY_S3)
    assert props == {
        "type": "sql",
        "uri": "sqlite:///x.db",
        "warehouse": "s3://b/lake",
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        "s3.endpoint": "https://s3.example:9000",
        "s3.access-key-id": "key",
        "s3.secret-access-key": "secret",
        "s3.region": "eu-west-1",
    }


def test_unset_credentials_leave_the_sdk_chain_alone() -> None:
    assert s3_properties({}) == {}
    assert s3_properties({"AWS_ENDPOINT_URL": "http://x", "AWS_S3_ADDRESSING_STYLE": "virtual"}) == {
        "s3.endpoint": "http://x",
        "s3.force-virtual-addressing": "true",
    }


def test_glue_gets_no_uri() -> None:
    props = catalog_properties(LakeSettings("glue", "s3://b/lake", "ignored"), {})
    assert "uri" not in props and props["type"] == "glue"
