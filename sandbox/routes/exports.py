"""FetchExport: ``GET /v1/Exports/{ResourceType}``, the Export resource and its links."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from sandbox.routes.common import base, resource_type

bp = Blueprint("exports", __name__)


@bp.get("/v1/Exports/<rt>", endpoint="FetchExport")
def fetch_export(rt: str) -> Response:
    rt = resource_type(rt)
    return jsonify(
        {
            "resource_type": rt,
            "url": f"{base()}/v1/Exports/{rt}",
            "links": {
                "days": f"{base()}/v1/Exports/{rt}/Days",
                "export_custom_jobs": f"{base()}/v1/Exports/{rt}/Jobs",
                "jobs": f"{base()}/v1/Exports/Jobs",
            },
        }
    )
