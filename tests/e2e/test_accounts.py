"""Many accounts end to end: a parent whose subaccounts are discovered through the Accounts API, feeds for each,
one quota for the family, per-account webhook signatures, one account's credentials revoked, and no secret of any
account anywhere (logs, Redis, S3, API answers). Real gunicorn, rq worker and poller, Redis, SeaweedFS, sandbox."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from twilio.request_validator import RequestValidator

from app import create_app
from app.platform.config import load_settings
from devstack.calendar import Calendar
from devstack.procs import free_port, wait_until
from devstack.relay import start_process
from tests.conftest import ADMIN_TOKEN, make_env

pytestmark = pytest.mark.e2e

T0 = date(2026, 6, 10)
RT = "Calls"
TEMPLATE = "{prefix}account={account_sid}/{resource_type}/day={day}/{resource_type}-{day}.json.gz"
QUOTA = 8


@pytest.fixture
def family(sandbox, tmp_path):
    """The sandbox's default account as the parent, three subaccounts; the calendar at T0 (01:00 UTC)."""
    sandbox.update_scenario(daily_quota_days=QUOTA, step_seconds=0.05, days_per_step=50)
    subs = [sandbox.add_subaccount(sandbox.account_sid, friendly_name=f"team-{n}") for n in "abc"]
    calendar = Calendar(sandbox, tmp_path / "clock-offset")
    calendar.set_today(T0)
    return subs, calendar


def family_env(sandbox, calendar: Calendar, **extra: str) -> dict[str, str]:
    return {
        **calendar.env(),
        "TWILIO_DISCOVER_SUBACCOUNTS": "true",
        "TWILIO_API_BASE_URL": sandbox.api_url,
        "ACCOUNTS_REFRESH_SECONDS": "10",
        "S3_KEY_TEMPLATE": TEMPLATE,
        "TWILIO_DAILY_DAY_QUOTA": str(QUOTA),
        "POLL_INTERVAL_SECONDS": "1",
        **extra,
    }


def coverage(stack) -> list[dict]:
    return stack.api("GET", "/api/coverage").json()["feeds"]


def test_every_account_of_a_family_lands_under_its_own_prefix_within_one_quota(make_stack, family, sandbox, s3, bucket):
    subs, calendar = family
    since = (T0 - timedelta(days=4)).isoformat()  # 3 days per account, 4 accounts: 12 days, 8 a UTC day
    stack = make_stack(workers=2, poller=True, **family_env(sandbox, calendar, SYNC_FEEDS=f"{RT}:{since}"))
    accounts = [sandbox.account_sid, *(s["sid"] for s in subs)]
    wait_until(lambda: len(coverage(stack)) == 4, timeout=60, what="a feed per account")
    for _ in range(4):
        wait_until(
            lambda: (
                not any(f["counts"]["in_flight"] for f in coverage(stack))
                and (
                    sandbox.quota_usage().get(calendar.today.isoformat(), 0) >= QUOTA
                    or not any(f["counts"]["missing"] for f in coverage(stack))
                )
            ),
            timeout=90,
            what="the day's family quota spent and copied",
        )
        if not any(f["counts"]["missing"] for f in coverage(stack)):
            break
        calendar.advance_days(1)
    feeds = coverage(stack)
    assert {f["account"] for f in feeds} == set(accounts)
    assert all(f["counts"]["missing"] == 0 and f["counts"]["failed"] == 0 for f in feeds), feeds
    assert all(used <= QUOTA for used in sandbox.quota_usage().values()), sandbox.quota_usage()
    writes = s3.writes_by_key(bucket)
    for account in accounts:
        keys = [k for k in writes if f"account={account}/" in k and "/_" not in k]
        days_copied = sum(f["counts"]["copied"] + f["counts"]["empty"] for f in feeds if f["account"] == account)
        assert len(keys) == days_copied >= 3, (account, keys)
        assert all(writes[k] == 1 for k in keys)
    listed = stack.api("GET", "/api/accounts").json()["accounts"]
    assert {a["sid"] for a in listed} == set(accounts) and all(a["state"] == "ok" for a in listed)
    _assert_no_secret_anywhere(stack, sandbox, subs, s3, bucket)


