"""``relay delete-day``, ``relay restore-day`` and ``relay lifecycle-rule`` (over HTTP or in-process,
``app.cli.commands``): days deleted on purpose stay deleted (app/feeds/tombstones.py), and the bucket's lifecycle
rules match the feeds' retain_days (app/feeds/lifecycle_rule.py)."""

from __future__ import annotations

import json
from typing import Any

import click

from app.cli.commands import ACCOUNT_HELP, client, emit, errors_to_exit


@click.command("delete-day")
@click.argument("resource_type")
@click.argument("day")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--reason", default=None, help="Why (kept with the tombstone, shown in coverage)")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def delete_day_cmd(resource_type: str, day: str, account: str | None, reason: str | None, as_json: bool) -> None:
    """Delete the day's object(s) from S3 (on a worker) and keep the day deleted: the relay never fetches it
    again until ``relay restore-day`` or ``relay copy-day``."""
    emit(client().delete_day(resource_type, day, account, reason), as_json, _deleted_line)


def _deleted_line(d: dict[str, Any]) -> str:
    why = f" ({d['reason']})" if d.get("reason") else ""
    return f"{d['resource_type']} {d['day']}: deleted by {d['deleted_by']}{why}; a worker deletes its object(s)"


@click.command("restore-day")
@click.argument("resource_type")
@click.argument("day")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def restore_day_cmd(resource_type: str, day: str, account: str | None, as_json: bool) -> None:
    """Lift a deleted day's tombstone: it is missing again, and the planner fetches it inside the feed's window."""
    emit(
        client().restore_day(resource_type, day, account),
        as_json,
        lambda d: f"{d['resource_type']} {d['day']}: restored (missing until fetched again)",
    )


@click.command("lifecycle-rule")
@click.option("--full", is_flag=True, help="The whole document (rules, feeds without a prefix, notes)")
@errors_to_exit
def lifecycle_rule_cmd(full: bool) -> None:
    """Print the S3 lifecycle configuration equivalent to the feeds' retain_days (for
    ``aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration file://...``); what cannot be
    expressed, and notes, go to stderr."""
    doc = client().lifecycle_rule()
    if full:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(json.dumps(doc["lifecycle_configuration"], indent=2))
    for feed in doc["underivable"]:
        click.echo(f"no rule for {feed['resource_type']} ({feed['account']}): {feed['why']}", err=True)
    for note in doc["notes"]:
        click.echo(f"note: {note}", err=True)
