"""Health and metrics endpoints: cheap, unauthenticated, nothing secret in them."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from app.metrics import render

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez() -> Response:
    """Liveness: the process answers. No dependency checks, so a Redis outage never restarts every pod."""
    return jsonify(status="ok")


@bp.get("/metrics")
def metrics() -> Response:
    body, content_type = render()
    return Response(body, content_type=content_type)
