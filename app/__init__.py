"""bulkexport-relay web application: ``create_app()`` wires config, services, blueprints and error handlers."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, request

if TYPE_CHECKING:
    from app.platform.config import Settings
    from app.services import Services

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    # Imported here so that importing a light module of the package (app.platform.logs, from gunicorn's logging
    # config in
    # the master process) does not pull in the whole application.
    from werkzeug.middleware.proxy_fix import ProxyFix

    from app.platform.config import load_settings
    from app.platform.logs import configure_logging
    from app.services import build_services
    from app.web.client_limits import BufferedBodies

    settings = settings or (services.settings if services else load_settings())
    configure_logging(settings.log_level, settings.secrets)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.webhook_max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Bodies are read whole, with a deadline, by the address ProxyFix gives (so inside it): app/web/client_limits.py
    app.wsgi_app = BufferedBodies(app.wsgi_app, settings)  # type: ignore[method-assign]
    if settings.proxy_fix_hops:
        hops = settings.proxy_fix_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    app.extensions["relay"] = services or build_services(settings)

    from app.cli.main import relay_cli
    from app.web import api, at_twilio_api, console, feeds_api, health, intake

    app.register_blueprint(health.bp)
    app.register_blueprint(intake.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(feeds_api.bp)
    app.register_blueprint(at_twilio_api.bp)
    console.init_app(app)  # the operator console under /console (app/web/console/)
    app.cli.add_command(relay_cli)
    _register_error_handlers(app)

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    return app


def _error(status: int, error: str, detail: str | None = None, **extra: Any) -> tuple[Response, int]:
    return jsonify(error=error, detail=detail, **extra), status


def _register_error_handlers(app: Flask) -> None:
    import redis
    from werkzeug.exceptions import HTTPException

    from app.platform.errors import DomainError
    from app.twilio.client import TwilioError, TwilioNotFound, TwilioRejected, TwilioUnavailable

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> tuple[Response, int, dict[str, str]]:
        if exc.status >= 500:
            log.warning("%s: %s", exc.title, exc)
        return (*_error(exc.status, exc.title, str(exc), **exc.details()), exc.headers())

    @app.errorhandler(TwilioNotFound)
    def twilio_not_found(exc: TwilioNotFound) -> tuple[Response, int]:
        return _error(404, "not found", str(exc))

    @app.errorhandler(TwilioRejected)
    def twilio_rejected(exc: TwilioRejected) -> tuple[Response, int]:
        return _error(422 if exc.status == 400 else 502, "rejected by Twilio", str(exc))

    @app.errorhandler(TwilioUnavailable)
    def twilio_unavailable(exc: TwilioUnavailable) -> tuple[Response, int]:
        log.warning("Twilio unavailable: %s", exc)
        return _error(503, "Twilio unavailable, try again later", str(exc))

    @app.errorhandler(TwilioError)
    def twilio_error(exc: TwilioError) -> tuple[Response, int]:
        log.warning("Twilio answered unexpectedly: %s", exc)
        return _error(502, "unexpected answer from Twilio", str(exc))

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError) -> tuple[Response, int]:
        log.error("Redis unavailable: %s", exc)
        return _error(503, "storage unavailable", "Redis is not reachable; retry later")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return _error(exc.code or 500, (exc.name or "error").lower(), exc.description)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error", "see the service logs (request id in X-Request-Id)")
