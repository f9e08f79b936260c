"""Several accounts: isolation, credentials (tokens, API keys, rotation, revocation, suspension), the Accounts
API's rules, webhook signatures per account, and one quota per family."""

from __future__ import annotations

import inspect
import re
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.request_validator import RequestValidator
from twilio.rest.api.v2010.account import AccountInstance

from devstack.procs import wait_until
from devstack.sandbox_process import SandboxError, SandboxProcess
from tests.sandbox.receiver import WebhookReceiver
from tests.sandbox.test_api import assert_twilio_error

# Twilio's api.v2010.account schema (twilio-oai spec/json/twilio_api_v2010.json) and the 2010 API's list page.
ACCOUNT_FIELDS = {
    "auth_token",
    "date_created",
    "date_updated",
    "friendly_name",
    "owner_account_sid",
    "sid",
    "status",
    "subresource_uris",
    "type",
    "uri",
}
PAGE_FIELDS = {"accounts", "end", "first_page_uri", "next_page_uri", "page", "page_size", "previous_page_uri", "start"}
PAGE_FIELDS |= {"uri"}
RFC2822 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")


@pytest.fixture
def family(sb: SandboxProcess) -> dict[str, dict[str, Any]]:
    """A parent P with subaccounts A and B, and an unrelated main account X."""
    parent = sb.add_account(friendly_name="Parent")
    return {
        "P": parent,
        "A": sb.add_subaccount(parent["sid"], friendly_name="Sub A"),
        "B": sb.add_subaccount(parent["sid"], friendly_name="Sub B"),
        "X": sb.add_account(friendly_name="Other"),
    }


def auth(acct: dict[str, Any]) -> tuple[str, str]:
    return (acct["sid"], acct["auth_token"])


def create_job(sb: SandboxProcess, creds: tuple[str, str], start: str, end: str, **extra: str) -> requests.Response:
    data = {"StartDay": start, "EndDay": end, "FriendlyName": f"job {creds[0][-4:]}", **extra}
    return requests.post(f"{sb.api_url}/v1/Exports/Calls/Jobs", data=data, auth=creds)


def accounts_list(sb: SandboxProcess, creds: tuple[str, str], **params: Any) -> requests.Response:
    return requests.get(f"{sb.api_url}/2010-04-01/Accounts.json", params=params, auth=creds)


def fetch_account(sb: SandboxProcess, creds: tuple[str, str], sid: str) -> requests.Response:
    return requests.get(f"{sb.api_url}/2010-04-01/Accounts/{sid}.json", auth=creds)


def test_accounts_never_see_each_others_jobs_days_or_configurations(
    sb: SandboxProcess, family: dict[str, dict[str, Any]]
) -> None:
    sb.update_scenario(step_seconds=0)
    a, b = auth(family["A"]), auth(family["B"])
    job_a = create_job(sb, a, "2026-11-01", "2026-11-02").json()["job_sid"]
    job_b = create_job(sb, b, "2026-11-05", "2026-11-05").json()["job_sid"]
    wait_until(lambda: all(j["final"] for j in sb.jobs()), timeout=10, what="jobs final")
    base = f"{sb.api_url}/v1/Exports"
    assert [j["job_sid"] for j in requests.get(f"{base}/Calls/Jobs", auth=a).json()["jobs"]] == [job_a]
    assert [d["day"] for d in requests.get(f"{base}/Calls/Days", auth=a).json()["days"]] == ["2026-11-01", "2026-11-02"]
    assert [d["day"] for d in requests.get(f"{base}/Calls/Days", auth=b).json()["days"]] == ["2026-11-05"]
    assert requests.get(f"{base}/Calls/Days", auth=sb.auth).json()["days"] == []  # the default account
    assert_twilio_error(requests.get(f"{base}/Jobs/{job_a}", auth=b), 404, 20404)
    assert_twilio_error(requests.delete(f"{base}/Jobs/{job_a}", auth=b), 404, 20404)
    assert_twilio_error(requests.get(f"{base}/Calls/Days/2026-11-01", auth=b), 404, 20404)
    assert requests.get(f"{base}/Calls/Days/2026-11-01", auth=a, allow_redirects=False).status_code == 307
    requests.post(f"{base}/Calls/Configuration", data={"Enabled": "true"}, auth=a)
    assert requests.get(f"{base}/Calls/Configuration", auth=a).json()["enabled"] is True
    assert requests.get(f"{base}/Calls/Configuration", auth=b).json()["enabled"] is False
    assert [j["job_sid"] for j in sb.jobs(family["B"]["sid"])] == [job_b]
    assert {j["account_sid"] for j in sb.jobs()} == {family["A"]["sid"], family["B"]["sid"]}