def _assert_no_secret_anywhere(stack, sandbox, subs, s3, bucket) -> None:
    secrets = [sandbox.auth_token, *(s["auth_token"] for s in subs)]
    answers = [
        stack.api("GET", path).text
        for path in ("/api/accounts", "/api/coverage", "/api/feeds", "/api/jobs?page_size=200")
    ] + [requests.get(f"{stack.url}/{p}", timeout=10).text for p in ("health", "metrics", "readyz")]
    logs = [p.read_text(errors="replace") for p in stack.log_dir.glob("*.log")]
    client = redis_client(stack)
    dump = [f"{k}={_value(client, k)}" for k in client.scan_iter("*")]
    objects = s3.client().list_objects_v2(Bucket=bucket).get("Contents") or []
    heads = [str(s3.client().head_object(Bucket=bucket, Key=o["Key"])) for o in objects]
    for secret in secrets:
        for where, texts in {"API": answers, "logs": logs, "Redis": dump, "S3": heads}.items():
            assert not any(secret in text for text in texts), f"an auth token appears in {where}"


def redis_client(stack):
    import redis

    return redis.Redis.from_url(stack.env["REDIS_URL"], decode_responses=True, encoding_errors="replace")


def _value(client, key: str) -> str:
    kind = client.type(key)
    fetch = {
        "string": client.get,
        "hash": client.hgetall,
        "set": client.smembers,
        "list": lambda k: client.lrange(k, 0, -1),
        "zset": lambda k: client.zrange(k, 0, -1),
    }.get(kind)
    return str(fetch(key)) if fetch else ""


