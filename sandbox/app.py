"""The API listener: BulkExports v1 (/v1) and the Accounts API (/2010-04-01) with Basic auth; control (/_sandbox).

Field lists follow the OpenAPI schemas exactly (tests cross-check them against Twilio's spec file).
Every /v1 error is Twilio's JSON shape ``{code, message, more_info, status}``; control errors are
``{"error": "...", "status": 400|404}``. Routes live in sandbox.routes, one blueprint per resource; the
control API's contract is the docstring of sandbox.routes.control.
"""

from __future__ import annotations

from flask import Flask

from sandbox.routes import accounts, config, control, days, exports, hooks, jobs
from sandbox.routes.common import ApiSettings, SandboxContext
from sandbox.state import Store
from sandbox.webhooks import Notifier

__all__ = ["ApiSettings", "create_app"]


def create_app(store: Store, notifier: Notifier, settings: ApiSettings) -> Flask:
    """Build the Flask app; ``settings`` URLs may be filled in after the sockets are bound."""
    app = Flask("sandbox.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["sandbox"] = SandboxContext(store, notifier, settings)
    hooks.install(app)
    for module in (exports, config, jobs, days, accounts, control):
        app.register_blueprint(module.bp)
    return app
