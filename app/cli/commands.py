"""``relay ...`` (and ``flask --app app relay ...``): the operations of the HTTP API, for operators at a shell.

With ``--url`` and ``--token`` (or ``RELAY_URL`` / ``RELAY_TOKEN``) every command speaks the HTTP API and needs
nothing else; without them it runs in-process with the service's own environment (Redis, Twilio, settings). The
commands are written once over ``app.cli.client.Client`` and render the API's documents (``--json`` prints them
as they are, a table for people), so a command answers the same either way. Every failure is one line on stderr
and an exit status from ``app.cli.client.EXIT_CODES``, never a traceback. The commands of the other modules are
added to the group by ``app.cli.main``, which is also the ``relay`` entry point.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click

from app.cli.client import EXIT_CODES, EXIT_CONFIG, EXIT_ERROR, EXIT_USAGE, Client, CliFailure, HttpClient
from app.platform.version import version

URL_KEY, TOKEN_KEY = "relay.url", "relay.token"


def emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else human(data))


def fail(failure: CliFailure) -> NoReturn:
    click.echo(f"error: {failure}", err=True)
    sys.exit(failure.exit_code)


def errors_to_exit(func: Callable[..., None]) -> Callable[..., None]:
    """Every error becomes one line on stderr and its exit status (``app.cli.client.EXIT_CODES``), not a
    traceback: the API's answers over HTTP, the core's errors in-process (``app.cli.local.failure``)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CliFailure as exc:
            fail(exc)
        except Exception as exc:
            from app.cli.local import failure

            fail(failure(exc) or CliFailure(f"unexpected {type(exc).__name__}: {exc}", EXIT_ERROR))

    return wrapper


def remote() -> tuple[str, str] | None:
    """The relay's URL and token when the command speaks HTTP; None in-process."""
    meta = click.get_current_context().meta
    url, token = meta.get(URL_KEY), meta.get(TOKEN_KEY)
    if not url:
        return None
    check_url(url)
    if not token:
        raise CliFailure("--url needs the API's token: give --token or set RELAY_TOKEN", EXIT_CONFIG)
    return url, token


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def check_url(url: str) -> None:
    """An http(s) URL with a host; plain http only to this machine (a port-forward, a tunnel): the token must
    not cross a network in clear text."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliFailure(f"--url must be https://HOST[:PORT] (got {url!r})", EXIT_USAGE)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise CliFailure(
            f"--url: refusing to send the token over plain http to {parts.hostname}: use https "
            "(or a tunnel to localhost)",
            EXIT_USAGE,
        )


def client() -> Client:
    """HTTP with --url, else in-process (imported only then: the remote mode needs no setting of the service)."""
    if where := remote():
        return HttpClient(*where)
    from app.cli.local import LocalClient, services

    return LocalClient(services())


def local_only(command: str) -> None:
    """Commands the API does not offer run in-process only: say so in one line (exit 2) rather than guess."""
    if click.get_current_context().meta.get(URL_KEY):
        raise CliFailure(
            f"relay {command} runs in-process only (no API for it): run it without --url/RELAY_URL, "
            "where the service's environment is",
            EXIT_USAGE,
        )


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


EPILOG = "\b\nExit statuses:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())


@click.group("relay", epilog=EPILOG)
@click.version_option(version(), prog_name="relay", message="%(prog)s %(version)s")
@click.option("--url", envvar="RELAY_URL", default=None, help="Use the relay at URL over HTTP (env RELAY_URL)")
@click.option("--token", envvar="RELAY_TOKEN", default=None, help="Its API token (env RELAY_TOKEN)")
@click.pass_context
def relay_cli(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Submit and follow Twilio BulkExport jobs: over HTTP with --url and --token, else in-process."""
    # ctx.meta, not ctx.obj: under `flask relay` the object is Flask's ScriptInfo
    ctx.meta[URL_KEY], ctx.meta[TOKEN_KEY] = url, token