def test_day_files_carry_their_account_in_key_and_content(
    sb: SandboxProcess, family: dict[str, dict[str, Any]]
) -> None:
    sb.update_scenario(step_seconds=0)
    a = family["A"]
    create_job(sb, auth(a), "2026-11-01", "2026-11-01")
    wait_until(lambda: all(j["final"] for j in sb.jobs()), timeout=10, what="job final")
    link = requests.get(f"{sb.api_url}/v1/Exports/Calls/Days/2026-11-01", auth=auth(a), allow_redirects=False)
    url = link.json()["redirect_to"]
    assert f"account%3D{a['sid']}/" in url
    content = requests.get(url).content
    expected = sb.expected_day("Calls", "2026-11-01", account=a["sid"])
    assert len(content) == expected["size"] and expected["exists"]
    assert sb.expected_day("Calls", "2026-11-01")["exists"] is False  # not the default account's


def test_api_keys_act_as_the_account_that_owns_them(sb: SandboxProcess, family: dict[str, dict[str, Any]]) -> None:
    a = family["A"]
    key = sb.add_api_key(a["sid"])
    assert key["sid"].startswith("SK") and key["account_sid"] == a["sid"]
    job = create_job(sb, (key["sid"], key["secret"]), "2026-11-01", "2026-11-01").json()["job_sid"]
    assert sb.job(job)["account_sid"] == a["sid"]
    client = sb.twilio_client(key["sid"], key["secret"], account_sid=a["sid"])
    assert [j.job_sid for j in client.bulkexports.v1.exports("Calls").export_custom_jobs.list()] == [job]
    assert_twilio_error(create_job(sb, (key["sid"], "wrong"), "2026-11-01", "2026-11-01"), 401, 20003)
    sb.delete_api_key(a["sid"], key["sid"])
    assert_twilio_error(create_job(sb, (key["sid"], key["secret"]), "2026-11-01", "2026-11-01"), 401, 20003)


def test_parent_lists_itself_and_its_subaccounts_with_their_tokens(
    sb: SandboxProcess, family: dict[str, dict[str, Any]]
) -> None:
    p, a, b = family["P"], family["A"], family["B"]
    resp = accounts_list(sb, auth(p))
    assert resp.status_code == 200, resp.text
    page = resp.json()
    assert set(page) == PAGE_FIELDS
    assert [x["sid"] for x in page["accounts"]] == [p["sid"], a["sid"], b["sid"]]  # not X, not the default
    for item in page["accounts"]:
        assert set(item) == ACCOUNT_FIELDS
        assert item["owner_account_sid"] == p["sid"] and item["status"] == "active" and item["type"] == "Full"
        assert item["uri"] == f"/2010-04-01/Accounts/{item['sid']}.json"
        assert RFC2822.match(item["date_created"]) and RFC2822.match(item["date_updated"])
    assert {x["sid"]: x["auth_token"] for x in page["accounts"]} == {
        p["sid"]: p["auth_token"],
        a["sid"]: a["auth_token"],
        b["sid"]: b["auth_token"],
    }
    assert (page["start"], page["end"], page["page"], page["next_page_uri"]) == (0, 2, 0, None)
    one = accounts_list(sb, auth(p), PageSize=1).json()
    assert len(one["accounts"]) == 1 and one["next_page_uri"].startswith("/2010-04-01/Accounts.json?")
    second = requests.get(sb.api_url + one["next_page_uri"], auth=auth(p)).json()
    assert [x["sid"] for x in second["accounts"]] == [a["sid"]] and second["start"] == 1
    named = accounts_list(sb, auth(p), FriendlyName="Sub B").json()["accounts"]
    assert [x["sid"] for x in named] == [b["sid"]]
    assert_twilio_error(accounts_list(sb, auth(p), Status="asleep"), 400, 20001)


