"""Completion webhooks: delivered to a real local receiver and verified with twilio's RequestValidator."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from twilio.request_validator import RequestValidator

from devstack.procs import free_port, wait_until
from devstack.sandbox_process import SandboxProcess
from sandbox.scenario import WebhookConfig
from sandbox.state import WebhookCall
from sandbox.webhooks import build_request
from tests.sandbox.receiver import Received, WebhookReceiver


def start_job(api: requests.Session, sb: SandboxProcess, url: str, method: str = "POST", **extra: str) -> str:
    data = {
        "StartDay": "2026-11-01",
        "EndDay": "2026-11-02",
        "FriendlyName": "hooked",
        "WebhookUrl": url,
        "WebhookMethod": method,
        **extra,
    }
    resp = api.post(f"{sb.api_url}/v1/Exports/Calls/Jobs", data=data)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["job_sid"])


def wait_for(receiver: WebhookReceiver, n: int) -> list[Received]:
    wait_until(lambda: len(receiver.received()) >= n, timeout=10, what=f"{n} webhook(s)")
    return receiver.received()


def test_post_form_webhook_is_signed_like_twilio(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver
) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0.01)
    sid = start_job(api, sb, f"{receiver.base_url}/hook?ref=abc&rt=Calls")
    [req] = wait_for(receiver, 1)
    assert req.method == "POST" and req.path == "/hook?ref=abc&rt=Calls"
    assert req.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    form = dict(parse_qsl(req.body.decode()))
    assert form == {"status": "completed"}
    url = receiver.base_url + req.path
    validator = RequestValidator(sb.auth_token)
    assert validator.validate(url, form, req.headers["X-Twilio-Signature"])
    assert not RequestValidator("0" * 32).validate(url, form, req.headers["X-Twilio-Signature"])
    assert not validator.validate(url, {"status": "failed"}, req.headers["X-Twilio-Signature"])
    assert req.headers["User-Agent"].startswith("TwilioProxy/")
    assert req.headers["I-Twilio-Idempotency-Token"]
    wait_until(lambda: sb.webhooks(), timeout=10)
    [entry] = sb.webhooks()
    assert (entry["job_sid"], entry["status_code"], entry["ok"], entry["method"]) == (sid, 204, True, "POST")
    assert entry["headers"]["X-Twilio-Signature"] == req.headers["X-Twilio-Signature"]
    assert sb.job(sid)["webhook_fired"] is True


def test_get_webhook_puts_params_in_the_query_and_signs_the_full_url(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver
) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0.01, webhook={"extra_params": {"JobSid": "x", "A": "1"}})
    start_job(api, sb, f"{receiver.base_url}/hook?ref=q", "GET")
    [req] = wait_for(receiver, 1)
    assert req.method == "GET" and req.body == b""
    query = dict(parse_qsl(urlsplit(req.path).query))
    assert query == {"ref": "q", "status": "completed", "JobSid": "x", "A": "1"}
    assert RequestValidator(sb.auth_token).validate(receiver.base_url + req.path, {}, req.headers["X-Twilio-Signature"])


def test_json_body_mode_adds_body_sha256(sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0.01, webhook={"body": "json"})
    start_job(api, sb, f"{receiver.base_url}/hook?ref=j")
    [req] = wait_for(receiver, 1)
    assert req.headers["Content-Type"] == "application/json"
    assert "bodySHA256=" in req.path
    validator = RequestValidator(sb.auth_token)
    url = receiver.base_url + req.path
    assert validator.validate(url, req.body.decode(), req.headers["X-Twilio-Signature"])  # checks the hash too
    assert not validator.validate(url, req.body.decode() + " ", req.headers["X-Twilio-Signature"])


def test_copies_drop_and_unsigned(sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0.01, webhook={"copies": 3})
    sid = start_job(api, sb, f"{receiver.base_url}/copies")
    reqs = wait_for(receiver, 3)
    assert len({r.headers["X-Twilio-Signature"] for r in reqs}) == 1
    wait_until(lambda: len(sb.webhooks()) == 3, timeout=10)
    assert sorted(e["copy"] for e in sb.webhooks()) == [1, 2, 3]
    assert {e["job_sid"] for e in sb.webhooks()} == {sid}

    sb.reset()
    sb.set_scenario(today="2026-11-10", step_seconds=0.01, webhook={"drop": True})
    dropped = start_job(api, sb, f"{receiver.base_url}/dropped")
    wait_until(lambda: sb.webhooks(), timeout=10, what="the drop to be logged")
    [entry] = sb.webhooks()
    assert entry["dropped"] is True and entry["job_sid"] == dropped
    assert not [r for r in receiver.received() if r.path == "/dropped"]

    sb.set_scenario(today="2026-11-10", step_seconds=0.01, webhook={"sign": False})
    start_job(api, sb, f"{receiver.base_url}/unsigned")
    wait_until(lambda: [r for r in receiver.received() if r.path == "/unsigned"], timeout=10)
    [unsigned] = [r for r in receiver.received() if r.path == "/unsigned"]
    assert "X-Twilio-Signature" not in unsigned.headers


def test_complete_and_redeliver(sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=3600)
    sid = start_job(api, sb, f"{receiver.base_url}/later")
    assert sb.job(sid)["final"] is False and receiver.received() == []
    sb.complete(sid)
    wait_for(receiver, 1)
    wait_until(lambda: len(sb.webhooks()) == 1, timeout=10)  # logged once answered: keeps the order checkable
    sb.redeliver(sid)
    reqs = wait_for(receiver, 2)
    assert [r.path for r in reqs] == ["/later", "/later"]
    wait_until(lambda: len(sb.webhooks()) == 2, timeout=10)
    assert [e["reason"] for e in sb.webhooks()] == ["completed", "redeliver"]


def test_deleted_jobs_send_nothing_and_failures_are_logged_not_raised(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver
) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0.05)
    deleted = start_job(api, sb, f"{receiver.base_url}/deleted")
    assert api.delete(f"{sb.api_url}/v1/Exports/Jobs/{deleted}").status_code == 204
    wait_until(lambda: sb.job(deleted)["final"], timeout=10)

    closed = free_port()  # nothing listens: connection refused, retried once
    refused = start_job(api, sb, f"http://127.0.0.1:{closed}/nobody")
    wait_until(lambda: len([e for e in sb.webhooks() if e["job_sid"] == refused]) == 2, timeout=20)
    attempts = [e for e in sb.webhooks() if e["job_sid"] == refused]
    assert [e["attempt"] for e in attempts] == [1, 2]
    assert all(e["error"] and e["status_code"] is None and not e["ok"] for e in attempts)

    receiver.status = 500
    failing = start_job(api, sb, f"{receiver.base_url}/fails")
    wait_until(lambda: [e for e in sb.webhooks() if e["job_sid"] == failing], timeout=10)
    [entry] = [e for e in sb.webhooks() if e["job_sid"] == failing]
    assert entry["status_code"] == 500 and not entry["ok"]  # an HTTP error answer is not retried
    assert not [r for r in receiver.received() if r.path == "/deleted"]
    assert sb.health()["status"] == "ok"


def test_build_request_is_pure_and_strips_fragments() -> None:
    call = WebhookCall("JS" + "0" * 32, "Calls", "https://example.com/h?a=1#rc=3", "post", WebhookConfig(), "completed")
    out: Any = build_request(call, "t" * 32, "token")
    assert out.url == "https://example.com/h?a=1" and out.method == "POST" and out.body == b"status=completed"
    expected = RequestValidator("t" * 32).compute_signature("https://example.com/h?a=1", {"status": "completed"})
    assert out.headers["X-Twilio-Signature"] == expected