@relay_cli.command("submit")
@click.argument("resource_type")
@click.argument("start_day")
@click.argument("end_day")
@click.option("--name", "friendly_name", default=None, help="Friendly name at Twilio")
@click.option("--email", default=None, help="Also e-mail this address when Twilio finishes")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
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
    views, error = client().submit(body)
    emit(views, as_json, lambda vs: "\n".join(_job_line(v) for v in vs))
    if error:
        fail(CliFailure(f"later chunks failed: {error}"))


@relay_cli.command("list")
@click.option("--page", default=0, show_default=True)
@click.option("--page-size", default=50, show_default=True)
@click.option("--account", default=None, help="Only this account's jobs (SID or label)")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def list_jobs(page: int, page_size: int, account: str | None, as_json: bool) -> None:
    """Tracked jobs, newest first."""
    doc = client().list_jobs(page, page_size, account)
    emit(doc, as_json, _jobs_text)


def _jobs_text(doc: dict[str, Any]) -> str:
    lines = [_job_line(v) for v in doc["jobs"]]
    return "\n".join([*lines, f"({doc['meta']['total']} tracked)"])


@relay_cli.command("status")
@click.argument("job_sid")
@click.option("--refresh", is_flag=True, help="Read the job from Twilio now (and queue a sync of its days)")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def status(job_sid: str, refresh: bool, as_json: bool) -> None:
    """One job with its days; Twilio's queue position and ETA as last read (now, with --refresh)."""
    emit(client().job(job_sid, refresh), as_json, _job_detail)


@relay_cli.command("cancel")
@click.argument("job_sid")
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def cancel(job_sid: str, as_json: bool) -> None:
    """Delete the job at Twilio and stop tracking its progress."""
    emit(client().cancel(job_sid), as_json, _job_line)


@relay_cli.command("track")
@click.argument("job_sid")
@click.option("--resource-type", default=None, help="Needed only if Twilio does not say it")
@click.option("--account", default=None, help=ACCOUNT_HELP)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def track(job_sid: str, resource_type: str | None, account: str | None, as_json: bool) -> None:
    """Adopt a job created elsewhere (in ACCOUNT); the poller copies its days."""
    emit(client().track(job_sid, resource_type, account), as_json, _job_line)


@relay_cli.command("requeue")
@click.argument("job_sid")
@click.argument("days", nargs=-1)
@click.option("--json", "as_json", is_flag=True)
@errors_to_exit
def requeue(job_sid: str, days: tuple[str, ...], as_json: bool) -> None:
    """Retry the job's failed days (or only DAYS)."""
    doc = client().requeue(job_sid, list(days) or None)
    emit(doc, as_json, _requeued_text)


def _requeued_text(doc: dict[str, Any]) -> str:
    days = doc["requeued"]
    return f"requeued {len(days)} day(s): {' '.join(days)}" if days else "nothing to requeue"


@relay_cli.command("recover")
@errors_to_exit
def recover() -> None:
    """Rebuild the registry from Twilio's job lists and the bucket (after Redis lost its data; idempotent).
    In-process only."""
    local_only("recover")
    from app.cli.local import services

    queued = services().enqueuer.recover()
    click.echo("recovery queued: a worker tracks again every job of ours Twilio lists" if queued else "already queued")


@relay_cli.command("doctor")
@errors_to_exit
def doctor() -> None:
    """Check the whole set-up, one line per finding (config, Redis, S3 and its store probe, Twilio); exit 1 if any
    fails. The store probe writes a few small objects under <S3_PREFIX>_relay/: run it with the workers' rights.
    In-process only."""
    local_only("doctor")
    from app.cli import doctor as doctor_checks
    from app.cli.local import services

    failed = False
    for finding in doctor_checks.check(services()):
        click.echo(finding.line())
        failed = failed or finding.level == "fail"
    if failed:
        sys.exit(EXIT_ERROR)