def test_a_subaccount_lists_and_fetches_only_itself(sb: SandboxProcess, family: dict[str, dict[str, Any]]) -> None:
    p, a, b, x = family["P"], family["A"], family["B"], family["X"]
    assert [acct["sid"] for acct in accounts_list(sb, auth(a)).json()["accounts"]] == [a["sid"]]
    assert fetch_account(sb, auth(a), a["sid"]).json()["auth_token"] == a["auth_token"]
    assert fetch_account(sb, auth(p), a["sid"]).json()["auth_token"] == a["auth_token"]
    assert fetch_account(sb, auth(p), p["sid"]).status_code == 200
    for caller, target in ((a, p["sid"]), (a, b["sid"]), (x, a["sid"]), (p, x["sid"]), (p, sb.account_sid)):
        assert_twilio_error(fetch_account(sb, auth(caller), target), 403, 20403)
    assert_twilio_error(fetch_account(sb, auth(p), "AC" + "0" * 32), 404, 20404)
    assert_twilio_error(fetch_account(sb, auth(p), "not-a-sid"), 404, 20404)


@pytest.mark.parametrize("path", ["/2010-04-01/Accounts.json", "/2010-04-01/Accounts/{sid}.json"])
def test_accounts_api_refuses_bad_credentials_and_api_keys(
    sb: SandboxProcess, family: dict[str, dict[str, Any]], path: str
) -> None:
    p = family["P"]
    url = sb.api_url + path.format(sid=p["sid"])
    for creds in (None, (p["sid"], "0" * 32), (family["A"]["sid"], p["auth_token"]), ("AC" + "1" * 32, "x")):
        resp = requests.get(url, auth=creds)
        assert_twilio_error(resp, 401, 20003)
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
    key = sb.add_api_key(p["sid"])
    assert_twilio_error(requests.get(url, auth=(key["sid"], key["secret"])), 403, 20403)


def test_twilio_python_reads_the_accounts_api(sb: SandboxProcess, family: dict[str, dict[str, Any]]) -> None:
    p, a = family["P"], family["A"]
    client = sb.twilio_client(p["sid"], p["auth_token"], account_sid=p["sid"])
    listed = client.api.v2010.accounts.list(page_size=1)  # pages of one: the SDK follows next_page_uri
    assert [x.sid for x in listed] == [p["sid"], a["sid"], family["B"]["sid"]]
    fetched = client.api.v2010.accounts(a["sid"]).fetch()
    assert (fetched.auth_token, fetched.owner_account_sid, fetched.status) == (a["auth_token"], p["sid"], "active")
    assert fetched.date_created is not None  # parsed as RFC 2822
    active = client.api.v2010.accounts.list(status="active")
    assert len(active) == 3
    # The library, generated from Twilio's spec, reads exactly these fields of an account.
    read = set(re.findall(r'payload\.get\(\s*"(\w+)"', inspect.getsource(AccountInstance.__init__)))
    assert read == ACCOUNT_FIELDS


