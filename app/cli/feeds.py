"""``relay feed ...``, ``relay coverage``, ``relay daily ...``, ``relay copy-day``, ``relay accounts`` (over HTTP
or in-process, ``app.cli.commands``) and ``relay verify`` (in-process only): continuous sync at a shell, same rules and
documents as the API."""

from __future__ import annotations

import calendar
import sys
from datetime import date
from typing import Any

import click

from app.cli.client import EXIT_ERROR, CliFailure
from app.cli.commands import ACCOUNT_HELP, client, emit, errors_to_exit, fail, local_only
from app.platform.days import days_between

SYMBOLS = {
    "copied": "#",
    "empty": ".",
    "in_flight": "~",
    "failed": "!",
    "corrupt": "x",
    "missing": "_",
    "deleted": "-",
    "expired": "'",
}
LEGEND = "  ".join(f"{mark} {state}" for state, mark in SYMBOLS.items()) + "  (blank: outside the feed)"


@click.group("feed")
def feed_cli() -> None:
    """Feeds: keep a resource type complete in the bucket from a day onward."""


def _feed_line(v: dict[str, Any]) -> str:
    until = v["until"] or "(ongoing)"
    state = "enabled" if v["enabled"] else "disabled"
    retain = f"  retain {v['retain_days']} days" if v.get("retain_days") else ""
    return (
        f"{v['resource_type']:<12} since {v['since']} until {until:<10}  {state:<8} managed by {v['managed_by']}"
        + retain
    )


@feed_cli.command("set")
@click.argument("resource_type")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--since", required=True, help="First day to keep (YYYY-MM-DD)")
@click.option("--until", default=None, help="Last day, for a bounded backfill")
@click.option("--disabled", is_flag=True, help="Keep the feed but stop planning it")
@click.option("--retain-days", type=int, default=None, help="Keep only the last N days (older days: expired)")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def set_feed(
    resource_type: str,
    account: str | None,
    since: str,
    until: str | None,
    disabled: bool,
    retain_days: int | None,
    as_json: bool,
) -> None:
    body = {"since": since, "until": until, "enabled": not disabled, "retain_days": retain_days}
    emit(client().put_feed(resource_type, account, body), as_json, _feed_line)


@feed_cli.command("list")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def list_feeds(as_json: bool) -> None:
    emit(client().list_feeds(), as_json, lambda doc: "\n".join(_feed_line(v) for v in doc["feeds"]) or "no feeds")


@feed_cli.command("show")
@click.argument("resource_type")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def show_feed(resource_type: str, account: str | None, as_json: bool) -> None:
    emit(client().feed(resource_type, account), as_json, _feed_line)


@feed_cli.command("delete")
@click.argument("resource_type")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@errors_to_exit
def delete_feed(resource_type: str, account: str | None) -> None:
    """Stop planning the feed (copied data and jobs in flight are untouched)."""
    feed = client().delete_feed(resource_type, account)
    click.echo(f"feed {feed['resource_type']} deleted")


@click.command("coverage")
@click.argument("resource_type", required=False)
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--from", "first", default=None, help="First day shown (YYYY-MM-DD)")
@click.option("--to", "last", default=None, help="Last day shown")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def coverage_cmd(
    resource_type: str | None, account: str | None, first: str | None, last: str | None, as_json: bool
) -> None:
    """Which days of each feed are in the bucket: counts, then a month per line."""
    query = {"resource_type": resource_type, "from": first, "to": last, "account": account}
    doc = client().coverage({k: v for k, v in query.items() if v is not None})
    emit(doc, as_json, _calendar_text)


def _calendar_text(doc: dict[str, Any]) -> str:
    quota = doc["quota"]
    lines = [
        f"today {doc['today']} (UTC); quota used {quota['used_today']}/{quota['limit']}, "
        f"{quota['left_for_feeds']} left for feeds, resets {quota['resets_at']}",
        f"legend: {LEGEND}",
    ]
    for feed in doc["feeds"]:
        counts = ", ".join(f"{s} {n}" for s, n in feed["counts"].items() if n)
        lag = "no day copied yet" if feed["lag_days"] is None else f"lag {feed['lag_days']} day(s)"
        lines += ["", f"{feed['resource_type']}  {feed['shown'][0]}..{feed['shown'][1]}  {counts}  ({lag})"]
        if feed["waiting_for_quota"]:
            lines.append(f"  {feed['waiting_for_quota']} missing day(s) wait for quota (resets {quota['resets_at']})")
        if "lake" in feed:  # with a lake (docs/lake.md): copied days loaded into its table
            lake = feed["lake"]
            lines.append(f"  lake: loaded {lake['loaded']}, failed {lake['failed']}, waiting {lake['waiting']}")
            lines += [f"    {day} lake failed: {why}" for day, why in lake["failed_days"].items()]
        lines += _months(feed)
    return "\n".join(lines)


