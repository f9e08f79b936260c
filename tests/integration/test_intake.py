"""Webhook intake against a real Redis: token, signature (twilio's RequestValidator as reference signer), dedupe."""

from __future__ import annotations

import hashlib
import json
import time
from urllib.parse import urlencode

import pytest
from rq import Queue
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from app import create_app
from app.jobs.records import JobRecord, hash_token
from app.platform.config import load_settings
from app.platform.queueing import CONTROL_QUEUE

SID = "JS" + "ab" * 16
TOKEN = "tok_" + "x" * 40
AUTH = "a" * 32
PUBLIC = "https://relay.example.com"


def settings_env(redis_url: str, **kw: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": AUTH,
        "TWILIO_BULKEXPORTS_BASE_URL": "http://127.0.0.1:9",
        "PUBLIC_BASE_URL": PUBLIC,
        "S3_BUCKET": "unused",
        "ADMIN_TOKEN": "admin-token-0123456789",
        **kw,
    }


def tracked_app(redis_url: str, **env: str):
    """The app with one tracked job whose webhook token is TOKEN."""
    app = create_app(load_settings(settings_env(redis_url, **env)))
    job = JobRecord(
        job_sid=SID, resource_type="Calls", start_day="2026-11-01", end_day="2026-11-01", token_hash=hash_token(TOKEN)
    )
    app.extensions["relay"].jobs.add_job(job)
    return app


@pytest.fixture
def make_client(redis_url):
    def factory(**env):
        app = tracked_app(redis_url, **env)
        svc = app.extensions["relay"]
        client = app.test_client()
        client.svc = svc
        return client

    return factory


@pytest.fixture
def client(make_client):
    return make_client()


def queued_syncs(client) -> list[str]:
    return Queue(CONTROL_QUEUE, connection=client.svc.rq_connection).job_ids


def sign(url: str, params: dict | None = None, token: str = AUTH) -> str:
    return RequestValidator(token).compute_signature(url, params or {})


def hook_url(**query: str) -> str:
    return f"{PUBLIC}/hooks/bulkexport?" + urlencode({"token": TOKEN, **query})


def post_form(client, url: str, form: dict, signature: str | None, **kw):
    headers = {"X-Twilio-Signature": signature} if signature else {}
    path = url.removeprefix(PUBLIC)
    return client.post(path, data=form, headers=headers, **kw)


def test_signed_form_post_enqueues_one_sync(client):
    form = {"status": "completed", "job_sid": SID}
    r = post_form(client, hook_url(), form, sign(hook_url(), form))
    assert r.status_code == 204
    assert queued_syncs(client) == [f"sync-{SID}"]


def test_duplicate_deliveries_queue_one_sync(client):
    form = {"status": "completed"}
    for _ in range(4):
        assert post_form(client, hook_url(), form, sign(hook_url(), form)).status_code == 204
    assert queued_syncs(client) == [f"sync-{SID}"]
    assert client.svc.jobs.get_job(SID).webhooks_received == 4


def test_signature_with_explicit_port_in_public_url(make_client):
    client = make_client(PUBLIC_BASE_URL="https://relay.example.com:443")
    url = f"https://relay.example.com:443/hooks/bulkexport?token={TOKEN}"
    # Twilio may sign with or without the port; RequestValidator tries both.
    no_port = url.replace(":443", "")
    assert (
        client.post(
            f"/hooks/bulkexport?token={TOKEN}",
            data={"a": "1"},
            headers={"X-Twilio-Signature": sign(no_port, {"a": "1"})},
        ).status_code
        == 204
    )


def test_get_with_params_in_query(client):
    url = hook_url(status="completed", extra="x y")
    r = client.get(url.removeprefix(PUBLIC), headers={"X-Twilio-Signature": sign(url)})
    assert r.status_code == 204


def test_json_body_with_body_sha256(client):
    body = json.dumps({"status": "completed", "job_sid": SID})
    url = hook_url(bodySHA256=hashlib.sha256(body.encode()).hexdigest())
    r = client.post(
        url.removeprefix(PUBLIC),
        data=body,
        content_type="application/json",
        headers={"X-Twilio-Signature": sign(url)},
    )
    assert r.status_code == 204


