"""The operator console under ``/console``: server-rendered pages over the same core as the API and the CLI.

It answers three questions without reading JSON: is every day of every feed in the bucket (overview, coverage
calendar), what is stuck or failed and can it be retried (jobs, calendar), will anyone know before Twilio deletes a
file (overview: the oldest uncopied day against the 7-day deletion). Routes are thin: every change goes through
``app.feeds.declared``, ``app.jobs.ops`` and ``app.feeds.daily_exports``, with the API's validation.

Sign-in takes CONSOLE_TOKEN (or ADMIN_TOKEN when it is not set); the session is Flask's signed cookie (HttpOnly,
SameSite=Strict, Secure as configured, path ``/console``) naming a server-side session with an absolute end that
sign-out deletes; its signing key is random, never derived from a token (``app.web.console.auth``,
``app.web.console.sessions``). Nothing is loaded from outside the relay; the Content-Security-Policy says so to the
browser.

Accounts: every view asks ``selected_account()`` which account it shows. The choice travels as a query parameter,
``?account=<sid>`` (the API's own ``?account=``), not in the session, because:
- a link says what it shows: an operator can paste a calendar of ``team-b`` to a colleague, bookmark it, or keep
  two tabs on two accounts side by side;
- an action acts on the account the operator was looking at: every form's URL carries it, so a switch made in
  another tab can never redirect a retry, a feed change or a daily-export toggle to another account (a session
  field shared by the tabs could).
``url_defaults`` adds it to every ``url_for`` inside the console (links, form actions, redirects), so no template
or view has to remember it. Without the parameter the console shows TWILIO_ACCOUNT_SID's account, as it did
with one account. An account the relay does not serve is a 404 page, never a 500. A job's pages show the job's
own account (``pin_account``), wherever the link came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register the console on the relay's Flask app (called by ``app.create_app``)."""
    from app.web.console import account, auth, calendar, feeds, jobs, overview, twilio, web  # noqa: F401 - routes
    from app.web.console.blueprint import bp

    auth.configure_sessions(app)
    app.register_blueprint(bp)
