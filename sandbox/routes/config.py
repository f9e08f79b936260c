"""ExportConfiguration: ``GET|POST /v1/Exports/{ResourceType}/Configuration`` (daily auto-export settings).

Per account and resource type: ``enabled`` (false), ``webhook_url`` and ``webhook_method`` ("" when
unset, as in Twilio's doc example). Every form field is optional. ``Enabled=true`` on an account
without Twilio Editions (scenario ``editions: false``, or the account's own ``editions: false``) is
refused with **403 / code 20403** "Daily automatic exports (ExportConfiguration Enabled=true) are
available to Twilio Editions accounts only" and changes nothing; Twilio does not document this answer,
so the code is a guess shaped like Twilio's permission errors. What an enabled configuration does at
each simulated midnight is described in sandbox.state.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.routes.common import TwilioError, account_sid, bad_param, base, ctx, resource_type, valid_url
from sandbox.state import EditionsRequired

bp = Blueprint("config", __name__)

EDITIONS_MESSAGE = (
    "Daily automatic exports (ExportConfiguration Enabled=true) are available to Twilio Editions accounts only"
)


def config_view(rt: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The export_configuration schema, in the spec's property order."""
    return {
        "enabled": cfg["enabled"],
        "webhook_url": cfg["webhook_url"],
        "webhook_method": cfg["webhook_method"],
        "resource_type": rt,
        "url": f"{base()}/v1/Exports/{rt}/Configuration",
    }


@bp.get("/v1/Exports/<rt>/Configuration", endpoint="FetchExportConfiguration")
def fetch_configuration(rt: str) -> Response:
    rt = resource_type(rt)
    return jsonify(config_view(rt, ctx().store.get_config(account_sid(), rt)))


def config_changes(form: Any) -> dict[str, Any]:
    """Validate the optional Enabled, WebhookUrl, WebhookMethod form fields into stored changes."""
    changes: dict[str, Any] = {}
    if "Enabled" in form:
        value = form["Enabled"].strip().lower()
        if value not in ("true", "false"):
            raise bad_param(f"Invalid Enabled: {form['Enabled']!r} is not a boolean")
        changes["enabled"] = value == "true"
    if "WebhookUrl" in form:
        url = form["WebhookUrl"]
        if url and not valid_url(url):
            raise bad_param(f"Invalid WebhookUrl: {url!r} is not an absolute http(s) URL")
        changes["webhook_url"] = url
    if "WebhookMethod" in form:
        method = form["WebhookMethod"].upper()
        if method and method not in ("GET", "POST"):
            raise bad_param(f"Invalid WebhookMethod: {form['WebhookMethod']!r}; use GET or POST")
        changes["webhook_method"] = method
    return changes


@bp.post("/v1/Exports/<rt>/Configuration", endpoint="UpdateExportConfiguration")
def update_configuration(rt: str) -> Response:
    rt = resource_type(rt)
    changes = config_changes(request.form)
    try:
        cfg = ctx().store.update_config(account_sid(), rt, changes)
    except EditionsRequired:
        raise TwilioError(403, 20403, EDITIONS_MESSAGE) from None
    return jsonify(config_view(rt, cfg))
