"""``flask --app app relay ...``: the same operations as the HTTP API, for operators at a shell.

Runs in-process against Redis and Twilio with the service's own environment (no admin token needed: shell
access to the service's environment is already full access).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from flask.cli import with_appcontext

from app import doctor as doctor_checks
from app import job_ops, submission
from app.context import current_services as _svc
from app.errors import DomainError
from app.twilio_api import TwilioError
from app.version import version
from app.views import job_view


def emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else human(data))


def errors_to_exit(func: Callable[..., None]) -> Callable[..., None]:
    """Domain and Twilio errors become a one-line message and exit status 1, not a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except (DomainError, TwilioError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def _job_line(v: dict[str, Any]) -> str:
    counts = ", ".join(f"{k}={n}" for k, n in sorted(v["day_counts"].items())) or "no days yet"
    return f"{v['job_sid']}  {v['resource_type']:<12} {v['start_day']}..{v['end_day']}  {v['state']:<9} {counts}"


def _job_detail(v: dict[str, Any]) -> str:
    lines = [_job_line(v)]
    if v.get("error"):
        lines.append(f"  error: {v['error']}")
    if v.get("manifest_key"):
        lines.append(f"  manifest: {v['manifest_key']}")
    if at_twilio := _twilio_line(v.get("twilio") or {}):
        lines.append(at_twilio)
    for d in v.get("days") or []:
        extra = d["key"] or d["error"] or ""
        lines.append(f"  {d['day']}  {d['state']:<8} {d['twilio_status'] or '-':<22} {d['records'] or '':>8} {extra}")
    return "\n".join(lines)


def _twilio_line(snapshot: dict[str, Any]) -> str:
    """Twilio's queue position and ETA for the job, and when Twilio said so (empty for a listed day file)."""
    if "job_queue_position" not in snapshot and "estimated_completion_time" not in snapshot:
        return ""
    position = snapshot.get("job_queue_position")
    eta = snapshot.get("estimated_completion_time") or "-"
    when = f" (as of {snapshot['fetched_at']})" if snapshot.get("fetched_at") else ""
    return f"  at Twilio: queue position {position if position is not None else '-'}, ETA {eta}{when}"


ACCOUNT_HELP = "Account SID or label (needed when several are served)"


@click.group("relay")
@click.version_option(version(), prog_name="relay", message="%(prog)s %(version)s")
def relay_cli() -> None:
    """Submit and follow Twilio BulkExport jobs."""


@relay_cli.command("submit")
@click.argument("resource_type")
@click.argument("start_day")
@click.argument("end_day")
@click.option("--name", "friendly_name", default=None, help="Friendly name at Twilio")
@click.option("--email", default=None, help="Also e-mail this address when Twilio finishes")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@errors_to_exit
def submit(
    resource_type: str,
    start_day: str,
    end_day: str,
    friendly_name: str | None,
    email: str | None,
    account: str | None,
    as_json: bool,
) -> None:
    """Export RESOURCE_TYPE from START_DAY to END_DAY (inclusive, YYYY-MM-DD)."""
    body = {"resource_type": resource_type, "start_day": start_day, "end_day": end_day}
    body |= {k: v for k, v in (("friendly_name", friendly_name), ("email", email), ("account", account)) if v}
    svc = _svc()
    result = submission.submit(svc, submission.SubmitRequest.from_body(body))
    views = [job_view(svc.registry, j) for j in result.jobs]
    emit(views, as_json, lambda vs: "\n".join(_job_line(v) for v in vs))
    if result.error:
        click.echo(f"error: later chunks failed: {result.error}", err=True)
        sys.exit(1)


@relay_cli.command("list")
@click.option("--page", default=0, show_default=True)
@click.option("--page-size", default=50, show_default=True)
@click.option("--account", default=None, help="Only this account's jobs (SID or label)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@errors_to_exit
def list_jobs(page: int, page_size: int, account: str | None, as_json: bool) -> None:
    """Tracked jobs, newest first."""
    svc = _svc()
    sid = svc.accounts.resolve(account).sid if account else None
    jobs, total = svc.registry.list_jobs(offset=page * page_size, limit=page_size, account_sid=sid)
    views = [job_view(svc.registry, j) for j in jobs]
    emit(views, as_json, lambda vs: "\n".join(_job_line(v) for v in vs) + f"\n({total} tracked)")


@relay_cli.command("status")
@click.argument("job_sid")
@click.option("--refresh", is_flag=True, help="Read the job from Twilio now (and queue a sync of its days)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@errors_to_exit
def status(job_sid: str, refresh: bool, as_json: bool) -> None:
    """One job with its days; Twilio's queue position and ETA as last read (now, with --refresh)."""
    svc = _svc()
    job = job_ops.refresh(svc, job_sid) if refresh else job_ops.require_job(svc, job_sid)
    emit(job_view(svc.registry, job), as_json, _job_detail)


@relay_cli.command("cancel")
@click.argument("job_sid")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@errors_to_exit
def cancel(job_sid: str, as_json: bool) -> None:
    """Delete the job at Twilio and stop tracking its progress."""
    svc = _svc()
    emit(job_view(svc.registry, job_ops.cancel(svc, job_sid)), as_json, _job_line)


@relay_cli.command("track")
@click.argument("job_sid")
@click.option("--resource-type", default=None, help="Needed only if Twilio does not say it")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@errors_to_exit
def track(job_sid: str, resource_type: str | None, account: str | None, as_json: bool) -> None:
    """Adopt a job created elsewhere (in ACCOUNT); the poller copies its days."""
    svc = _svc()
    emit(job_view(svc.registry, job_ops.adopt(svc, job_sid, resource_type, account)), as_json, _job_line)


@relay_cli.command("requeue")
@click.argument("job_sid")
@click.argument("days", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@errors_to_exit
def requeue(job_sid: str, days: tuple[str, ...], as_json: bool) -> None:
    """Retry the job's failed days (or only DAYS)."""
    requeued = job_ops.requeue(_svc(), job_sid, list(days) or None)
    emit(
        requeued,
        as_json,
        lambda ds: f"requeued {len(ds)} day(s): {' '.join(ds)}" if ds else "nothing to requeue",
    )


@relay_cli.command("recover")
@with_appcontext
@errors_to_exit
def recover() -> None:
    """Rebuild the registry from Twilio's job lists and the bucket (after Redis lost its data; idempotent)."""
    queued = _svc().enqueuer.recover()
    click.echo("recovery queued: a worker tracks again every job of ours Twilio lists" if queued else "already queued")


@relay_cli.command("doctor")
@with_appcontext
def doctor() -> None:
    """Check the whole set-up, one line per finding (config, Redis, S3 and its store probe, Twilio); exit 1 if any
    fails. The store probe writes a few small objects under <S3_PREFIX>_relay/: run it with the workers' rights."""
    failed = False
    for finding in doctor_checks.check(_svc()):
        click.echo(finding.line())
        failed = failed or finding.level == "fail"
    if failed:
        sys.exit(1)
