"""Twilio's own lists (GET /api/twilio/jobs, /api/twilio/days/<rt>), their CLI commands and `status --refresh`,
in-process against real Redis and the Twilio sandbox over HTTP. Jobs "made elsewhere" are created straight at the
sandbox with twilio-python, as Twilio's Console or another tool would."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.feeds.store import CoverageDay
from app.platform.config import load_settings
from app.twilio.accounts import owner_of
from tests.conftest import ADMIN_TOKEN, make_env

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ZONED = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture
def app(redis_url, s3, bucket, sandbox):
    return create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, "https://relay.example.com")))


@pytest.fixture
def client(app):
    client = app.test_client()
    client.svc = app.extensions["relay"]
    return client


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args: str):
        return runner.invoke(args=["relay", *args])

    return run


def made_elsewhere(sandbox, rt="Calls", first=5, last=4, name="from the Console", email=None) -> str:
    """A job created at Twilio without the relay (no webhook of ours)."""
    jobs = sandbox.twilio_client().bulkexports.v1.exports(rt).export_custom_jobs
    kwargs = {"email": email} if email else {}
    return str(jobs.create(start_day=day(first), end_day=day(last), friendly_name=name, **kwargs).job_sid)


def twilio_jobs(client, query="resource_type=Calls"):
    r = client.get(f"/api/twilio/jobs?{query}", headers=AUTH)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_a_job_made_elsewhere_is_listed_untracked_then_tracked(client, sandbox):
    sid = made_elsewhere(sandbox, email="ops@example.com")
    ours = client.post(
        "/api/jobs", json={"resource_type": "Calls", "start_day": day(3), "end_day": day(3)}, headers=AUTH
    ).get_json()["job_sid"]
    doc = twilio_jobs(client)
    rows = {j["job_sid"]: j for j in doc["jobs"]}
    assert set(rows) == {sid, ours} and doc["meta"]["total"] == 2
    theirs = rows[sid]
    assert theirs["tracked"] is False and theirs["state"] is None
    assert (theirs["friendly_name"], theirs["email"]) == ("from the Console", "ops@example.com")
    assert (theirs["start_day"], theirs["end_day"], theirs["resource_type"]) == (day(5), day(4), "Calls")
    assert isinstance(theirs["job_queue_position"], int)
    assert ZONED.fullmatch(theirs["estimated_completion_time"]), theirs["estimated_completion_time"]
    assert "webhook_url" not in theirs  # ours would carry a token
    assert rows[ours]["tracked"] is True and rows[ours]["state"] == "waiting"

    r = client.post("/api/jobs/track", json={"job_sid": sid}, headers=AUTH)
    assert r.status_code == 201, r.get_json()
    after = {j["job_sid"]: j for j in twilio_jobs(client)["jobs"]}
    assert after[sid]["tracked"] is True and after[sid]["state"] in ("waiting", "copying")


def test_jobs_are_listed_per_resource_type_and_account(client, sandbox):
    made_elsewhere(sandbox, rt="Messages")
    assert twilio_jobs(client)["jobs"] == []
    doc = twilio_jobs(client, f"resource_type=Messages&account={sandbox.account_sid}")
    assert len(doc["jobs"]) == 1 and doc["account_sid"] == sandbox.account_sid


def test_paging_covers_every_job_and_day_once(client, sandbox):
    sids = {made_elsewhere(sandbox, first=n, last=n, name=f"job {n}") for n in (3, 4, 5)}
    seen, pages = [], []
    for page in (0, 1):
        doc = twilio_jobs(client, f"resource_type=Calls&page={page}&page_size=2")
        seen += [j["job_sid"] for j in doc["jobs"]]
        pages.append(doc["meta"])
    assert sorted(seen) == sorted(sids) and len(seen) == 3
    assert pages[0] == {"page": 0, "page_size": 2, "total": 3, "has_more": True}
    assert pages[1] == {"page": 1, "page_size": 2, "total": 3, "has_more": False}
    assert twilio_jobs(client, "resource_type=Calls&page=5&page_size=2")["jobs"] == []

    for sid in sids:
        sandbox.complete(sid)
    days = []
    for page in (0, 1, 2):
        r = client.get(f"/api/twilio/days/Calls?page={page}&page_size=1", headers=AUTH)
        assert r.status_code == 200, r.get_json()
        days += [d["day"] for d in r.get_json()["days"]]
        assert r.get_json()["meta"]["has_more"] is (page < 2)
    assert sorted(days) == [day(5), day(4), day(3)]


def test_listday_says_which_days_the_bucket_has(client, sandbox):
    sandbox.complete(made_elsewhere(sandbox, first=6, last=4, name="three days"))
    owner = owner_of("Calls", sandbox.account_sid)
    client.svc.feeds.put_days(owner, {day(5): CoverageDay("copied", key="twilio/Calls/x.json.gz", size=10)})
    client.svc.feeds.put_days(owner, {day(4): CoverageDay("failed", error="boom")})
    r = client.get("/api/twilio/days/Calls", headers=AUTH)
    assert r.status_code == 200, r.get_json()
    rows = {d["day"]: d for d in r.get_json()["days"]}
    assert set(rows) == {day(6), day(5), day(4)}
    expected = {d: sandbox.expected_day("Calls", d) for d in rows}
    for d, row in rows.items():
        assert row["size"] == expected[d]["size"] and row["friendly_name"] == "three days"
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row["create_date"])
    assert (rows[day(5)]["bucket"], rows[day(5)]["in_bucket"]) == ("copied", True)
    assert (rows[day(4)]["bucket"], rows[day(4)]["in_bucket"]) == ("failed", False)
    assert (rows[day(6)]["bucket"], rows[day(6)]["in_bucket"]) == ("missing", False)


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/twilio/jobs?resource_type=Calls&type=Messages", "unknown query parameter(s): type"),
        ("/api/twilio/days/Calls?resource_type=Calls", "unknown query parameter(s): resource_type"),
        ("/api/twilio/jobs?resource_type=Calls&page_size=0", "page_size must be between 1 and 200"),
        ("/api/twilio/jobs?resource_type=Calls&page=%C2%B2", "page must be a whole number"),
        ("/api/twilio/days/Calls?page_size=201", "page_size must be between 1 and 200"),
        ("/api/twilio/jobs", "resource_type must be one of"),
        ("/api/twilio/days/Faxes", "resource_type must be one of"),
        ("/api/twilio/jobs?resource_type=Calls&account=nobody", "not served"),
    ],
)
def test_bad_requests_are_400_and_ask_nothing_of_twilio(client, sandbox, path, detail):
    before = len(sandbox.requests())
    r = client.get(path, headers=AUTH)
    assert r.status_code == 400 and detail in r.get_json()["detail"], r.get_json()
    assert len(sandbox.requests()) == before


def test_the_lists_need_the_admin_token(client):
    assert client.get("/api/twilio/jobs?resource_type=Calls").status_code == 401
    assert client.get("/api/twilio/days/Calls", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_status_refresh_reads_the_job_from_twilio_now(client, cli, sandbox):
    sid = client.post(
        "/api/jobs", json={"resource_type": "Calls", "start_day": day(4), "end_day": day(3)}, headers=AUTH
    ).get_json()["job_sid"]
    fetches = lambda: sum(1 for q in sandbox.requests() if q["method"] == "GET" and q["path"].endswith(sid))  # noqa: E731
    before = fetches()
    r = cli("status", sid, "--refresh")
    assert r.exit_code == 0, r.output
    assert fetches() == before + 1
    line = next(x for x in r.output.splitlines() if x.strip().startswith("at Twilio:"))
    match = re.search(r"queue position (\S+), ETA (\S+) \(as of (\S+)\)", line)
    assert match, line
    assert match[1].isdigit() and ZONED.fullmatch(match[2]) and match[3].endswith("Z")
    view = json.loads(cli("status", sid, "--json").output)  # without --refresh: what the refresh stored
    assert ZONED.fullmatch(view["twilio"]["estimated_completion_time"]) and view["twilio"]["fetched_at"] == match[3]
    assert fetches() == before + 1

    r = client.post(f"/api/jobs/{sid}/refresh", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["job_sid"] == sid and fetches() == before + 2
    assert client.post(f"/api/jobs/JS{'0' * 32}/refresh", headers=AUTH).status_code == 404


def test_refresh_of_a_listed_day_file_is_a_conflict(client, sandbox):
    sandbox.complete(made_elsewhere(sandbox, first=4, last=4))
    r = client.post(f"/api/days/Calls/{day(4)}/copy", headers=AUTH)
    assert r.status_code == 202, r.get_json()
    listed = r.get_json()["job_sid"]
    r = client.post(f"/api/jobs/{listed}/refresh", headers=AUTH)
    assert r.status_code == 409 and "not a job at Twilio" in r.get_json()["detail"]


def test_cli_lists_twilio_jobs_and_days(cli, sandbox):
    sid = made_elsewhere(sandbox, first=4, last=3, name="console job", email="ops@example.com")
    r = cli("twilio-jobs", "Calls")
    assert r.exit_code == 0, r.output
    (row,) = [x for x in r.output.splitlines() if sid in x]
    assert "untracked" in row and "console job <ops@example.com>" in row and f"{day(4)}..{day(3)}" in row
    assert "(1 Calls job(s) at Twilio, page 0 of size 50)" in r.output
    assert cli("track", sid).exit_code == 0
    doc = json.loads(cli("twilio-jobs", "Calls", "--json").output)
    assert doc["jobs"][0]["tracked"] is True

    sandbox.complete(sid)
    r = cli("twilio-days", "Calls", "--page-size", "1")
    assert r.exit_code == 0, r.output
    assert "bucket: " in r.output and "next: --page 1" in r.output
    doc = json.loads(cli("twilio-days", "Calls", "--page", "1", "--page-size", "1", "--json").output)
    assert len(doc["days"]) == 1 and doc["meta"]["total"] == 2


def test_cli_errors_are_one_line(cli):
    for args, text in (
        (("twilio-jobs", "Faxes"), "error: resource_type must be one of"),
        (("twilio-days", "Calls", "--page-size", "0"), "error: page_size must be between 1 and 200"),  # as the API
        (("twilio-jobs", "Calls", "--page", "x"), "error: page must be a whole number"),
        (("status", f"JS{'0' * 32}", "--refresh"), "error: job JS"),
    ):
        r = cli(*args)
        status = 6 if args[0] == "status" else 1  # not found; invalid request (app.cli.client.EXIT_CODES)
        assert r.exit_code == status and r.output.startswith(text) and len(r.output.splitlines()) == 1, r.output


def test_each_account_sees_its_own_lists(redis_url, s3, bucket, sandbox):
    sub = sandbox.add_subaccount(sandbox.account_sid, friendly_name="team-a")
    env = {
        "TWILIO_DISCOVER_SUBACCOUNTS": "true",
        "TWILIO_API_BASE_URL": sandbox.api_url,
        "S3_KEY_TEMPLATE": "{prefix}account={account_sid}/{resource_type}/day={day}/{resource_type}-{day}.json.gz",
    }
    app = create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, "https://relay.example.com", **env)))
    client = app.test_client()
    remote = sandbox.twilio_client(sub["sid"], sub["auth_token"], sub["sid"]).bulkexports.v1.exports("Calls")
    sid = remote.export_custom_jobs.create(start_day=day(4), end_day=day(4), friendly_name="team job").job_sid
    sandbox.complete(sid)
    r = client.get("/api/twilio/jobs?resource_type=Calls", headers=AUTH)
    assert r.status_code == 400 and "account is required" in r.get_json()["detail"]  # two accounts served
    theirs = twilio_jobs(client, f"resource_type=Calls&account={sub['sid']}")
    assert [j["job_sid"] for j in theirs["jobs"]] == [sid] and theirs["account_sid"] == sub["sid"]
    assert twilio_jobs(client, f"resource_type=Calls&account={sandbox.account_sid}")["jobs"] == []
    days = client.get(f"/api/twilio/days/Calls?account={sub['sid']}", headers=AUTH).get_json()["days"]
    assert [d["day"] for d in days] == [day(4)]
    assert client.get(f"/api/twilio/days/Calls?account={sandbox.account_sid}", headers=AUTH).get_json()["days"] == []