def test_json_body_tampered_is_rejected(client):
    body = json.dumps({"status": "completed"})
    url = hook_url(bodySHA256=hashlib.sha256(body.encode()).hexdigest())
    r = client.post(
        url.removeprefix(PUBLIC),
        data=body.replace("completed", "failed"),
        content_type="application/json",
        headers={"X-Twilio-Signature": sign(url)},
    )
    assert r.status_code == 403
    assert queued_syncs(client) == []


def test_tampered_param_is_rejected(client):
    sig = sign(hook_url(), {"status": "completed"})
    assert post_form(client, hook_url(), {"status": "failed"}, sig).status_code == 403
    assert queued_syncs(client) == []
    assert client.svc.jobs.get_job(SID).webhooks_received == 0  # only authentic deliveries are counted


def test_unknown_token_is_404_even_with_a_bad_signature(client):
    url = f"{PUBLIC}/hooks/bulkexport?" + urlencode({"token": "tok_" + "y" * 40})
    assert post_form(client, url, {"status": "completed"}, "bm90LWEtc2lnbmF0dXJl").status_code == 404
    assert queued_syncs(client) == []


def test_tampered_url_is_rejected(client):
    sig = sign(hook_url(a="1"), {"status": "completed"})
    assert post_form(client, hook_url(a="2"), {"status": "completed"}, sig).status_code == 403


def test_repeated_form_names_are_signed_as_twilio_does(client):
    form = {"tag": ["b", "a"], "status": "completed"}
    multi = MultiDict([("tag", "b"), ("tag", "a"), ("status", "completed")])
    sig = RequestValidator(AUTH).compute_signature(hook_url(), multi)
    assert post_form(client, hook_url(), form, sig).status_code == 204


def test_rotated_secondary_token_is_accepted(make_client):
    client = make_client(TWILIO_AUTH_TOKEN="n" * 32, TWILIO_AUTH_TOKEN_SECONDARY=AUTH)
    form = {"status": "completed"}
    assert post_form(client, hook_url(), form, sign(hook_url(), form)).status_code == 204
    assert post_form(client, hook_url(), form, sign(hook_url(), form, token="z" * 32)).status_code == 403


def test_behind_tls_terminating_proxy(make_client):
    """The app sees http://internal:8000; Twilio called (and signed) the public https URL."""
    client = make_client(PROXY_FIX_HOPS="1")
    form = {"status": "completed"}
    r = client.post(
        f"/hooks/bulkexport?token={TOKEN}",
        data=form,
        base_url="http://10.0.0.5:8000",
        headers={
            "X-Twilio-Signature": sign(hook_url(), form),
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "relay.example.com",
        },
    )
    assert r.status_code == 204


def test_missing_signature_policy(make_client):
    assert post_form(make_client(), hook_url(), {"status": "completed"}, None).status_code == 204
    strict = make_client(WEBHOOK_SIGNATURE="required")
    assert post_form(strict, hook_url(), {"status": "completed"}, None).status_code == 403


@pytest.mark.parametrize("query", ["", "?token=", "?token=short", f"?token={'y' * 40}"])
def test_unknown_or_missing_token_is_404_and_enqueues_nothing(client, query):
    assert client.post(f"/hooks/bulkexport{query}", data={"status": "completed"}).status_code == 404
    assert queued_syncs(client) == []


def test_first_delivery_is_logged_in_full_even_when_a_sync_already_covers_it(client, caplog):
    """How we learn Twilio's undocumented payload: every job's first delivery is on record at INFO."""
    client.svc.enqueuer.sync(SID)  # e.g. the poller got there first
    caplog.set_level("INFO", logger="app.web.intake")
    for status in ("first", "second"):
        form = {"status": status}
        assert post_form(client, hook_url(), form, sign(hook_url(), form)).status_code == 204
    logged = [r for r in caplog.records if r.name == "app.web.intake" and r.levelname == "INFO"]
    assert [(r.getMessage(), r.job_sid, r.webhook["body"]) for r in logged] == [
        ("webhook duplicate", SID, "status=first")
    ]
    assert queued_syncs(client) == [f"sync-{SID}"]


