"""The jobs API in-process against real Redis and the Twilio sandbox over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from rq import Queue

from app import create_app
from app.jobs.tokens import token_key
from app.platform.config import load_settings
from app.platform.queueing import CONTROL_QUEUE
from tests.conftest import ADMIN_TOKEN, make_env

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "https://relay.example.com"


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture
def make_client(redis_url, s3, bucket, sandbox):
    def factory(**env):
        app = create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, PUBLIC, **env)))
        client = app.test_client()
        client.svc = app.extensions["relay"]
        return client

    return factory


@pytest.fixture
def client(make_client):
    return make_client()


def submit(client, **body):
    payload = {"resource_type": "Calls", "start_day": day(5), "end_day": day(3)} | body
    return client.post("/api/jobs", json=payload, headers=AUTH)


def test_submit_creates_job_at_twilio_with_our_webhook(client, sandbox):
    r = submit(client, friendly_name="nightly calls")
    assert r.status_code == 201, r.get_json()
    view = r.get_json()
    assert view["job_sid"].startswith("JS") and view["state"] == "waiting"
    (remote,) = [j for j in sandbox.jobs() if j["job_sid"] == view["job_sid"]]
    url = urlsplit(remote["webhook_url"])
    assert f"{url.scheme}://{url.netloc}" == PUBLIC and url.path == "/hooks/bulkexport"
    token = parse_qs(url.query)["token"][0]
    assert len(token) >= 22  # >= 128 bits, url-safe base64
    assert remote["webhook_method"] == "POST"
    assert (remote["start_day"], remote["end_day"]) == (day(5), day(3))
    # the token is stored only as a hash
    assert not any(
        token in k or token in str(client.svc.tokens.r.get(k) or "")
        for k in client.svc.tokens.r.scan_iter(token_key("*"))
    )


def test_webhook_method_get_is_registered(make_client, sandbox):
    r = submit(make_client(WEBHOOK_METHOD="GET"))
    (remote,) = [j for j in sandbox.jobs() if j["job_sid"] == r.get_json()["job_sid"]]
    assert remote["webhook_method"] == "GET"


def test_list_show_and_cancel(client, sandbox):
    sid = submit(client).get_json()["job_sid"]
    listed = client.get("/api/jobs?page_size=10", headers=AUTH).get_json()
    assert [j["job_sid"] for j in listed["jobs"]] == [sid] and listed["meta"]["total"] == 1
    shown = client.get(f"/api/jobs/{sid}", headers=AUTH).get_json()
    assert shown["job_sid"] == sid and "twilio" in shown and "days" in shown
    r = client.delete(f"/api/jobs/{sid}", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "cancelled"
    assert client.delete(f"/api/jobs/{sid}", headers=AUTH).status_code == 409
    assert any(req["method"] == "DELETE" and sid in req["path"] for req in sandbox.requests())


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"resource_type": "Faxes"}, 400, "resource_type"),
        ({"start_day": "yesterday"}, 400, "start_day"),
        ({"start_day": day(3), "end_day": day(5)}, 400, "after"),
        ({"end_day": day(1)}, 400, "two days before today"),
    ],
)
def test_bad_input_is_400_json(client, body, status, detail):
    r = submit(client, **body)
    assert r.status_code == status
    assert r.get_json()["error"] == "invalid request" and detail in r.get_json()["detail"]


def test_not_json_and_auth(client):
    assert client.post("/api/jobs", data="x", headers=AUTH).status_code == 400
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(f"/api/jobs/JS{'0' * 32}", headers=AUTH).status_code == 404
    assert client.get("/api/jobs/nope", headers=AUTH).status_code == 400


def test_list_filters_by_resource_type_and_refuses_unknown_filters(client):
    calls = submit(client).get_json()["job_sid"]
    messages = submit(client, resource_type="Messages").get_json()["job_sid"]
    account = client.svc.accounts.primary.sid

    def listed(query):
        r = client.get(f"/api/jobs?{query}", headers=AUTH)
        assert r.status_code == 200, r.get_json()
        return [j["job_sid"] for j in r.get_json()["jobs"]], r.get_json()["meta"]["total"]

    assert listed("resource_type=Messages") == ([messages], 1)
    assert listed("resource_type=Calls") == ([calls], 1)
    assert listed(f"resource_type=Messages&account={account}") == ([messages], 1)
    assert listed("resource_type=Participants") == ([], 0)
    assert sorted(listed("")[0]) == sorted([calls, messages])
    r = client.get("/api/jobs?resource_type=Faxes", headers=AUTH)
    assert r.status_code == 400 and "resource_type" in r.get_json()["detail"]
    r = client.get("/api/jobs?type=Messages", headers=AUTH)  # a misspelt filter is refused, never ignored
    assert r.status_code == 400 and "unknown query parameter(s): type" in r.get_json()["detail"]


def test_range_over_366_days_is_split(make_client, sandbox):
    sandbox.set_scenario(daily_quota_days=2000)
    client = make_client(TWILIO_DAILY_DAY_QUOTA="2000")
    r = submit(client, start_day=day(402), end_day=day(3))
    assert r.status_code == 201, r.get_json()
    jobs = r.get_json()["jobs"]
    assert [(j["start_day"], j["end_day"]) for j in jobs] == [(day(402), day(37)), (day(36), day(3))]
    assert len(sandbox.jobs()) == 2


def test_quota_refusal_counts_what_was_submitted_today(client, sandbox):
    assert submit(client, start_day=day(302), end_day=day(3)).status_code == 201  # 300 days
    r = submit(client, start_day=day(70), end_day=day(3))  # 68 more: 368 > 366
    assert r.status_code == 429
    assert "366" in r.get_json()["detail"] and r.get_json()["used_today"] == 300
    assert len(sandbox.jobs()) == 1  # nothing was sent to Twilio
    assert submit(client, start_day=day(68), end_day=day(3)).status_code == 201  # exactly 366


def test_twilio_429_is_retried_honouring_retry_after(client, sandbox):
    sandbox.set_faults(api={"429": 2, "retry_after": 1})
    r = submit(client)
    assert r.status_code == 201
    assert len(sandbox.jobs()) == 1


def test_twilio_refusing_with_429_gives_503_and_gives_the_quota_back(client, sandbox):
    sandbox.set_faults(api={"429": 50, "retry_after": 0})
    r = submit(client)
    assert r.status_code == 503 and r.get_json()["error"].startswith("Twilio unavailable")
    sandbox.set_faults()
    assert len(sandbox.jobs()) == 0
    assert client.svc.quota.used(datetime.now(UTC).date().isoformat()) == 0
    assert client.svc.tokens.pending_submissions() == {}  # Twilio processed nothing: nothing to reconcile


def test_a_lost_create_answer_is_reported_as_uncertain_not_as_retryable(client, sandbox):
    """A 5xx after sending may or may not have created the job: a 503 would invite a duplicate."""
    sandbox.set_faults(api={"500": 50})
    r = submit(client)
    assert r.status_code == 502 and r.get_json()["error"] == "submission outcome unknown"
    assert "Check the job list before submitting again" in r.get_json()["detail"]
    sandbox.set_faults()
    assert len(sandbox.jobs()) == 0  # (this sandbox answered before creating; the relay cannot know that)
    assert client.svc.quota.used(datetime.now(UTC).date().isoformat()) == 3  # Twilio may count it
    assert len(client.svc.tokens.pending_submissions()) == 1  # the poller looks for it by its token


def test_a_created_job_that_cannot_be_recorded_is_named_and_adopted_later(client, sandbox, monkeypatch):
    import redis

    from app.jobs import submission

    def storage_down(record):
        raise redis.ConnectionError("Redis went away")

    with monkeypatch.context() as m:
        m.setattr(client.svc.jobs, "add_job", storage_down)  # Redis fails right after Twilio created it
        r = submit(client)
    (created,) = sandbox.jobs()
    assert r.status_code == 502 and r.get_json()["error"] == "submission outcome unknown"
    assert created["job_sid"] in r.get_json()["detail"] and "Do not submit it again" in r.get_json()["detail"]
    assert submission.reconcile_pending(client.svc, older_than=0) == [created["job_sid"]]


def test_a_range_over_the_daily_quota_is_a_400_not_a_429(client, sandbox):
    r = submit(client, start_day=day(402), end_day=day(3))  # 400 days, quota 366: no retry can ever succeed
    assert r.status_code == 400 and "at most 366 days per request" in r.get_json()["detail"]
    assert len(sandbox.jobs()) == 0
    assert client.svc.quota.used(datetime.now(UTC).date().isoformat()) == 0


def test_track_adopts_a_job_created_elsewhere(client, sandbox, redis_url):
    other = submit(client).get_json()["job_sid"]
    client.svc.jobs.r.flushall()  # forget it: as if another tool created it
    r = client.post("/api/jobs/track", json={"job_sid": other}, headers=AUTH)
    assert r.status_code == 201 and r.get_json()["origin"] == "adopted"
    assert Queue(CONTROL_QUEUE, connection=client.svc.rq_connection).job_ids == [f"sync-{other}"]
    assert client.post("/api/jobs/track", json={"job_sid": "JS" + "f" * 32}, headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("kwargs", "detail"),
    [
        ({"data": '{"days":["2026-11-03"]}'}, "must be JSON"),  # curl -d: form content type, not "every day"
        ({"json": {"days": []}}, "non-empty list"),
        ({"json": {"day": ["2026-11-03"]}}, "body must be empty"),
        ({"json": ["2026-11-03"]}, "body must be empty"),
    ],
)
def test_requeue_refuses_a_body_it_cannot_read_instead_of_requeueing_everything(client, kwargs, detail):
    sid = submit(client).get_json()["job_sid"]
    r = client.post(f"/api/jobs/{sid}/requeue", headers=AUTH, **kwargs)
    assert r.status_code == 400 and detail in r.get_json()["detail"]
    assert client.post(f"/api/jobs/{sid}/requeue", headers=AUTH).status_code == 200  # no body: every failed day


@pytest.mark.parametrize("query", ["page=-1", "page=1000000000000000000", "page_size=0", "page_size=201", "page=x"])
def test_paging_out_of_range_is_a_400_not_a_storage_error(client, query):
    r = client.get(f"/api/jobs?{query}", headers=AUTH)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid request"


def test_json_nested_past_the_parser_limit_is_a_400(client):
    deep = "[" * 5000 + "]" * 5000
    r = client.post("/api/jobs", data=deep, headers=AUTH | {"Content-Type": "application/json"})
    assert r.status_code == 400
