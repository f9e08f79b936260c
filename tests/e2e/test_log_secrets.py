"""No secret reaches any process's log, in any form: the real web (gunicorn's master and workers), `rq worker` and
`rq cron`, started with known secrets in their environment and accounts file, are made to log text holding each
secret as itself, URL-encoded, base64-encoded and in an HTTP Basic ``sid:token`` value (the web's access log
writes request paths; the worker logs a task's arguments and its failure). Every form is scrubbed everywhere."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest
import requests
from rq.job import Job

from app.platform.queueing import CONTROL_QUEUE, JSONQueue
from devstack.procs import free_port, wait_until
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e
CONSOLE_TOKEN = "console-token-for-the-log-test-0123"
NOTIFY_SECRET = "whsec_" + base64.b64encode(b"events-signing-key-of-32-bytes!!").decode()
TWO_ACCOUNTS = "{prefix}{resource_type}/account={account_sid}/day={day}/{resource_type}-{day}.json.gz"


def forms(user: str, secret: str) -> list[str]:
    basic = f"{user}:{secret}".encode()
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode(),
        base64.b64encode(basic).decode(),
    ]


def test_no_process_logs_any_secret_in_any_form(make_stack, redis_server, sandbox, tmp_path):
    sub = sandbox.add_subaccount(sandbox.account_sid, friendly_name="logs")
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"sid": sub["sid"], "auth_token": sub["auth_token"]}]))
    stack = make_stack(
        workers=1,
        poller=True,
        TWILIO_ACCOUNTS_FILE=str(accounts),
        S3_KEY_TEMPLATE=TWO_ACCOUNTS,
        CONSOLE_TOKEN=CONSOLE_TOKEN,
        NOTIFY_URL=f"http://127.0.0.1:{free_port()}/events",
        NOTIFY_SECRET=NOTIFY_SECRET,
    )
    secrets = {  # each with the user name it goes with in a Basic header
        sub["auth_token"]: sub["sid"],
        sandbox.auth_token: sandbox.account_sid,
        ADMIN_TOKEN: "admin",
        CONSOLE_TOKEN: "console",
        NOTIFY_SECRET: "notify",
    }  # the test S3 server's AWS secret is "testing", too short to scrub (tests/unit/test_logs_scrub.py covers AWS's)
    every_form = [form for secret, user in secrets.items() for form in forms(user, secret)]

    # the web: gunicorn's access log writes each request's path
    for form in every_form:
        answer = requests.get(f"{stack.url}/api/jobs/{form}", headers={"Authorization": "Bearer no"}, timeout=10)
        assert answer.status_code in (401, 429)  # 429 once the failed-authentication limit is reached
    # the worker: RQ logs a task's arguments when it starts it (its first 75 characters), and the failure
    conn = redis_server.client()
    queue = JSONQueue(CONTROL_QUEUE, connection=conn)
    queued = [
        queue.enqueue("workers.tasks.sweep_task", f"{form}:Calls", job_id=f"sweep-logs-{n}")
        for n, form in enumerate(every_form)
    ]
    for job in queued:
        wait_until(
            lambda j=job: Job.fetch(j.id, connection=conn).get_status() in ("finished", "failed"),
            timeout=30,
            what="the worker to run the task",
        )
    wait_until(lambda: "[redacted]" in stack.procs["worker1"].tail(400), timeout=10, what="the worker's log")
    wait_until(lambda: "[redacted]" in stack.procs["web"].tail(400), timeout=10, what="the access log")

    logs = {path.name: path.read_text(errors="replace") for path in stack.log_dir.glob("*.log")}
    assert {"web.log", "worker1.log", "poller.log"} <= set(logs), list(logs)
    leaked = {name: [form for form in every_form if form in text] for name, text in logs.items()}
    assert not any(leaked.values()), leaked
