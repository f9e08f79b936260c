"""Which account a console page shows: ``?account=`` on every console URL (``app.web.console`` says why)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import g, has_request_context, request

from app.platform.errors import NotFound, RequestError
from app.services import current_services
from app.web.console.auth import signed_in
from app.web.console.blueprint import bp

if TYPE_CHECKING:
    from app.twilio.accounts import Account

ACCOUNT_ARG = "account"


def selected_account() -> Account:
    """The account the console shows: ``?account=`` (SID or label) resolved through ``svc.accounts``, else
    TWILIO_ACCOUNT_SID's. Cached for the request; an account not served is NotFound (a 404 page).

    Without a session ``?account=`` is never resolved (the sign-in and error pages show no account anyway):
    answering with its SID, or differently for a label that does not exist, would tell an anonymous visitor
    which accounts the relay serves."""
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
    try:
        g.console_account = current_services().accounts.get(account_sid)
    except NotFound:
        return
    g.console_account_pinned = True


@bp.url_defaults
def keep_account(endpoint: str, values: dict[str, Any]) -> None:
    """Every console URL carries the account chosen with ``?account=`` (or pinned by a job page); never one made
    for an anonymous visitor (the sign-in redirect and page carry only the raw ``next`` path they were given)."""
    if endpoint == "console.static" or ACCOUNT_ARG in values or not has_request_context() or not signed_in():
        return
    if not (request.args.get(ACCOUNT_ARG) or g.get("console_account_pinned")):
        return
    try:
        values[ACCOUNT_ARG] = selected_account().sid
    except NotFound:
        return  # the 404 page itself links to the default account
