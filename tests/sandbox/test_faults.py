"""API fault injection: deterministic counters, operation filters, a seeded random rate, slowness."""

from __future__ import annotations

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from devstack.sandbox_process import SandboxProcess


def test_429_with_retry_after_then_500_then_normal(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_faults(api={"429": 2, "500": 1, "retry_after": 3})
    url = f"{sb.api_url}/v1/Exports/Calls/Jobs"
    for _ in range(2):
        resp = api.get(url)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
        assert resp.json() == {
            "code": 20429,
            "message": "Too Many Requests",
            "more_info": "https://www.twilio.com/docs/errors/20429",
            "status": 429,
        }
    assert requests.get(f"{sb.api_url}/_sandbox/health").ok  # control calls neither fail nor count
    resp = api.get(url)
    assert resp.status_code == 500 and resp.json()["code"] == 20500
    assert api.get(url).status_code == 200
    remaining = sb.faults()["api"]
    assert (remaining["429"], remaining["500"]) == (0, 0)
    assert [r["status"] for r in sb.requests()] == [429, 429, 500, 200]
    assert [r["fault"] for r in sb.requests()] == ["429", "429", "500", None]


def test_faults_can_target_one_operation(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_faults(api={"429": 1, "only": ["FetchDay"]})
    assert api.get(f"{sb.api_url}/v1/Exports/Calls/Days").status_code == 200
    assert api.get(f"{sb.api_url}/v1/Exports/Calls/Days/2026-11-01").status_code == 429
    assert api.get(f"{sb.api_url}/v1/Exports/Calls/Days/2026-11-01").status_code == 404  # no such day: normal answer
    assert [r["operation"] for r in sb.requests()] == ["ListDay", "FetchDay", "FetchDay"]


def test_unauthenticated_requests_do_not_consume_faults(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_faults(api={"500": 1})
    assert requests.get(f"{sb.api_url}/v1/Exports/Calls").status_code == 401
    assert api.get(f"{sb.api_url}/v1/Exports/Calls").status_code == 500


def test_twilio_client_sees_429_as_an_exception_with_the_status(sb: SandboxProcess) -> None:
    sb.set_faults(api={"429": 1})
    with pytest.raises(TwilioRestException) as err:
        sb.twilio_client().bulkexports.v1.exports("Calls").fetch()
    assert err.value.status == 429 and err.value.code == 20429


def test_seeded_random_rate_is_reproducible(sb: SandboxProcess, api: requests.Session) -> None:
    def run() -> list[int]:
        sb.set_faults(rate=0.4, seed=11, api={"kinds": ["500"]})
        return [api.get(f"{sb.api_url}/v1/Exports/Calls").status_code for _ in range(30)]

    first = run()
    assert run() == first
    assert set(first) == {200, 500}


def test_slow_api_answers_late_but_correctly(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_faults(api={"slow_ms": 1500})
    with pytest.raises(requests.exceptions.ReadTimeout):
        api.get(f"{sb.api_url}/v1/Exports/Calls", timeout=(5, 0.2))
    sb.set_faults(api={"slow_ms": 20})
    assert api.get(f"{sb.api_url}/v1/Exports/Calls").json()["resource_type"] == "Calls"


def test_invalid_fault_plans_are_refused(sb: SandboxProcess) -> None:
    for bad in ({"api": {"418": 1}}, {"files": {"cut": -1}}, {"api": {"kinds": ["cut"]}}, {"rate": "often"}):
        assert requests.put(f"{sb.api_url}/_sandbox/faults", json=bad).status_code == 400
    assert sb.faults()["api"]["429"] == 0


def test_403_refuses_and_is_counted_after_429_and_500(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_faults(api={"403": 1, "only": ["ListDay"]})
    resp = api.get(f"{sb.api_url}/v1/Exports/Calls/Days")
    assert resp.status_code == 403 and resp.json()["code"] == 20403
    assert api.get(f"{sb.api_url}/v1/Exports/Calls/Days").status_code == 200
    assert sb.faults()["api"]["403"] == 0
