"""A local stand-in for Twilio BulkExports v1, for integration/e2e tests, ``make demo`` and benchmarks.

Run it with ``python -m sandbox`` (see sandbox/__main__.py for flags) or, from Python, with
:class:`devstack.sandbox_process.SandboxProcess`. Two listeners:

- API (``api=``): Twilio's REST paths under ``/v1`` (BulkExports) and ``/2010-04-01`` (the Accounts
  API) with HTTP Basic auth, plus an unauthenticated control API under ``/_sandbox`` (scenario, faults,
  clock, accounts, inspection logs; its contract is the docstring of sandbox.routes.control).
- Files (``files=``): stands in for Twilio's S3 bucket behind FetchDay's presigned links.

Modules: app (builds the API listener from the blueprints in routes/: exports, config, jobs, days,
accounts, control; hooks and common are shared), files (file listener), content (deterministic gzip
day files), scenario (scenario/fault plans), clock (the one sandbox clock: "now" and "today"),
accounts (accounts, subaccounts, credentials), model (jobs, day files, links, events), state (all of
it under one lock, daily auto-export), webhooks (signed callbacks). The process wrapper lives in
devstack (dev-only, not in the image).

Decisions (what the spec leaves open, and what we mimic)
-----------------------------------------------------------
Errors
    Every /v1 error is Twilio's JSON ``{code, message, more_info, status}``. Codes: 401/20003
    "Authenticate" (with ``WWW-Authenticate: Basic``); 404/20404 for unknown paths, unknown or
    wrongly cased ResourceType, malformed or unknown JobSid, and a Day without a file; 405/20004;
    400/20001 for every invalid parameter (missing StartDay/EndDay/FriendlyName, bad dates, EndDay
    later than today-2 UTC, StartDay after EndDay, WebhookUrl without WebhookMethod or the reverse,
    a method other than GET/POST, a non-http(s) URL, PageSize outside 1..400 (Days) or 1..1000
    (Jobs), a bad Page or PageToken); injected 429/20429 (with ``Retry-After``) and 500/20500;
    403/20005 "Account not active" for a suspended account; 403/20403 for ExportConfiguration
    Enabled=true without Editions (see sandbox.routes.config). Authentication is checked before
    anything else; faults only hit authenticated requests.
Clock
    One clock (real time plus an offset, see sandbox.clock) gives "now" and "today" (UTC). Tests set
    it (``today`` = 00:00:00 UTC of that day, or an exact ``now``) or move it forward (``advance``,
    ``advance_days``) through POST /_sandbox/clock. EndDay validation, the quota day, ``create_date``
    and daily exports all read it.
Quota
    At most ``daily_quota_days`` (366) requested days per simulated UTC day for a family (a parent
    account and all its subaccounts together), counted at creation; a new simulated day starts a new
    count. Going over is answered **400 / code 20001** with a message that starts "Export quota
    exceeded" (a 429 would invite clients to retry a request that cannot succeed before the next UTC
    day). GET /_sandbox/quota shows the count per day.
Accounts
    The default account (``--account-sid``/``--auth-token``, optional API key) always exists; the
    control API adds main accounts and subaccounts, API keys, suspends, rotates and revokes. Jobs,
    day files and export configurations are per account: another account's JobSid is a 404. See
    sandbox.accounts and sandbox.routes.accounts (ListAccount/FetchAccount with auth tokens).
Create quirk
    The 201 answer of CreateExportCustomJob has ``resource_type`` and ``details`` null, as in a real
    2020 capture; everything else is filled. FetchJob and the job list show them filled.
Fields
    Exactly the spec's schema properties: list items of ListExportCustomJob and the create answer
    have no ``url``; FetchJob has ``url``; Day list items are ``day, size, create_date (yyyy-mm-dd),
    friendly_name, resource_type`` (no ``redirect_to``); FetchDay answers only ``{"redirect_to"}``.
Progress
    A job's days move Submitted (1 step) -> Running -> final, ``days_per_step`` days finishing per
    step (day i is final at step 2 + i // days_per_step). ``error_then_completed`` shows
    ErrorDuringRun for ``error_steps`` steps, then Completed. ``job_queue_position`` is the 1-based
    rank among unfinished jobs (oldest first; it never grows) and "0" once final or deleted;
    ``estimated_completion_time`` is the predicted finish, UTC, ``yyyy-mm-ddTHH:MM:SS.mmm``.
    ``details`` groups days by status in a fixed order, each ``{status, count, days}``.
    Time can be moved forward with ``POST /_sandbox/clock`` so tests never sleep.
Outcomes per day
    completed (file with records), empty_file (CompletedEmptyRecords; a valid gzip with no payload
    is listed and downloadable), empty_404 (CompletedEmptyRecords; no Day entry, FetchDay 404),
    error_then_completed, failed (Failed; no file, FetchDay 404).
Days
    One file per (account, ResourceType, day); a later export of the same day replaces it and moves
    to the end of the list ("listed in order of generation"). ``create_date`` and the S3 key's
    ``created_time`` follow the sandbox clock. The 7-day retention of jobs and
    files is not simulated. Daily auto-export (ExportConfiguration ``Enabled``) generates the file of
    day D-1 when the simulated clock passes 00:00 UTC of day D (friendly_name "Daily export") and
    sends the configured webhook; see sandbox.state.
DeleteJob
    204. Unfinished days show RunningToBeDeleted for one step, then DeletedByUserRequest; days that
    finished before the delete keep their status and files. The job stays fetchable and listed, and
    sends no webhook. Deleting again (or deleting a finished job) is a 204 no-op; unknown sid 404.
Paging
    Offset based: ``PageToken`` is ``PT<offset>`` and wins over ``Page``; meta URLs carry
    ``PageSize`` and ``Page`` (and ``PageToken`` for next/previous pages). Jobs are listed oldest first.
Links
    FetchDay answers 307 with ``Location`` = ``redirect_to``, a fresh link per call, shaped like
    Twilio's S3 key (``daily/day%3D…/type%3D…/account%3D…/created_time%3D…/part-0<uuid>.json.gz``)
    with ``X-Amz-*`` query params; the random ``X-Amz-Signature`` makes it single-use. The files
    listener answers like S3 with XML errors: spent link 403 AccessDenied; expired
    (``link_ttl_seconds``, 240) 403 AccessDenied "Request has expired"; an ``Authorization``
    header 400 InvalidArgument; unknown/tampered link, HEAD or other methods 403
    SignatureDoesNotMatch (these do not spend the link). Any GET that reaches a valid link spends it,
    even one answered by an injected fault.
Webhooks
    Sent when every day of a job is final (not for deleted jobs), per sandbox.webhooks: payload
    ``status=completed`` plus ``extra_params``; POST form, GET query, or JSON with ``bodySHA256``;
    signed with the current auth token of the account that owns the job (or the daily export);
    ``copies``, ``drop`` and ``sign`` configurable (``daily_webhook`` for daily exports, with delay
    and per-day drops); one retry on connection errors only.
Content
    Deterministic gzip JSON lines per (type, day, size, seed, account), byte-exact to the target
    size; see sandbox.content.
"""

from __future__ import annotations

RESOURCE_TYPES: tuple[str, ...] = ("Messages", "Calls", "Conferences", "Participants")
DEFAULT_ACCOUNT_SID = "AC" + "5a" * 16
DEFAULT_AUTH_TOKEN = "7e" * 16
