"""The S3 section: bucket, prefix, key template (and its rules, shared with ``relay migrate-layout --to``),
encryption, storage class, the single-PUT size, where the digest goes."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from app.platform.config.env import env_choice, env_int, env_str
from app.platform.config.settings import DEFAULT_S3_PREFIX, DEFAULT_SINGLE_PUT_MAX_MIB, ConfigError

S3_ADDRESSING_STYLES = ("auto", "path", "virtual")


def s3_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Bucket, prefix, key template, encryption, storage class and the single-PUT size (Settings fields)."""
    s3_prefix = env_str(env, "S3_PREFIX", DEFAULT_S3_PREFIX) or ""
    if s3_prefix and not s3_prefix.endswith("/"):
        s3_prefix += "/"
    sse = env_str(env, "S3_SSE")
    if sse is not None and sse not in ("AES256", "aws:kms"):
        raise ConfigError(f"S3_SSE must be AES256 or aws:kms (got {sse!r})")
    key_template = env_str(env, "S3_KEY_TEMPLATE")
    if key_template is not None:
        _check_key_template(key_template)
    kms_key = env_str(env, "S3_SSE_KMS_KEY_ID")
    if kms_key and sse != "aws:kms":
        raise ConfigError("S3_SSE_KMS_KEY_ID needs S3_SSE=aws:kms")
    # Read by make_s3_client (botocore takes it only from its config file); checked here so every process,
    # the web included, refuses a bad value at start-up.
    env_choice(env, "AWS_S3_ADDRESSING_STYLE", "auto", S3_ADDRESSING_STYLES)
    return {
        "s3_bucket": env_str(env, "S3_BUCKET", required=True) or "",
        "s3_prefix": s3_prefix,
        "s3_key_template": key_template,
        "s3_sse": sse,
        "s3_sse_kms_key_id": kms_key,
        "s3_storage_class": _storage_class(env),
        "s3_single_put_max_mib": _single_put_max(env),
        # auto: object tags where the store probe found them safe, else the job manifests only (app/bucket/probe.py)
        "s3_object_tags": env_choice(env, "S3_OBJECT_TAGS", "auto", ("auto", "on", "off")),
    }


def _single_put_max(env: Mapping[str, str]) -> int:
    """Day files up to this many MiB are held in memory and written with one PutObject (see workers.sink)."""
    value = env_int(env, "S3_SINGLE_PUT_MAX_MIB", DEFAULT_SINGLE_PUT_MAX_MIB)
    if value > 256:
        raise ConfigError(f"S3_SINGLE_PUT_MAX_MIB must be <= 256: each worker holds that much in memory (got {value})")
    return value


def _storage_class(env: Mapping[str, str]) -> str | None:
    """A typo here would fail every copy after hours of retries: check it against botocore's S3 model."""
    value = env_str(env, "S3_STORAGE_CLASS")
    if value is None:
        return None
    import botocore.session

    known = botocore.session.get_session().get_service_model("s3").shape_for("StorageClass").enum
    if value not in known:
        raise ConfigError(f"S3_STORAGE_CLASS must be one of {', '.join(known)} (got {value!r})")
    return value


KEY_TEMPLATE_FIELDS = ("prefix", "resource_type", "day", "job_sid", "account_sid")


def key_template_fields(template: str) -> set[str]:
    """The replacement fields of a str.format template as ``format`` will fill them (not its text: ``{{day}}``
    is the literal text "{day}", no field); none if it does not parse."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return set()


def _check_key_template(template: str) -> None:
    """Every (resource type, day) must get its own key, so only bare known fields are allowed.

    A format spec or conversion (``{day:.4}``, ``{day!r}``) or an attribute/index access (``{day[0]}``) can make
    different days render the same text (``{day:.4}`` is the year), and one day file would overwrite another.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"S3_KEY_TEMPLATE is not a valid template: {exc}") from None
    fields = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if conversion is not None or spec:
            raise ConfigError(f"S3_KEY_TEMPLATE: {{{name}}} may not carry a conversion or format spec")
        if name not in KEY_TEMPLATE_FIELDS:
            raise ConfigError(
                f"S3_KEY_TEMPLATE uses an unknown field {name!r} (allowed: {', '.join(KEY_TEMPLATE_FIELDS)})"
            )
        fields.add(name)
    if not {"day", "resource_type"} <= fields:
        raise ConfigError("S3_KEY_TEMPLATE must contain {resource_type} and {day}")


def check_key_template(template: str, several_accounts: bool) -> None:
    """S3_KEY_TEMPLATE's rules for any key template (``relay migrate-layout --to`` too): ConfigError unless valid,
    and, when several accounts are served, unless it contains {account_sid}."""
    _check_key_template(template)
    if several_accounts:
        check_account_field(template)


def check_account_field(template: str) -> None:
    if "account_sid" not in key_template_fields(template):
        raise ConfigError(
            "S3_KEY_TEMPLATE must contain {account_sid} when several Twilio accounts are served "
            "(e.g. {prefix}{resource_type}/account={account_sid}/day={day}/{resource_type}-{day}.json.gz)"
        )
