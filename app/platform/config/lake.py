"""The lake's settings (issue 23, app/lake/): LAKE_CATALOG (``sql``, ``glue`` or ``rest``; unset: no lake),
LAKE_CATALOG_URI, LAKE_WAREHOUSE, LAKE_NAMESPACE, LAKE_CATALOG_PROPERTIES. Read and validated at start-up with the
rest, so a worker never learns of a bad catalog setting only when its first day is loaded.

What cannot be checked here: a SQLite catalog (``sql`` with a ``sqlite:`` URI) shared by several machines. Its
file is locked by the OS of one machine; workers on several would corrupt it (docs/lake.md). ``shared_safely``
says which catalogs several machines may use; the operator decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from app.platform.config.env import env_choice, env_str
from app.platform.config.settings import ConfigError

CATALOG_TYPES = ("sql", "glue", "rest")
DEFAULT_NAMESPACE = "twilio"


def default_warehouse(bucket: str, prefix: str = "") -> str:
    """``s3://<bucket>/<prefix>lake``: the lake next to the day files (``prefix`` as the relay spells it, e.g.
    ``twilio/``, or empty)."""
    return f"s3://{bucket}/{prefix}lake"


@dataclass(frozen=True)
class LakeSettings:
    """LAKE_CATALOG, LAKE_CATALOG_URI, LAKE_WAREHOUSE, LAKE_NAMESPACE; ``properties``: any further catalog
    properties (pyiceberg's names, e.g. ``glue.region`` or ``credential``), applied last. The URI (a database
    password) and the properties (a REST catalog's credential) are never printed."""

    catalog: str
    warehouse: str
    uri: str | None = field(default=None, repr=False)
    namespace: str = DEFAULT_NAMESPACE
    properties: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.catalog not in CATALOG_TYPES:
            raise ConfigError(f"LAKE_CATALOG must be one of {', '.join(CATALOG_TYPES)} (got {self.catalog!r})")
        if self.catalog in ("sql", "rest") and not self.uri:
            raise ConfigError(f"LAKE_CATALOG={self.catalog} needs LAKE_CATALOG_URI")
        if not self.warehouse:
            raise ConfigError("LAKE_WAREHOUSE must not be empty")
        if not self.namespace:
            raise ConfigError("LAKE_NAMESPACE must not be empty")

    @property
    def shared_safely(self) -> bool:
        """Whether several machines may commit through this catalog: not with a SQLite file (one machine only)."""
        return not (self.catalog == "sql" and (self.uri or "").startswith("sqlite"))

    @property
    def secrets(self) -> tuple[str, ...]:
        """What the logs must mask: the URI's password and every catalog property's value."""
        password = None
        if self.uri:
            try:
                password = urlsplit(self.uri).password
            except ValueError:
                password = None
        return tuple(s for s in (password and unquote(password), *self.properties.values()) if s)


def load_lake_settings(env: Mapping[str, str], bucket: str, prefix: str = "") -> LakeSettings | None:
    """LakeSettings from LAKE_CATALOG (unset or empty: the lake is off, None), LAKE_CATALOG_URI, LAKE_WAREHOUSE
    (default ``default_warehouse(bucket, prefix)``), LAKE_NAMESPACE (default ``twilio``) and
    LAKE_CATALOG_PROPERTIES (optional JSON object of further catalog properties, strings only)."""
    if not env_str(env, "LAKE_CATALOG"):
        return None
    kind = env_choice(env, "LAKE_CATALOG", "sql", CATALOG_TYPES)
    raw = env_str(env, "LAKE_CATALOG_PROPERTIES") or "{}"
    try:
        extra = json.loads(raw)
    except ValueError:
        raise ConfigError("LAKE_CATALOG_PROPERTIES must be a JSON object of strings (it is not JSON)") from None
    if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise ConfigError("LAKE_CATALOG_PROPERTIES must be a JSON object of strings")
    return LakeSettings(
        catalog=kind,
        uri=env_str(env, "LAKE_CATALOG_URI"),
        warehouse=env_str(env, "LAKE_WAREHOUSE") or default_warehouse(bucket, prefix),
        namespace=env_str(env, "LAKE_NAMESPACE") or DEFAULT_NAMESPACE,
        properties=extra,
    )