def test_a_webhook_signed_with_another_accounts_token_is_refused(make_stack, family, sandbox):
    subs, calendar = family
    a, b = subs[0], subs[1]
    sandbox.update_scenario(webhook={"drop": True})
    stack = make_stack(workers=1, **family_env(sandbox, calendar, WEBHOOK_SIGNATURE="required"))
    day = (T0 - timedelta(days=3)).isoformat()
    r = stack.api(
        "POST", "/api/jobs", json={"resource_type": RT, "start_day": day, "end_day": day, "account": "team-a"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["account_sid"] == a["sid"]
    query = urlsplit(sandbox.job(r.json()["job_sid"])["webhook_url"]).query
    public, local = (f"{base}/hooks/bulkexport?{query}" for base in (stack.env["PUBLIC_BASE_URL"], stack.url))
    form = {"status": "completed"}

    def deliver(token: str) -> int:
        signature = RequestValidator(token).compute_signature(public, form)
        return requests.post(local, data=form, headers={"X-Twilio-Signature": signature}, timeout=10).status_code

    assert deliver(b["auth_token"]) == 403
    assert deliver(sandbox.auth_token) == 403  # the parent's token is not the subaccount's either
    assert deliver(a["auth_token"]) == 204


def test_a_web_worker_whose_first_request_is_a_subaccounts_webhook_accepts_it(make_stack, family, sandbox):
    """The job is submitted with the CLI (another process), so the web's workers have served nothing when the
    subaccount's webhook arrives: each must discover the family before checking the signature (it once answered
    404, the account unknown to that worker's memory)."""
    subs, calendar = family
    sandbox.update_scenario(webhook={"drop": True})
    stack = make_stack(workers=0, **family_env(sandbox, calendar, WEBHOOK_SIGNATURE="required", WEB_CONCURRENCY="1"))
    day = (T0 - timedelta(days=3)).isoformat()
    cli = create_app(load_settings(stack.env)).test_cli_runner()
    out = cli.invoke(args=["relay", "submit", RT, day, day, "--account", "team-a"])
    assert out.exit_code == 0, out.output
    job = next(j for j in sandbox.jobs() if j["start_day"] == day)
    query = urlsplit(job["webhook_url"]).query
    public, local = (f"{base}/hooks/bulkexport?{query}" for base in (stack.env["PUBLIC_BASE_URL"], stack.url))
    form = {"status": "completed"}
    signature = RequestValidator(subs[0]["auth_token"]).compute_signature(public, form)
    r = requests.post(local, data=form, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert r.status_code == 204


def test_jobs_are_listed_per_account(make_stack, family, sandbox):
    stack = make_stack(workers=0, **family_env(sandbox, family[1]))
    day = (T0 - timedelta(days=3)).isoformat()
    body = {"resource_type": RT, "start_day": day, "end_day": day, "account": "team-a"}
    sid = stack.api("POST", "/api/jobs", json=body).json()["job_sid"]
    mine = stack.api("GET", "/api/jobs?account=team-a").json()
    assert [j["job_sid"] for j in mine["jobs"]] == [sid] and mine["meta"]["total"] == 1
    assert stack.api("GET", "/api/jobs?account=team-b").json()["meta"]["total"] == 0
    assert stack.api("GET", "/api/jobs").json()["meta"]["total"] == 1
    assert stack.api("GET", "/api/jobs?account=team-z").status_code == 400


def test_a_revoked_account_shows_its_error_while_the_others_complete(make_stack, family, sandbox):
    subs, calendar = family
    revoked = subs[1]
    sandbox.revoke_credentials(revoked["sid"])
    since = (T0 - timedelta(days=3)).isoformat()
    stack = make_stack(workers=1, poller=True, **family_env(sandbox, calendar, SYNC_FEEDS=f"{RT}:{since}"))

    def settled() -> bool:
        feeds = {f["account"]: f for f in coverage(stack)}
        others = [f for sid, f in feeds.items() if sid != revoked["sid"]]
        return len(feeds) == 4 and all(f["counts"]["copied"] + f["counts"]["empty"] == 2 for f in others)

    wait_until(settled, timeout=90, what="every other account's days copied")
    state = wait_until(
        lambda: (
            (a := {x["sid"]: x for x in stack.api("GET", "/api/accounts").json()["accounts"]})[revoked["sid"]]["state"]
            == "credentials refused"
            and a
        ),
        timeout=30,
        what="the revoked account's state",
    )
    assert all(a["state"] == "ok" for sid, a in state.items() if sid != revoked["sid"]), state
    named = requests.get(f"{stack.url}/health", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10).json()
    flagged = [c for c in named["checks"]["accounts:state"] if c["status"] == "warn"]
    assert [(c["componentId"], c["observedValue"]) for c in flagged] == [("team-b", "credentials refused")]
    anonymous = requests.get(f"{stack.url}/health", timeout=10).json()  # counts per state, no account named
    flagged = [c for c in anonymous["checks"]["accounts:state"] if c["status"] == "warn"]
    assert [(c["componentId"], c["observedValue"]) for c in flagged] == [("credentials refused", 1)]
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    assert 'relay_accounts{state="credentials refused"} 1.0' in metrics
    assert 'relay_accounts{state="ok"} 3.0' in metrics and "team-b" not in metrics


def test_a_literal_account_sid_in_the_key_template_stops_the_worker(redis_url, s3, bucket, sandbox, tmp_path):
    """``{{account_sid}}`` renders as the same text for every account, so two accounts would share keys: the
    Procfile's worker refuses to start, naming the setting (it contains the text "{account_sid}" but no field)."""
    literal = "{prefix}{resource_type}/account={{account_sid}}/day={day}/{resource_type}-{day}.json.gz"
    env = make_env(
        redis_url, s3, bucket, sandbox, f"http://127.0.0.1:{free_port()}",
        TWILIO_DISCOVER_SUBACCOUNTS="true", S3_KEY_TEMPLATE=literal,
    )  # fmt: skip
    worker = start_process("worker", env, tmp_path / "logs", name="worker-literal-template")
    try:
        wait_until(lambda: not worker.alive(), timeout=60, what="the worker to refuse its configuration")
        assert worker.proc is not None and worker.proc.returncode != 0
        assert "S3_KEY_TEMPLATE must contain {account_sid}" in worker.tail(200)
    finally:
        worker.stop()
