"""The ``relay`` command (``pip install .``: ``[project.scripts]``) and the one place its group gets every command.

``create_app`` adds the same group to ``flask --app app relay``. Importing this module creates no Flask app and
reads no setting: ``relay --version`` and the remote mode (``--url``) need none; the in-process mode reads the
environment when a command first needs the service (``app.cli.local``).
"""

from __future__ import annotations

from app.cli.at_twilio import twilio_days_cmd, twilio_jobs_cmd
from app.cli.commands import relay_cli
from app.cli.feeds import accounts_cmd, copy_day_cmd, coverage_cmd, daily_cli, feed_cli, verify_cmd
from app.cli.migrate_layout import migrate_layout_cmd
from app.cli.retention import delete_day_cmd, lifecycle_rule_cmd, restore_day_cmd

for command in (
    feed_cli,
    coverage_cmd,
    daily_cli,
    copy_day_cmd,
    delete_day_cmd,
    restore_day_cmd,
    lifecycle_rule_cmd,
    accounts_cmd,
    verify_cmd,
    migrate_layout_cmd,
    twilio_jobs_cmd,
    twilio_days_cmd,
):
    relay_cli.add_command(command)


def main() -> None:
    """``relay ...``: click parses, and every failure leaves as one line and an exit status (``app.cli.commands``)."""
    relay_cli.main(prog_name="relay")


if __name__ == "__main__":
    main()
