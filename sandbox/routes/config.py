"""ExportConfiguration: ``GET|POST /v1/Exports/{ResourceType}/Configuration`` (daily auto-export settings)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.routes.common import bad_param, base, ctx, resource_type, valid_url

bp = Blueprint("config", __name__)


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
    return jsonify(config_view(rt, ctx().store.get_config(rt)))


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
    return jsonify(config_view(rt, ctx().store.update_config(rt, changes)))
