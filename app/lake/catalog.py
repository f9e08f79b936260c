"""The Iceberg catalog of the lake, built with pyiceberg's ``load_catalog`` from the lake's settings (``Settings.lake``,
read and validated at start-up: app/platform/config/lake.py) and the relay's own S3 environment.

Why the relay's environment: the lake's data files live in the relay's bucket (warehouse
``s3://<bucket>/<prefix>lake`` by default), so they are written with the same endpoint and credentials as the day
files: the standard ``AWS_*`` variables botocore reads (app/platform/s3_client.py). They are handed to pyiceberg's
PyArrow FileIO as ``s3.*`` properties; variables that are unset are left out, so the AWS SDK's own chain (instance
profile, web identity, config files) still applies. Not carried over: ``AWS_CA_BUNDLE`` (pyiceberg 0.12 passes no
CA file to Arrow's S3 client; Arrow uses the system trust store).

Catalog types: ``sql`` (a SQLAlchemy URL: SQLite for one machine, PostgreSQL for several), ``glue`` (AWS Glue; the
URI is unused) and ``rest`` (an Iceberg REST catalog at the URI).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from sqlalchemy.exc import OperationalError

from app.platform.config import LakeSettings

CATALOG_NAME = "relay"


_S3_ENVIRONMENT = (
    ("s3.endpoint", ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")),
    ("s3.access-key-id", ("AWS_ACCESS_KEY_ID",)),
    ("s3.secret-access-key", ("AWS_SECRET_ACCESS_KEY",)),
    ("s3.session-token", ("AWS_SESSION_TOKEN",)),
    ("s3.region", ("AWS_REGION", "AWS_DEFAULT_REGION")),
)


def s3_properties(environ: Mapping[str, str]) -> dict[str, str]:
    """pyiceberg's ``s3.*`` FileIO properties from the relay's ``AWS_*`` environment (unset ones left out)."""
    props: dict[str, str] = {}
    for prop, names in _S3_ENVIRONMENT:
        value = next((environ[n] for n in names if environ.get(n)), None)
        if value:
            props[prop] = value
    style = environ.get("AWS_S3_ADDRESSING_STYLE", "").strip().lower()
    if style in ("virtual", "path"):
        props["s3.force-virtual-addressing"] = "true" if style == "virtual" else "false"
    return props


def catalog_properties(settings: LakeSettings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Everything ``load_catalog`` gets: type, URI, warehouse, PyArrow FileIO with the relay's S3 settings."""
    props = {
        "type": settings.catalog,
        "warehouse": settings.warehouse,
        "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
        **s3_properties(os.environ if environ is None else environ),
    }
    if settings.uri and settings.catalog != "glue":
        props["uri"] = settings.uri
    return {**props, **settings.properties}


def open_catalog(settings: LakeSettings, environ: Mapping[str, str] | None = None) -> Catalog:
    """The catalog (a SQL catalog creates its own tables on first use; a SQLite file is switched to WAL)."""
    catalog = load_catalog(CATALOG_NAME, **catalog_properties(settings, environ))
    if isinstance(catalog, SqlCatalog) and catalog.engine.dialect.name == "sqlite":
        _sqlite_wal(catalog)
    return catalog


def _sqlite_wal(catalog: SqlCatalog) -> None:
    """WAL journal: readers (loads opening tables) no longer wait for a writer's commit, and writers for readers.
    The mode is a property of the file, so the first process that gets it set it for all; a busy file is left
    as it is (the next open tries again), an in-memory database ignores it."""
    with contextlib.suppress(OperationalError), catalog.engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