def _months(feed: dict[str, Any]) -> list[str]:
    """One line per month: a character per day, so three years fit on one screen."""
    state_of = {}
    for state, ranges in feed["ranges"].items():
        for first, last in ranges:
            for day in days_between(date.fromisoformat(first), date.fromisoformat(last)):
                state_of[day] = state
    first, last = date.fromisoformat(feed["shown"][0]), date.fromisoformat(feed["shown"][1])
    lines, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        days = calendar.monthrange(year, month)[1]
        marks = "".join(
            SYMBOLS.get(state_of.get(f"{year:04d}-{month:02d}-{d:02d}", ""), " ") for d in range(1, days + 1)
        )
        lines.append(f"  {year:04d}-{month:02d} {marks}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return lines


@click.command("verify")
@click.option("--feed", "resource_type", default=None, help="Only this resource type's feed")
@click.option("--account", default=None, help="Only this account's feeds (SID or label)")
@click.option("--from", "first", default=None, help="First day checked (YYYY-MM-DD)")
@click.option("--to", "last", default=None, help="Last day checked")
@click.option("--repair", is_flag=True, help="Copy problem days again from the files Twilio still lists")
@click.option(
    "--wait", default=3600, show_default=True, help="Seconds to wait for the worker's report (and it may run)"
)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def verify_cmd(
    resource_type: str | None,
    account: str | None,
    first: str | None,
    last: str | None,
    repair: bool,
    wait: int,
    as_json: bool,
) -> None:
    """Re-read each copied day's object and check its sha256 and record count; exit 1 if any day fails.

    A worker reads the objects (only the workers' role may): this queues the check and waits for its report.
    In-process only."""
    local_only("verify")
    from rq.results import Result

    from app.bucket import verify
    from app.cli.local import services
    from app.platform.validation import parse_day, validate_resource_type

    svc = services()
    args = (
        validate_resource_type(resource_type) if resource_type else None,
        svc.accounts.resolve(account).sid if account else None,
        parse_day(first, "--from").isoformat() if first else None,
        parse_day(last, "--to").isoformat() if last else None,
        repair,
    )
    task = svc.enqueuer.verify(args, timeout=max(60, wait))
    result = task.latest_result(timeout=max(1, wait))
    if result is None or result.type != Result.Type.SUCCESSFUL:
        why = "no report yet (are workers running?)" if result is None else (result.exc_string or "").strip()
        fail(CliFailure(f"verification task {task.id}: {why.splitlines()[-1] if why else 'failed'}"))
    doc: dict[str, Any] = result.return_value or {}
    emit(doc, as_json, verify.summary_text)
    if doc["problems"]:
        sys.exit(EXIT_ERROR)


@click.group("daily")
def daily_cli() -> None:
    """Twilio's daily auto-export (ExportConfiguration; needs Twilio Editions)."""


def _daily_line(v: dict[str, Any]) -> str:
    hook = {"relay": "webhook: this relay", "other": "webhook: another URL", None: "no webhook"}[v["webhook"]]
    return f"{v['resource_type']:<12} daily export {'enabled' if v['enabled'] else 'disabled'}  ({hook})"


@daily_cli.command("show")
@click.argument("resource_type")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def daily_show(resource_type: str, account: str | None, as_json: bool) -> None:
    emit(client().daily(resource_type, account), as_json, _daily_line)


@daily_cli.command("enable")
@click.argument("resource_type")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@errors_to_exit
def daily_enable(resource_type: str, account: str | None) -> None:
    """Have Twilio export every day by itself and call this relay (no quota spent on those days)."""
    click.echo(_daily_line(client().set_daily(resource_type, account, True)))


@daily_cli.command("disable")
@click.argument("resource_type")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@errors_to_exit
def daily_disable(resource_type: str, account: str | None) -> None:
    click.echo(_daily_line(client().set_daily(resource_type, account, False)))


@click.command("copy-day")
@click.argument("resource_type")
@click.argument("day")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def copy_day_cmd(resource_type: str, day: str, account: str | None, as_json: bool) -> None:
    """Copy one day file Twilio lists (made by a daily export, the Console, another tool): no quota spent."""
    job = client().copy_day(resource_type, day, account)
    emit(job, as_json, _copy_queued_line)


def _copy_queued_line(j: dict[str, Any]) -> str:
    return f"{j['job_sid']}  {j['resource_type']} {j['start_day']}: copy queued (relay status {j['job_sid']})"


@click.command("accounts")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def accounts_cmd(as_json: bool) -> None:
    """The Twilio accounts this relay serves, and their state (never a credential)."""
    emit(client().accounts(), as_json, _accounts_text)


def _name(account: dict[str, Any]) -> str:
    """Its label; else Twilio's name in parentheses (shown, not a label: shared with another account); else "-"."""
    if account["label"]:
        return str(account["label"])
    return f"({account['friendly_name']})" if account.get("friendly_name") else "-"


def _accounts_text(doc: dict[str, Any]) -> str:
    lines = [
        f"{a['sid']}  {_name(a):<20} family {a['family'][:10]}…  {a['source']:<10} {a['state']}"
        + (f"  ({a['error']})" if a["error"] else "")
        for a in doc["accounts"]
    ]
    if doc["discovery_error"]:
        lines.append(f"subaccount discovery failed: {doc['discovery_error']}")
    return "\n".join(lines)