@pytest.mark.parametrize(("sync_status", "resync"), [("started", True), ("queued", False)])
def test_a_delivery_during_a_running_sync_asks_it_to_look_again(client, sync_status, resync):
    """A running sync may have read Twilio before the job completed; a queued one will read it afterwards.

    The job is also made due for the poller at once, in case the running sync had already made its last check."""
    client.svc.rq_connection.hset(client.svc.enqueuer.sync_key_prefix() + SID, "status", sync_status)
    client.svc.jobs.schedule_sync(SID, time.time() + 3600)  # backed off: not due for an hour
    form = {"status": "completed"}
    assert post_form(client, hook_url(), form, sign(hook_url(), form)).status_code == 204
    assert client.svc.jobs.take_resync_request(SID) is resync
    assert (SID in client.svc.jobs.due_jobs()) is resync
    unsigned = client.post(hook_url().removeprefix(PUBLIC), data=form, headers={"X-Twilio-Signature": "bad"})
    assert unsigned.status_code == 403 and not client.svc.jobs.take_resync_request(SID)


def test_methods_and_size_limits(client):
    assert client.put(f"/hooks/bulkexport?token={TOKEN}").status_code == 405
    big = {"status": "x" * (70 * 1024)}
    assert client.post(f"/hooks/bulkexport?token={TOKEN}", data=big).status_code == 413
    assert queued_syncs(client) == []


def test_token_never_logged(client, caplog):
    caplog.set_level("INFO")
    post_form(client, hook_url(), {"status": "completed"}, sign(hook_url(), {"status": "completed"}))
    assert TOKEN not in caplog.text


def test_redis_outage_gives_503_then_recovers(tmp_path):
    """A webhook that could not be recorded must not be acknowledged: the sender retries the 503."""
    from devstack.redis_server import RedisServer

    with RedisServer(tmp_path / "redis") as server:
        app = tracked_app(server.url)
        svc = app.extensions["relay"]
        client = app.test_client()
        form = {"status": "completed"}
        server.stop()
        r = post_form(client, hook_url(), form, sign(hook_url(), form))
        assert r.status_code == 503
        assert r.get_json()["error"] == "storage unavailable"
        server.start()  # same port, AOF replays the job record
        r = post_form(client, hook_url(), form, sign(hook_url(), form))
        assert r.status_code == 204
        assert Queue(CONTROL_QUEUE, connection=svc.rq_connection).job_ids == [f"sync-{SID}"]


def test_raw_body_without_body_sha256_is_not_signed(client):
    """Only the URL is signed for a non-form body without bodySHA256 (and such bodies must not crash validation)."""
    url = hook_url()
    r = client.post(
        url.removeprefix(PUBLIC),
        data="status=completed;raw",
        content_type="text/plain",
        headers={"X-Twilio-Signature": sign(url)},
    )
    assert r.status_code == 204


def test_callback_before_twilio_answered_is_accepted_without_enqueue(client):
    """Twilio may call back before our create request got its answer: 202, and the poller syncs the job later."""
    early = "early_" + "e" * 40
    client.svc.tokens.add_pending(hash_token(early), {"resource_type": "Calls"})
    r = client.post(f"/hooks/bulkexport?token={early}", data={"status": "completed"})
    assert r.status_code == 202
    forged = client.post(
        f"/hooks/bulkexport?token={early}", data={"status": "completed"}, headers={"X-Twilio-Signature": "forged"}
    )
    assert forged.status_code == 403  # a known (pending) token: the signature verdict comes first
    assert queued_syncs(client) == []


def test_without_an_auth_token_signed_deliveries_are_taken_as_unsigned(make_client):
    """API-key credentials cannot check Twilio's signatures; refusing every signed delivery would turn the
    webhook off without a word (`required` is refused at start-up for this configuration)."""
    client = make_client(TWILIO_AUTH_TOKEN="", TWILIO_API_KEY_SID="SK" + "1" * 32, TWILIO_API_KEY_SECRET="s" * 32)
    form = {"status": "completed"}
    assert post_form(client, hook_url(), form, sign(hook_url(), form)).status_code == 204
    assert queued_syncs(client) == [f"sync-{SID}"]
