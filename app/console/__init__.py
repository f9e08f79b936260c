"""The operator console under ``/console``: server-rendered pages over the same core as the API and the CLI.

It answers three questions without reading JSON: is every day of every feed in the bucket (overview, coverage
calendar), what is stuck or failed and can it be retried (jobs, calendar), will anyone know before Twilio deletes a
file (overview: the oldest uncopied day against the 7-day deletion). Routes are thin: every change goes through
``app.feeds``, ``app.job_ops`` and ``app.daily_exports``, with the API's validation.

Sign-in takes CONSOLE_TOKEN (or ADMIN_TOKEN when it is not set); the session is Flask's signed cookie (HttpOnly,
SameSite=Strict, Secure off loopback, path ``/console``). Its key is an HMAC of that token, so every gunicorn
worker and replica agrees on it without one more secret, and changing the token signs everyone out. Nothing is
loaded from outside the relay; the Content-Security-Policy says so to the browser.

Accounts: every view asks ``selected_account()`` which account it shows (the TWILIO_ACCOUNT_SID account for now),
so an account selector only has to change that one function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Flask

if TYPE_CHECKING:
    from app.accounts import Account

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def selected_account() -> Account:
    """The account the console shows: the relay's own (TWILIO_ACCOUNT_SID). An account selector plugs in here
    (a query parameter or session field passed to ``svc.accounts.resolve``); every view goes through this."""
    from app.context import current_services

    return current_services().accounts.primary


def init_app(app: Flask) -> None:
    """Register the console on the relay's Flask app (called by ``app.create_app``)."""
    from app.console import auth, calendar, feeds, jobs, overview, web  # noqa: F401 - routes register on bp

    auth.configure_sessions(app)
    app.register_blueprint(bp)
