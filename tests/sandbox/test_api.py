"""Conformance of the /v1 surface with Twilio's BulkExports v1 spec: paths, status codes, fields, auth, paging."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devstack.procs import wait_until
from devstack.sandbox_process import SandboxProcess

# Field lists of the spec's schemas, asserted directly (and cross-checked against the spec file when present).
DAY_FIELDS = {"day", "size", "create_date", "friendly_name", "resource_type"}
DAY_INSTANCE_FIELDS = {"redirect_to"}
EXPORT_FIELDS = {"resource_type", "url", "links"}
CONFIG_FIELDS = {"enabled", "webhook_url", "webhook_method", "resource_type", "url"}
CUSTOM_JOB_FIELDS = {
    "friendly_name",
    "resource_type",
    "start_day",
    "end_day",
    "webhook_url",
    "webhook_method",
    "email",
    "job_sid",
    "details",
    "job_queue_position",
    "estimated_completion_time",
}
JOB_FIELDS = CUSTOM_JOB_FIELDS | {"url"}
META_FIELDS = {"page", "page_size", "first_page_url", "previous_page_url", "url", "next_page_url", "key"}
SCHEMAS = {
    "bulkexports.v1.export.day": DAY_FIELDS,
    "bulkexports.v1.export.day-instance": DAY_INSTANCE_FIELDS,
    "bulkexports.v1.export": EXPORT_FIELDS,
    "bulkexports.v1.export_configuration": CONFIG_FIELDS,
    "bulkexports.v1.export.export_custom_job": CUSTOM_JOB_FIELDS,
    "bulkexports.v1.export.job": JOB_FIELDS,
}
TWILIO_ERROR_FIELDS = {"code", "message", "more_info", "status"}


def create_job(api: requests.Session, sb: SandboxProcess, rt: str = "Calls", **form: str) -> dict[str, Any]:
    data = {"StartDay": "2026-11-01", "EndDay": "2026-11-03", "FriendlyName": "conformance", **form}
    resp = api.post(f"{sb.api_url}/v1/Exports/{rt}/Jobs", data=data)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def finished(sb: SandboxProcess, sid: str) -> bool:
    return bool(sb.job(sid)["final"])


def assert_twilio_error(resp: requests.Response, status: int, code: int | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == TWILIO_ERROR_FIELDS
    assert body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{body['code']}"
    if code is not None:
        assert body["code"] == code
    return dict(body)


def test_field_lists_match_the_spec_schemas(spec: dict[str, Any] | None) -> None:
    if spec is None:
        pytest.skip("shared/twilio_bulkexports_v1.json not present")
    schemas = spec["components"]["schemas"]
    for name, fields in SCHEMAS.items():
        assert set(schemas[name]["properties"]) == fields, name
    days_meta = spec["paths"]["/v1/Exports/{ResourceType}/Days"]["get"]["responses"]["200"]["content"]
    props = days_meta["application/json"]["schema"]["properties"]
    assert set(props["meta"]["properties"]) == META_FIELDS
    status_enum = set(schemas["job_enum_status"]["enum"])
    assert status_enum == {
        "ErrorDuringRun",
        "Submitted",
        "Running",
        "CompletedEmptyRecords",
        "Completed",
        "Failed",
        "RunningToBeDeleted",
        "DeletedByUserRequest",
    }


def test_every_spec_operation_answers_with_its_documented_status(
    sb: SandboxProcess, api: requests.Session, spec: dict[str, Any] | None
) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0)
    job = create_job(api, sb)
    wait_until(lambda: finished(sb, job["job_sid"]), timeout=10, what="job final")
    fill = {"{ResourceType}": "Calls", "{Day}": "2026-11-02", "{JobSid}": job["job_sid"]}
    forms = {
        "CreateExportCustomJob": {"StartDay": "2026-11-04", "EndDay": "2026-11-04", "FriendlyName": "op"},
        "UpdateExportConfiguration": {"Enabled": "false"},
    }
    expected = {  # operationId -> (method, path, success status): the table in our notes, from the spec
        "FetchDay": ("get", "/v1/Exports/{ResourceType}/Days/{Day}", 307),
        "ListDay": ("get", "/v1/Exports/{ResourceType}/Days", 200),
        "FetchExport": ("get", "/v1/Exports/{ResourceType}", 200),
        "FetchExportConfiguration": ("get", "/v1/Exports/{ResourceType}/Configuration", 200),
        "UpdateExportConfiguration": ("post", "/v1/Exports/{ResourceType}/Configuration", 200),
        "ListExportCustomJob": ("get", "/v1/Exports/{ResourceType}/Jobs", 200),
        "CreateExportCustomJob": ("post", "/v1/Exports/{ResourceType}/Jobs", 201),
        "FetchJob": ("get", "/v1/Exports/Jobs/{JobSid}", 200),
        "DeleteJob": ("delete", "/v1/Exports/Jobs/{JobSid}", 204),
    }
    if spec is not None:
        from_spec = {
            op["operationId"]: (method, path, int(next(iter(op["responses"]))))
            for path, item in spec["paths"].items()
            for method, op in item.items()
            if isinstance(op, dict) and "operationId" in op
        }
        assert from_spec == expected
    for op, (method, path, status) in expected.items():
        url = sb.api_url + path
        for k, v in fill.items():
            url = url.replace(k, v)
        resp = api.request(method, url, data=forms.get(op), allow_redirects=False)
        assert resp.status_code == status, (op, resp.status_code, resp.text)
        if status != 204:
            assert resp.headers["Content-Type"].startswith("application/json")
    # The two paths the spec declares without operations answer 404.
    for path in ("/v1/Exports", "/v1/Exports/Jobs"):
        assert_twilio_error(api.get(sb.api_url + path), 404, 20404)


def test_fetch_export_and_configuration_fields(sb: SandboxProcess, api: requests.Session) -> None:
    exp = api.get(f"{sb.api_url}/v1/Exports/Messages").json()
    assert set(exp) == EXPORT_FIELDS
    assert exp["url"] == f"{sb.api_url}/v1/Exports/Messages"
    assert exp["links"] == {
        "days": f"{sb.api_url}/v1/Exports/Messages/Days",
        "export_custom_jobs": f"{sb.api_url}/v1/Exports/Messages/Jobs",
        "jobs": f"{sb.api_url}/v1/Exports/Jobs",
    }
    cfg = api.get(f"{sb.api_url}/v1/Exports/Messages/Configuration").json()
    assert cfg == {
        "enabled": False,
        "webhook_url": "",
        "webhook_method": "",
        "resource_type": "Messages",
        "url": f"{sb.api_url}/v1/Exports/Messages/Configuration",
    }
    upd = api.post(
        f"{sb.api_url}/v1/Exports/Messages/Configuration",
        data={"Enabled": "true", "WebhookUrl": "https://example.com/hook", "WebhookMethod": "POST"},
    ).json()
    assert set(upd) == CONFIG_FIELDS
    assert (upd["enabled"], upd["webhook_url"], upd["webhook_method"]) == (True, "https://example.com/hook", "POST")
    assert api.get(f"{sb.api_url}/v1/Exports/Messages/Configuration").json() == upd
    bad = api.post(f"{sb.api_url}/v1/Exports/Messages/Configuration", data={"WebhookMethod": "PUT"})
    assert_twilio_error(bad, 400, 20001)


def test_create_answers_201_with_the_2020_null_quirk(sb: SandboxProcess, api: requests.Session) -> None:
    job = create_job(
        api,
        sb,
        "Messages",
        WebhookUrl="https://example.com/done?ref=1",
        WebhookMethod="POST",
        Email="ops@example.com",
    )
    assert set(job) == CUSTOM_JOB_FIELDS
    assert job["resource_type"] is None and job["details"] is None
    assert job["job_sid"].startswith("JS") and len(job["job_sid"]) == 34
    int(job["job_sid"][2:], 16)
    assert (job["start_day"], job["end_day"], job["friendly_name"]) == ("2026-11-01", "2026-11-03", "conformance")
    assert (job["webhook_url"], job["webhook_method"], job["email"]) == (
        "https://example.com/done?ref=1",
        "POST",
        "ops@example.com",
    )
    assert isinstance(job["job_queue_position"], str) and int(job["job_queue_position"]) >= 1
    assert isinstance(job["estimated_completion_time"], str) and "T" in job["estimated_completion_time"]
    fetched = api.get(f"{sb.api_url}/v1/Exports/Jobs/{job['job_sid']}").json()
    assert set(fetched) == JOB_FIELDS
    assert fetched["url"] == f"{sb.api_url}/v1/Exports/Jobs/{job['job_sid']}"
    assert fetched["resource_type"] == "Messages"
    assert isinstance(fetched["details"], list)
    listed = api.get(f"{sb.api_url}/v1/Exports/Messages/Jobs").json()
    assert set(listed) == {"jobs", "meta"}
    assert [set(j) for j in listed["jobs"]] == [CUSTOM_JOB_FIELDS]
    assert api.get(f"{sb.api_url}/v1/Exports/Calls/Jobs").json()["jobs"] == []


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"StartDay": ""}, "StartDay"),
        ({"FriendlyName": ""}, "FriendlyName"),
        ({"EndDay": "2026/11/03"}, "EndDay"),
        ({"EndDay": "2026-11-09"}, "2 days before"),
        ({"StartDay": "2026-11-05", "EndDay": "2026-11-04"}, "StartDay"),
        ({"WebhookUrl": "https://example.com/x"}, "together"),
        ({"WebhookUrl": "https://example.com/x", "WebhookMethod": "PUT"}, "WebhookMethod"),
        ({"WebhookUrl": "not a url", "WebhookMethod": "GET"}, "WebhookUrl"),
    ],
)
def test_create_rejects_bad_input_with_a_clear_400(
    sb: SandboxProcess, api: requests.Session, form: dict[str, str], fragment: str
) -> None:
    data = {"StartDay": "2026-11-01", "EndDay": "2026-11-03", "FriendlyName": "bad", **form}
    body = assert_twilio_error(api.post(f"{sb.api_url}/v1/Exports/Calls/Jobs", data=data), 400, 20001)
    assert fragment in body["message"]


def test_daily_quota_of_366_requested_days(sb: SandboxProcess, api: requests.Session) -> None:
    url = f"{sb.api_url}/v1/Exports/Calls/Jobs"
    ok = api.post(url, data={"StartDay": "2025-11-08", "EndDay": "2026-11-07", "FriendlyName": "year"})
    assert ok.status_code == 201, ok.text  # exactly 365 days
    assert api.post(url, data={"StartDay": "2026-11-08", "EndDay": "2026-11-08", "FriendlyName": "one"}).ok
    body = assert_twilio_error(
        api.post(url, data={"StartDay": "2026-11-08", "EndDay": "2026-11-08", "FriendlyName": "over"}), 400, 20001
    )
    assert "quota" in body["message"].lower()
    sb.update_scenario(today="2026-11-11")  # a new UTC day resets the quota
    assert api.post(url, data={"StartDay": "2026-11-08", "EndDay": "2026-11-08", "FriendlyName": "next"}).ok


@pytest.mark.parametrize(
    "path",
    [
        "/v1/Exports/Faxes",
        "/v1/Exports/Faxes/Days",
        "/v1/Exports/calls/Jobs",
        "/v1/Exports/Calls/Days/2026-11-02",
        "/v1/Exports/Calls/Days/not-a-day",
        "/v1/Exports/Jobs/JS00000000000000000000000000000000",
        "/v1/Exports/Jobs/CA00000000000000000000000000000000",
        "/v1/Nope",
    ],
)
def test_unknown_resources_are_twilio_404s(sb: SandboxProcess, api: requests.Session, path: str) -> None:
    body = assert_twilio_error(api.get(sb.api_url + path, allow_redirects=False), 404, 20404)
    assert path in body["message"]


def test_wrong_method_is_a_twilio_405(sb: SandboxProcess, api: requests.Session) -> None:
    assert_twilio_error(api.put(f"{sb.api_url}/v1/Exports/Calls/Jobs"), 405)


@pytest.mark.parametrize(
    "auth",
    [None, ("AC" + "0" * 32, "7e" * 16), ("AC" + "5a" * 16, "wrong"), ("", ""), ("SK" + "1" * 32, "secret")],
)
def test_auth_is_required_on_every_v1_path(sb: SandboxProcess, auth: tuple[str, str] | None) -> None:
    for method, path in [
        ("GET", "/v1/Exports/Calls"),
        ("GET", "/v1/Exports/Calls/Days"),
        ("POST", "/v1/Exports/Calls/Jobs"),
        ("DELETE", "/v1/Exports/Jobs/JS" + "0" * 32),
        ("GET", "/v1/Exports/Nope/Whatever"),
    ]:
        resp = requests.request(method, sb.api_url + path, auth=auth)
        body = assert_twilio_error(resp, 401, 20003)
        assert body == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
    assert requests.get(f"{sb.api_url}/_sandbox/health").ok  # the control API needs no auth


def test_api_key_credentials_are_accepted_when_configured(tmp_path: Any) -> None:
    key, secret = "SK" + "ab" * 16, "s3cr3t" * 5
    with SandboxProcess(log_path=tmp_path / "sb.log", api_key_sid=key, api_key_secret=secret) as other:
        assert requests.get(f"{other.api_url}/v1/Exports/Calls", auth=(key, secret)).ok
        assert requests.get(f"{other.api_url}/v1/Exports/Calls", auth=other.auth).ok
        assert requests.get(f"{other.api_url}/v1/Exports/Calls", auth=(key, "nope")).status_code == 401
        client = other.twilio_client(key, secret)
        assert client.bulkexports.v1.exports("Calls").fetch().resource_type == "Calls"


def test_day_paging_follows_next_page_url_and_caps_page_size(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0, default_day_size=300)
    job = create_job(api, sb, StartDay="2026-07-01", EndDay="2026-11-08")  # 131 days
    wait_until(lambda: finished(sb, job["job_sid"]), timeout=10, what="job final")
    url = f"{sb.api_url}/v1/Exports/Calls/Days"
    first = api.get(url, params={"PageSize": 50}).json()
    assert first["meta"]["key"] == "days" and set(first["meta"]) == META_FIELDS
    assert first["meta"]["page"] == 0 and first["meta"]["page_size"] == 50
    assert first["meta"]["previous_page_url"] is None
    assert first["meta"]["first_page_url"] == f"{url}?PageSize=50&Page=0"
    days: list[str] = []
    page: dict[str, Any] | None = first
    pages = 0
    while page is not None:
        pages += 1
        assert all(set(d) == DAY_FIELDS for d in page["days"])
        days += [d["day"] for d in page["days"]]
        nxt = page["meta"]["next_page_url"]
        assert nxt is None or nxt.startswith(sb.api_url)
        if nxt:
            page = api.get(nxt).json()
            assert page["meta"]["previous_page_url"] is not None
            assert page["meta"]["page"] == pages
        else:
            page = None
    assert pages == 3 and len(days) == 131 and len(set(days)) == 131
    assert days == sorted(days)  # listed in order of generation, which follows the job's days here
    everything = api.get(url, params={"PageSize": 400}).json()
    assert len(everything["days"]) == 131 and everything["meta"]["next_page_url"] is None
    for size in ("401", "0", "x"):
        body = assert_twilio_error(api.get(url, params={"PageSize": size}), 400, 20001)
        assert "PageSize" in body["message"]
    assert_twilio_error(api.get(url, params={"PageToken": "garbage"}), 400, 20001)
    by_page = api.get(url, params={"PageSize": 100, "Page": 1}).json()
    assert [d["day"] for d in by_page["days"]] == days[100:]


def test_job_paging_allows_up_to_1000(sb: SandboxProcess, api: requests.Session) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0)
    for i in range(3):
        create_job(api, sb, StartDay="2026-11-01", EndDay="2026-11-01", FriendlyName=f"j{i}")
    url = f"{sb.api_url}/v1/Exports/Calls/Jobs"
    assert len(api.get(url, params={"PageSize": 1000}).json()["jobs"]) == 3
    assert_twilio_error(api.get(url, params={"PageSize": 1001}), 400, 20001)
    p1 = api.get(url, params={"PageSize": 2}).json()
    assert [j["friendly_name"] for j in p1["jobs"]] == ["j0", "j1"]
    p2 = api.get(p1["meta"]["next_page_url"]).json()
    assert [j["friendly_name"] for j in p2["jobs"]] == ["j2"] and p2["meta"]["next_page_url"] is None
    assert p2["meta"]["key"] == "jobs"


def test_the_real_twilio_client_works_against_the_sandbox(sb: SandboxProcess) -> None:
    sb.set_scenario(today="2026-11-10", step_seconds=0.02)
    client = sb.twilio_client()
    export = client.bulkexports.v1.exports("Calls")
    created = export.export_custom_jobs.create(
        start_day="2026-11-01",
        end_day="2026-11-02",
        friendly_name="sdk",
        webhook_url="https://example.com/hook",
        webhook_method="POST",
    )
    assert created.job_sid.startswith("JS") and created.details is None
    wait_until(lambda: finished(sb, created.job_sid), timeout=10, what="job final")
    job = client.bulkexports.v1.exports.jobs(created.job_sid).fetch()
    assert job.details == [{"status": "Completed", "count": 2, "days": ["2026-11-01", "2026-11-02"]}]
    assert job.url == f"{sb.api_url}/v1/Exports/Jobs/{created.job_sid}"
    assert [j.job_sid for j in export.export_custom_jobs.list()] == [created.job_sid]
    days = export.days.list(page_size=1)  # pages of one: the SDK follows meta.next_page_url
    assert sorted(d.day for d in days) == ["2026-11-01", "2026-11-02"]
    assert all(d.size == 4096 and d.resource_type == "Calls" and d.friendly_name == "sdk" for d in days)
    link = export.days("2026-11-01").fetch().redirect_to
    assert link.startswith(sb.files_url + "/daily/day%3D2026-11-01/type%3DCalls/")
    assert requests.get(link).status_code == 200
    cfg = client.bulkexports.v1.export_configuration("Calls").update(enabled=True)
    assert cfg.enabled is True
    assert client.bulkexports.v1.exports.jobs(created.job_sid).delete() is True