def test_suspended_accounts_are_refused_and_still_listed_by_the_parent(
    sb: SandboxProcess, family: dict[str, dict[str, Any]]
) -> None:
    p, a = family["P"], family["A"]
    assert sb.suspend_account(a["sid"])["status"] == "suspended"
    body = assert_twilio_error(create_job(sb, auth(a), "2026-11-01", "2026-11-01"), 403, 20005)
    assert "not active" in body["message"]
    assert_twilio_error(fetch_account(sb, auth(a), a["sid"]), 403, 20005)
    assert fetch_account(sb, auth(p), a["sid"]).json()["status"] == "suspended"
    suspended = accounts_list(sb, auth(p), Status="suspended").json()["accounts"]
    assert [x["sid"] for x in suspended] == [a["sid"]]
    assert create_job(sb, auth(family["B"]), "2026-11-01", "2026-11-01").status_code == 201  # siblings unaffected
    sb.update_account(a["sid"], status="closed")
    assert_twilio_error(create_job(sb, auth(a), "2026-11-01", "2026-11-01"), 401, 20003)
    sb.update_account(a["sid"], status="active")
    assert create_job(sb, auth(a), "2026-11-01", "2026-11-01").status_code == 201


def test_revoked_credentials_are_401_until_restored(sb: SandboxProcess, family: dict[str, dict[str, Any]]) -> None:
    p, a = family["P"], family["A"]
    key = sb.add_api_key(a["sid"])
    assert sb.revoke_credentials(a["sid"])["revoked"] is True
    for creds in (auth(a), (key["sid"], key["secret"])):
        assert_twilio_error(requests.get(f"{sb.api_url}/v1/Exports/Calls", auth=creds), 401, 20003)
    seen = fetch_account(sb, auth(p), a["sid"]).json()  # the parent still sees it, active, with the same token
    assert (seen["status"], seen["auth_token"]) == ("active", a["auth_token"])
    assert requests.get(f"{sb.api_url}/v1/Exports/Calls", auth=auth(family["B"])).ok
    sb.restore_credentials(a["sid"])
    assert requests.get(f"{sb.api_url}/v1/Exports/Calls", auth=auth(a)).ok


def test_rotation_replaces_the_token_and_can_keep_the_old_one_as_secondary(
    sb: SandboxProcess, family: dict[str, dict[str, Any]]
) -> None:
    a = family["A"]
    url = f"{sb.api_url}/v1/Exports/Calls"
    kept = sb.rotate_token(a["sid"], keep_secondary=True)
    assert kept["auth_token"] != a["auth_token"] and kept["secondary_auth_token"] == a["auth_token"]
    assert requests.get(url, auth=(a["sid"], a["auth_token"])).ok and requests.get(url, auth=auth(kept)).ok
    fresh = sb.rotate_token(a["sid"])
    assert fresh["secondary_auth_token"] is None
    assert_twilio_error(requests.get(url, auth=(a["sid"], kept["auth_token"])), 401, 20003)
    assert requests.get(url, auth=auth(fresh)).ok
    assert fetch_account(sb, auth(family["P"]), a["sid"]).json()["auth_token"] == fresh["auth_token"]


def test_webhooks_are_signed_with_the_owning_accounts_token(
    sb: SandboxProcess, family: dict[str, dict[str, Any]], receiver: WebhookReceiver
) -> None:
    sb.update_scenario(step_seconds=0.01)
    a, p = family["A"], family["P"]
    create_job(sb, auth(a), "2026-11-01", "2026-11-01", WebhookUrl=f"{receiver.base_url}/job", WebhookMethod="POST")
    hook = f"{receiver.base_url}/daily"
    sb.set_export_configuration("Calls", account=p["sid"], enabled=True, webhook_url=hook, webhook_method="POST")
    sb.advance_days(1)
    reqs = wait_until(lambda: len(receiver.received()) == 2 and receiver.received(), timeout=10, what="2 webhooks")
    assert isinstance(reqs, list)
    by_path = {r.path: r for r in reqs}
    for path, owner, other in (("/job", a, p), ("/daily", p, a)):
        req = by_path[path]
        form = dict(parse_qsl(req.body.decode()))
        signature = req.headers["X-Twilio-Signature"]
        assert RequestValidator(owner["auth_token"]).validate(receiver.base_url + path, form, signature)
        assert not RequestValidator(other["auth_token"]).validate(receiver.base_url + path, form, signature)
        assert not RequestValidator(sb.auth_token).validate(receiver.base_url + path, form, signature)
    wait_until(lambda: len(sb.webhooks()) == 2, timeout=10, what="deliveries logged")
    assert {(d["kind"], d["account_sid"]) for d in sb.webhooks()} == {("job", a["sid"]), ("daily", p["sid"])}


