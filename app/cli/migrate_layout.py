"""``relay migrate-layout`` (in-process only, like ``relay verify``): move the stored days to another key template
(app/bucket/migrate_layout.py). ``--dry-run`` prints the plan from coverage alone; otherwise a worker copies (only the
workers' role may read and write objects) and this waits for its report."""

from __future__ import annotations

import sys
from typing import Any

import click

from app.cli.client import EXIT_ERROR, CliFailure
from app.cli.commands import ACCOUNT_HELP, emit, errors_to_exit, fail, local_only


@click.command("migrate-layout")
@click.option("--to", "template", required=True, help="The new key template (S3_KEY_TEMPLATE's fields and rules)")
@click.option("--dry-run", is_flag=True, help="Print the plan (old key -> new key) and change nothing")
@click.option("--delete-old", is_flag=True, help="Delete each old object once its copy is verified and recorded")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option(
    "--wait", default=3600, show_default=True, help="Seconds to wait for the worker's report (and it may run)"
)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def migrate_layout_cmd(
    template: str, dry_run: bool, delete_old: bool, account: str | None, wait: int, as_json: bool
) -> None:
    """Copy every copied day to the keys of the template TO inside the bucket (no download, no quota), verify and
    record each, so that S3_KEY_TEMPLATE can then be switched to it; exit 1 if any day could not be moved.

    Safe to run again: days already moved are skipped, a killed run continues. Switch S3_KEY_TEMPLATE once it
    reports no problem. In-process only."""
    local_only("migrate-layout")
    from rq.results import Result

    from app.bucket import migrate_layout
    from app.cli.local import services

    svc = services()
    migrate_layout.validate_template(svc, template)
    account_sid = svc.accounts.resolve(account).sid if account else None
    doc: dict[str, Any]
    if dry_run:
        doc = migrate_layout.summary(migrate_layout.plan(svc, template, account_sid))
    else:
        task = svc.enqueuer.migrate_layout(template, account_sid, delete_old, timeout=max(60, wait))
        result = task.latest_result(timeout=max(1, wait))
        if result is None or result.type != Result.Type.SUCCESSFUL:
            why = "no report yet (are workers running?)" if result is None else (result.exc_string or "").strip()
            fail(CliFailure(f"migration task {task.id}: {why.splitlines()[-1] if why else 'failed'}"))
        doc = result.return_value or {}
    emit(doc, as_json, migrate_layout.summary_text)
    if doc["problems"]:
        sys.exit(EXIT_ERROR)
