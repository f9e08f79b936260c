"""Daily auto-export (ExportConfiguration): the Editions rule, the file made at each simulated midnight, its webhook."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from devstack.procs import wait_until
from devstack.sandbox_process import SandboxProcess
from tests.sandbox.conftest import TODAY
from tests.sandbox.receiver import Received, WebhookReceiver
from tests.sandbox.test_api import CONFIG_FIELDS, DAY_FIELDS, assert_twilio_error

DAY0 = TODAY  # the conftest puts the clock at 00:00 UTC of this day


def enable(api: requests.Session, sb: SandboxProcess, rt: str, url: str = "", method: str = "") -> dict[str, Any]:
    data = {"Enabled": "true", **({"WebhookUrl": url, "WebhookMethod": method} if url else {})}
    resp = api.post(f"{sb.api_url}/v1/Exports/{rt}/Configuration", data=data)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def listed(api: requests.Session, sb: SandboxProcess, rt: str = "Calls") -> list[dict[str, Any]]:
    return list(api.get(f"{sb.api_url}/v1/Exports/{rt}/Days", params={"PageSize": 400}).json()["days"])


def daily_deliveries(sb: SandboxProcess) -> list[dict[str, Any]]:
    return [d for d in sb.webhooks() if d["kind"] == "daily"]


def received_at(receiver: WebhookReceiver, path: str) -> list[Received]:
    return [r for r in receiver.received() if urlsplit(r.path).path == path]


def test_enabling_without_editions_is_a_twilio_403_and_changes_nothing(
    sb: SandboxProcess, api: requests.Session, spec: dict[str, Any] | None
) -> None:
    sb.update_scenario(editions=False)
    url = f"{sb.api_url}/v1/Exports/Messages/Configuration"
    refused = api.post(url, data={"Enabled": "true", "WebhookUrl": "https://example.com/d", "WebhookMethod": "POST"})
    body = assert_twilio_error(refused, 403, 20403)
    assert "Editions" in body["message"]
    cfg = api.get(url).json()
    assert (cfg["enabled"], cfg["webhook_url"], cfg["webhook_method"]) == (False, "", "")
    # What an account without Editions may still do: keep it disabled, store a webhook.
    ok = api.post(url, data={"Enabled": "false", "WebhookUrl": "https://example.com/d", "WebhookMethod": "GET"})
    assert ok.status_code == 200 and ok.json()["enabled"] is False
    assert set(ok.json()) == CONFIG_FIELDS
    if spec is not None:
        assert set(spec["components"]["schemas"]["bulkexports.v1.export_configuration"]["properties"]) == set(ok.json())
    with pytest.raises(TwilioRestException) as err:  # what the relay's SDK call sees
        sb.twilio_client().bulkexports.v1.export_configuration("Messages").update(enabled=True)
    assert (err.value.status, err.value.code) == (403, 20403)
    sb.advance_days(2)
    assert listed(api, sb, "Messages") == [] and sb.daily_exports() == []


def test_midnight_makes_yesterdays_file_listed_fetchable_and_signed_webhook(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver, spec: dict[str, Any] | None
) -> None:
    cfg = enable(api, sb, "Calls", f"{receiver.base_url}/daily?rt=Calls", "POST")
    assert set(cfg) == CONFIG_FIELDS and cfg["enabled"] is True
    assert listed(api, sb) == []
    sb.advance_days(1)  # crosses 00:00 UTC of DAY0 + 1
    [day] = listed(api, sb)
    assert day == {
        "day": DAY0,
        "size": 4096,
        "create_date": "2026-11-11",
        "friendly_name": "Daily export",
        "resource_type": "Calls",
    }
    assert set(day) == DAY_FIELDS
    if spec is not None:
        assert set(spec["components"]["schemas"]["bulkexports.v1.export.day"]["properties"]) == set(day)
    link = api.get(f"{sb.api_url}/v1/Exports/Calls/Days/{DAY0}", allow_redirects=False)
    assert link.status_code == 307
    content = requests.get(link.json()["redirect_to"]).content
    expected = sb.expected_day("Calls", DAY0)
    assert expected["source"] == "file" and expected["job_sid"] is None
    assert (len(content), hashlib.sha256(content).hexdigest()) == (expected["size"], expected["sha256"])
    assert listed(api, sb, "Messages") == []  # only the enabled type
    assert sb.jobs() == [] and sb.quota_usage() == {}  # no custom job, no quota spent

    [req] = wait_until(lambda: received_at(receiver, "/daily"), timeout=10, what="the daily webhook")
    assert req.method == "POST" and req.path == "/daily?rt=Calls"
    form = dict(parse_qsl(req.body.decode()))
    assert form == {"status": "completed"}
    assert RequestValidator(sb.auth_token).validate(
        receiver.base_url + req.path, form, req.headers["X-Twilio-Signature"]
    )
    [entry] = wait_until(lambda: daily_deliveries(sb), timeout=10, what="the delivery log")
    assert (entry["day"], entry["resource_type"], entry["job_sid"], entry["account_sid"]) == (
        DAY0,
        "Calls",
        None,
        sb.account_sid,
    )


def test_a_jump_of_several_days_generates_every_day_crossed(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver
) -> None:
    enable(api, sb, "Messages", f"{receiver.base_url}/m", "POST")
    enable(api, sb, "Calls")  # enabled without a webhook: files, no deliveries
    sb.advance_days(3)
    days = ["2026-11-10", "2026-11-11", "2026-11-12"]
    for rt in ("Messages", "Calls"):
        got = listed(api, sb, rt)
        assert [d["day"] for d in got] == days  # listed in order of generation
        assert [d["create_date"] for d in got] == ["2026-11-11", "2026-11-12", "2026-11-13"]
    wait_until(lambda: len(received_at(receiver, "/m")) == 3, timeout=10, what="three daily webhooks")
    wait_until(lambda: len(daily_deliveries(sb)) == 3, timeout=10, what="three logged deliveries")
    assert sorted(d["day"] for d in daily_deliveries(sb)) == days
    assert {d["resource_type"] for d in daily_deliveries(sb)} == {"Messages"}
    exports = sb.daily_exports()
    assert sorted((e["resource_type"], e["day"]) for e in exports) == sorted(
        (rt, d) for rt in ("Messages", "Calls") for d in days
    )
    assert all(e["webhook"] is None for e in exports if e["resource_type"] == "Calls")


def test_daily_webhook_faults_per_day_copies_drop_and_delay(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver
) -> None:
    sb.update_scenario(
        daily_webhook={
            "copies": 2,
            "drop_days": ["2026-11-11"],
            "days": {"2026-11-12": {"copies": 1, "delay_seconds": 600}},
        }
    )
    enable(api, sb, "Calls", f"{receiver.base_url}/d?x=1", "GET")
    sb.advance_days(3)  # now 2026-11-13 00:00: the 12th's webhook is due at 00:10
    assert [d["day"] for d in listed(api, sb)] == ["2026-11-10", "2026-11-11", "2026-11-12"]  # files: all
    wait_until(lambda: len(received_at(receiver, "/d")) == 2, timeout=10, what="two copies for the 10th")
    wait_until(lambda: len(daily_deliveries(sb)) == 3, timeout=10, what="two copies + one drop logged")
    log = daily_deliveries(sb)
    assert sorted((d["day"], d["dropped"], d["copy"]) for d in log) == [
        ("2026-11-10", False, 1),
        ("2026-11-10", False, 2),
        ("2026-11-11", True, 0),
    ]
    sb.advance_clock(600)  # the late one
    wait_until(lambda: len(received_at(receiver, "/d")) == 3, timeout=10, what="the late webhook")
    wait_until(lambda: len(daily_deliveries(sb)) == 4, timeout=10, what="the late delivery logged")
    validator = RequestValidator(sb.auth_token)
    for req in received_at(receiver, "/d"):
        assert req.method == "GET" and dict(parse_qsl(urlsplit(req.path).query)) == {"x": "1", "status": "completed"}
        assert validator.validate(receiver.base_url + req.path, {}, req.headers["X-Twilio-Signature"])
    assert [e["webhook"]["delay_seconds"] for e in sb.daily_exports()] == [0.0, 0.0, 600.0]


def test_days_without_a_file_send_nothing_and_late_files_appear_late(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver
) -> None:
    sb.update_scenario(days={"Calls/2026-11-10": "failed", "Calls/2026-11-11": "empty_404"}, daily_delay_seconds=3600)
    enable(api, sb, "Calls", f"{receiver.base_url}/none", "POST")
    sb.advance_days(2)  # 2026-11-12 00:00: the 11th's file is due at 01:00
    assert listed(api, sb) == []
    sb.advance_clock(3600)
    exports = sb.daily_exports()
    assert [(e["day"], e["outcome"], e["size"], e["webhook"]) for e in exports] == [
        ("2026-11-10", "failed", None, None),
        ("2026-11-11", "empty_404", None, None),
    ]
    assert listed(api, sb) == []
    assert api.get(f"{sb.api_url}/v1/Exports/Calls/Days/2026-11-10").status_code == 404
    sb.advance_clock(86_400)  # the 12th is a normal day: made at 01:00 on the 13th
    [day] = listed(api, sb)
    assert (day["day"], day["create_date"]) == ("2026-11-12", "2026-11-13")
    assert sb.daily_exports()[-1]["generated_at"] == "2026-11-13T01:00:00.000"


def test_going_back_and_forward_again_repeats_no_day(
    sb: SandboxProcess, api: requests.Session, receiver: WebhookReceiver
) -> None:
    enable(api, sb, "Calls", f"{receiver.base_url}/once", "POST")
    sb.advance_days(1)
    sb.set_today(DAY0)
    sb.advance_days(1)
    assert [e["day"] for e in sb.daily_exports()] == [DAY0]
    wait_until(lambda: received_at(receiver, "/once"), timeout=10, what="the webhook")
    assert len(listed(api, sb)) == 1


def test_disabling_stops_generation(sb: SandboxProcess, api: requests.Session) -> None:
    enable(api, sb, "Calls")
    sb.advance_days(1)
    api.post(f"{sb.api_url}/v1/Exports/Calls/Configuration", data={"Enabled": "false"})
    sb.advance_days(2)
    assert [d["day"] for d in listed(api, sb)] == [DAY0]


def test_real_time_passing_midnight_generates_without_any_call(sb: SandboxProcess, api: requests.Session) -> None:
    enable(api, sb, "Conferences")
    sb.set_now("2026-11-10T23:59:59.700Z")  # the sandbox's own ticker sees midnight pass
    [day] = wait_until(lambda: listed(api, sb, "Conferences"), timeout=15, what="the file after real midnight")
    assert (day["day"], day["create_date"]) == ("2026-11-10", "2026-11-11")


def test_control_configuration_is_per_resource_type_and_validated(sb: SandboxProcess) -> None:
    sb.update_scenario(editions=False)
    cfg = sb.set_export_configuration("Calls", enabled=True, webhook_url="https://example.com/x", webhook_method="GET")
    assert cfg == {"enabled": True, "webhook_url": "https://example.com/x", "webhook_method": "GET"}
    assert sb.export_configuration()["Calls"] == cfg  # test set-up bypasses the Editions rule
    assert sb.export_configuration()["Messages"]["enabled"] is False
    for bad in ({"enabled": "yes"}, {"webhook_url": "ftp://x"}, {"webhook_method": "PUT"}, {"other": 1}):
        assert requests.put(f"{sb.api_url}/_sandbox/configuration/Calls", json=bad).status_code == 400
    assert requests.put(f"{sb.api_url}/_sandbox/configuration/Faxes", json={}).status_code == 404
    assert sb.export_configuration()["Calls"] == cfg


@pytest.mark.parametrize(
    "bad",
    [
        {"drop_days": "2026-11-10"},
        {"drop_days": ["11/10/2026"]},
        {"days": {"2026-11-10": {"copies": -1}}},
        {"days": {"2026-11-10": {"late": True}}},
        {"delay_seconds": -5},
        {"nope": 1},
    ],
)
def test_daily_webhook_scenario_is_validated(sb: SandboxProcess, bad: dict[str, Any]) -> None:
    resp = requests.patch(f"{sb.api_url}/_sandbox/scenario", json={"daily_webhook": bad})
    assert resp.status_code == 400 and resp.json()["error"]
    assert sb.get_scenario()["daily_webhook"]["drop_days"] == []