def test_a_family_shares_one_quota_per_simulated_day(sb: SandboxProcess, family: dict[str, dict[str, Any]]) -> None:
    sb.update_scenario(daily_quota_days=10)
    p, a, b, x = (auth(family[k]) for k in "PABX")
    assert create_job(sb, p, "2026-11-01", "2026-11-04").status_code == 201  # 4
    assert create_job(sb, a, "2026-11-01", "2026-11-03").status_code == 201  # 7
    assert create_job(sb, b, "2026-11-01", "2026-11-03").status_code == 201  # 10
    for creds in (p, a, b):
        body = assert_twilio_error(create_job(sb, creds, "2026-11-05", "2026-11-05"), 400, 20001)
        assert body["message"].startswith("Export quota exceeded")
    assert create_job(sb, x, "2026-11-01", "2026-11-08").status_code == 201  # own family
    assert create_job(sb, sb.auth, "2026-11-01", "2026-11-08").status_code == 201  # the default account's own
    for member in ("P", "A", "B"):
        view = sb.quota(family[member]["sid"])
        assert view["family"] == family["P"]["sid"] and view["days"] == {"2026-11-10": 10}
    assert sb.quota_usage(family["X"]["sid"]) == {"2026-11-10": 8}
    sb.advance_days(1)
    assert create_job(sb, a, "2026-11-05", "2026-11-09").status_code == 201
    assert sb.quota_usage(family["B"]["sid"]) == {"2026-11-10": 10, "2026-11-11": 5}


def test_editions_can_be_set_per_account(sb: SandboxProcess, family: dict[str, dict[str, Any]]) -> None:
    sb.update_scenario(editions=False)
    sb.update_account(family["A"]["sid"], editions=True)
    url = f"{sb.api_url}/v1/Exports/Calls/Configuration"
    assert requests.post(url, data={"Enabled": "true"}, auth=auth(family["A"])).json()["enabled"] is True
    assert_twilio_error(requests.post(url, data={"Enabled": "true"}, auth=auth(family["B"])), 403, 20403)


def test_account_control_validates_and_reset_forgets_added_accounts(
    sb: SandboxProcess, family: dict[str, dict[str, Any]]
) -> None:
    a = family["A"]
    fixed = sb.add_account(sid="AC" + "ab" * 16, auth_token="cd" * 16)
    assert requests.get(f"{sb.api_url}/v1/Exports/Calls", auth=("AC" + "ab" * 16, "cd" * 16)).ok
    bad_bodies: list[tuple[str, dict[str, Any], int]] = [
        ("/accounts", {"sid": "AC123"}, 400),
        ("/accounts", {"sid": fixed["sid"]}, 400),
        ("/accounts", {"auth_token": "short"}, 400),
        ("/accounts", {"colour": "blue"}, 400),
        (f"/accounts/{a['sid']}/subaccounts", {}, 400),  # subaccounts cannot own subaccounts
        (f"/accounts/AC{'0' * 32}/subaccounts", {}, 404),
    ]
    for path, body, status in bad_bodies:
        resp = requests.post(f"{sb.api_url}/_sandbox{path}", json=body)
        assert resp.status_code == status, (path, body, resp.text)
    assert requests.patch(f"{sb.api_url}/_sandbox/accounts/{a['sid']}", json={"status": "gone"}).status_code == 400
    with pytest.raises(SandboxError, match="-> 404"):
        sb.account("AC" + "0" * 32)
    assert len(sb.accounts()) == 6
    [default] = [x for x in sb.accounts() if x["default"]]
    assert (default["sid"], default["auth_token"]) == sb.auth
    sb.rotate_token(sb.account_sid)
    sb.reset()
    assert [x["sid"] for x in sb.accounts()] == [sb.account_sid]
    assert requests.get(f"{sb.api_url}/v1/Exports/Calls", auth=sb.auth).ok  # start-up credentials are back
