"""``relay twilio-jobs`` and ``relay twilio-days``: Twilio's own lists at a shell, read live (``GET /api/twilio/...``
over HTTP, or ``app.feeds.at_twilio`` in-process, ``app.cli.commands``): ``--json`` for scripts, a table for people."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from app.cli.commands import ACCOUNT_HELP, client, emit, errors_to_exit


def _footer(doc: dict[str, Any], what: str) -> str:
    meta = doc["meta"]
    more = f"; next: --page {meta['page'] + 1}" if meta["has_more"] else ""
    return f"({meta['total']} {what} at Twilio, page {meta['page']} of size {meta['page_size']}{more})"


def _jobs_text(doc: dict[str, Any]) -> str:
    lines = []
    for j in doc["jobs"]:
        tracked = f"tracked ({j['state']})" if j["tracked"] else "untracked"
        position = "-" if j["job_queue_position"] is None else j["job_queue_position"]
        lines.append(
            f"{j['job_sid']}  {j['start_day']}..{j['end_day']}  {tracked:<19} queue {position:<4} "
            f"ETA {j['estimated_completion_time'] or '-'}  {j['friendly_name'] or ''}"
            + (f" <{j['email']}>" if j["email"] else "")
        )
    return "\n".join([*lines, _footer(doc, f"{doc['resource_type']} job(s)")])


def _days_text(doc: dict[str, Any]) -> str:
    lines = [
        f"{d['day']}  {d['size']:>12} B  made {d['create_date'] or '-':<10}  "
        f"{'in the bucket' if d['in_bucket'] else 'bucket: ' + d['bucket']:<20} {d['friendly_name'] or ''}"
        for d in doc["days"]
    ]
    return "\n".join([*lines, _footer(doc, f"{doc['resource_type']} day file(s)")])


def _listing(func: Callable[..., None]) -> Callable[..., None]:
    """The arguments both of Twilio's lists take: a resource type, the account, the page, the format."""
    for option in (
        errors_to_exit,
        click.option("--json", "as_json", is_flag=True),
        click.option("--page-size", default="50", show_default=True),
        click.option("--page", default="0", show_default=True),
        click.option("--account", default=None, help=ACCOUNT_HELP),
        click.argument("resource_type"),
    ):
        func = option(func)
    return func


@click.command("twilio-jobs")
@_listing
def twilio_jobs_cmd(resource_type: str, account: str | None, page: str, page_size: str, as_json: bool) -> None:
    """Every RESOURCE_TYPE job Twilio has (made here or elsewhere), tracked here or not; `relay track` the others."""
    emit(client().twilio_jobs(resource_type, account, page, page_size), as_json, _jobs_text)


@click.command("twilio-days")
@_listing
def twilio_days_cmd(resource_type: str, account: str | None, page: str, page_size: str, as_json: bool) -> None:
    """Every RESOURCE_TYPE day file Twilio holds and whether the bucket has its day; `relay copy-day` the others."""
    emit(client().twilio_days(resource_type, account, page, page_size), as_json, _days_text)
