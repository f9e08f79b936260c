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

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask

if TYPE_CHECKING:
    from app.twilio.accounts import Account

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


ACCOUNT_ARG = "account"


def selected_account() -> Account:
    """The account the console shows: ``?account=`` (SID or label) resolved through ``svc.accounts``, else
    TWILIO_ACCOUNT_SID's. Cached for the request; an account not served is NotFound (a 404 page).

    Without a session ``?account=`` is never resolved (the sign-in and error pages show no account anyway):
    answering with its SID, or differently for a label that does not exist, would tell an anonymous visitor
    which accounts the relay serves."""
    from flask import g, request

    from app.platform.errors import NotFound, RequestError
    from app.services import current_services
    from app.web.console.auth import signed_in

    cached: Account | None = g.get("console_account")
    if cached is not None:
        return cached
    accounts = current_services().accounts
    raw = request.args.get(ACCOUNT_ARG, "").strip()
    if not raw or not signed_in():
        account = accounts.primary
    else:
        try:
            if len(raw) > 64:
                raise RequestError("too long for an account SID or label")
            account = accounts.resolve(raw)
        except RequestError:
            raise NotFound(
                f"the account {raw[:64]!r} is not served by this relay: choose one in the account selector"
            ) from None
    g.console_account = account
    return account


def pin_account(account_sid: str) -> None:
    """Show ``account_sid`` whatever ``?account=`` said (a job's pages show the job's own account); an account
    no longer served leaves the selection as it was."""
    from flask import g

    from app.platform.errors import NotFound
    from app.services import current_services

    try:
        g.console_account = current_services().accounts.get(account_sid)
    except NotFound:
        return
    g.console_account_pinned = True


@bp.url_defaults
def keep_account(endpoint: str, values: dict[str, Any]) -> None:
    """Every console URL carries the account chosen with ``?account=`` (or pinned by a job page); never one made
    for an anonymous visitor (the sign-in redirect and page carry only the raw ``next`` path they were given)."""
    from flask import g, has_request_context, request

    from app.platform.errors import NotFound
    from app.web.console.auth import signed_in

    if endpoint == "console.static" or ACCOUNT_ARG in values or not has_request_context() or not signed_in():
        return
    if not (request.args.get(ACCOUNT_ARG) or g.get("console_account_pinned")):
        return
    try:
        values[ACCOUNT_ARG] = selected_account().sid
    except NotFound:
        return  # the 404 page itself links to the default account


def init_app(app: Flask) -> None:
    """Register the console on the relay's Flask app (called by ``app.create_app``)."""
    from app.web.console import auth, calendar, feeds, jobs, overview, twilio, web  # noqa: F401 - routes register on bp

    auth.configure_sessions(app)
    app.register_blueprint(bp)
