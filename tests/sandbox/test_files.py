"""FetchDay's 307 and the files listener: single-use links, expiry, S3-style errors, byte-exact content."""

from __future__ import annotations

import gzip
import hashlib
import http.client
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from devstack.procs import wait_until
from devstack.sandbox_process import SandboxProcess
from sandbox.content import describe_day_file

DAYS = {
    "2026-11-01": "completed",
    "2026-11-02": "empty_file",
    "2026-11-03": "empty_404",
    "2026-11-04": "failed",
}


@pytest.fixture
def days_ready(sb: SandboxProcess, api: requests.Session) -> str:
    """A finished Calls job over 2026-11-01..04 with one outcome per day; returns the FetchDay base URL."""
    sb.set_scenario(
        today="2026-11-10",
        step_seconds=0,
        days={
            "2026-11-01": {"outcome": "completed", "size": 70_000},
            **{d: o for d, o in DAYS.items() if d != "2026-11-01"},
        },
    )
    resp = api.post(
        f"{sb.api_url}/v1/Exports/Calls/Jobs",
        data={"StartDay": "2026-11-01", "EndDay": "2026-11-04", "FriendlyName": "files"},
    )
    sid = resp.json()["job_sid"]
    wait_until(lambda: sb.job(sid)["final"], timeout=10, what="job final")
    return f"{sb.api_url}/v1/Exports/Calls/Days"


def fetch_link(api: requests.Session, url: str) -> str:
    resp = api.get(url, allow_redirects=False)
    assert resp.status_code == 307, resp.text
    body = resp.json()
    assert set(body) == {"redirect_to"}
    assert resp.headers["Location"] == body["redirect_to"]
    return str(body["redirect_to"])


def s3_code(resp: requests.Response) -> str:
    assert resp.headers["Content-Type"].startswith("application/xml")
    assert resp.text.startswith("<?xml") and "<Error><Code>" in resp.text
    return resp.text.split("<Code>")[1].split("</Code>")[0]


def test_fetch_day_redirects_to_a_fresh_presigned_link(
    sb: SandboxProcess, api: requests.Session, days_ready: str
) -> None:
    a = fetch_link(api, f"{days_ready}/2026-11-01")
    b = fetch_link(api, f"{days_ready}/2026-11-01")
    assert a != b
    parts = urlsplit(a)
    assert f"{parts.scheme}://{parts.netloc}" == sb.files_url
    assert parts.path.startswith(f"/daily/day%3D2026-11-01/type%3DCalls/account%3D{sb.account_sid}/created_time%3D")
    assert parts.path.endswith(".json.gz") and "/part-0" in parts.path
    query = dict(p.split("=", 1) for p in parts.query.split("&"))
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and query["X-Amz-Expires"] == "240"
    assert len(query["X-Amz-Signature"]) == 64 and int(query["X-Amz-Signature"], 16) >= 0


def test_download_is_byte_exact_and_matches_every_description(
    sb: SandboxProcess, api: requests.Session, days_ready: str
) -> None:
    listed = {d["day"]: d for d in api.get(days_ready).json()["days"]}
    link = fetch_link(api, f"{days_ready}/2026-11-01")
    resp = requests.get(link)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] in ("application/octet-stream", "binary/octet-stream")
    data = resp.content
    expected = sb.expected_day("Calls", "2026-11-01")
    local = describe_day_file("Calls", "2026-11-01", 70_000, account_sid=sb.account_sid)
    assert int(resp.headers["Content-Length"]) == len(data) == listed["2026-11-01"]["size"] == 70_000
    assert (expected["size"], expected["sha256"], expected["records"]) == (local.size, local.sha256, local.records)
    assert hashlib.sha256(data).hexdigest() == local.sha256
    assert gzip.decompress(data).count(b"\n") == local.records
    # The sandbox records the transfer once its body generator ends, which can trail the client's last byte.
    wait_until(lambda: sb.downloads()[-1]["finished_at"], timeout=10)
    log = sb.downloads()[-1]
    assert (log["status"], log["bytes_sent"], log["completed"], log["day"]) == (200, 70_000, True, "2026-11-01")


def test_links_are_single_use(sb: SandboxProcess, api: requests.Session, days_ready: str) -> None:
    link = fetch_link(api, f"{days_ready}/2026-11-01")
    assert requests.get(link).status_code == 200
    second = requests.get(link)
    assert second.status_code == 403 and s3_code(second) == "AccessDenied"
    assert requests.get(fetch_link(api, f"{days_ready}/2026-11-01")).status_code == 200  # ask again: fresh link


def test_links_expire(sb: SandboxProcess, api: requests.Session, days_ready: str) -> None:
    sb.update_scenario(link_ttl_seconds=30)
    link = fetch_link(api, f"{days_ready}/2026-11-01")
    assert "X-Amz-Expires=30" in link
    sb.advance_clock(31)
    resp = requests.get(link)
    assert resp.status_code == 403 and s3_code(resp) == "AccessDenied"
    assert "Request has expired" in resp.text


def test_authorization_header_is_rejected_like_s3(sb: SandboxProcess, api: requests.Session, days_ready: str) -> None:
    link = fetch_link(api, f"{days_ready}/2026-11-01")
    resp = requests.get(link, auth=sb.auth)
    assert resp.status_code == 400 and s3_code(resp) == "InvalidArgument"
    assert "Only one auth mechanism allowed" in resp.text


def test_tampered_links_and_other_methods_are_refused(
    sb: SandboxProcess, api: requests.Session, days_ready: str
) -> None:
    link = fetch_link(api, f"{days_ready}/2026-11-01")
    assert s3_code(requests.get(link[:-4] + "0000")) == "SignatureDoesNotMatch"
    assert s3_code(requests.get(link.replace("day%3D2026-11-01", "day%3D2026-11-02"))) == "SignatureDoesNotMatch"
    assert s3_code(requests.get(link.split("?")[0])) == "AccessDenied"
    head = requests.head(link)
    assert head.status_code == 403
    assert requests.get(link).status_code == 200  # refused requests did not spend the link


def test_plain_requests_follows_the_307_without_leaking_auth(sb: SandboxProcess, days_ready: str) -> None:
    resp = requests.get(f"{days_ready}/2026-11-01", auth=sb.auth)  # requests drops auth on a port change
    assert resp.status_code == 200 and [r.status_code for r in resp.history] == [307]
    assert hashlib.sha256(resp.content).hexdigest() == sb.expected_day("Calls", "2026-11-01")["sha256"]


def test_empty_variants_and_failed_days(sb: SandboxProcess, api: requests.Session, days_ready: str) -> None:
    listed = {d["day"]: d for d in api.get(days_ready).json()["days"]}
    assert set(listed) == {"2026-11-01", "2026-11-02"}
    empty = requests.get(fetch_link(api, f"{days_ready}/2026-11-02"))
    assert empty.status_code == 200 and gzip.decompress(empty.content) == b""
    assert listed["2026-11-02"]["size"] == len(empty.content) == sb.expected_day("Calls", "2026-11-02")["size"]
    for day in ("2026-11-03", "2026-11-04", "2026-11-05"):
        resp = api.get(f"{days_ready}/{day}", allow_redirects=False)
        assert resp.status_code == 404 and resp.json()["code"] == 20404
    assert sb.expected_day("Calls", "2026-11-03")["exists"] is False
    assert sb.expected_day("Calls", "2026-11-03")["outcome"] == "empty_404"


def test_expected_day_before_any_job_follows_the_scenario(sb: SandboxProcess) -> None:
    sb.set_scenario(today="2026-11-10", default_day_size=5000, seed=7)
    exp: dict[str, Any] = sb.expected_day("Messages", "2026-09-09")
    local = describe_day_file("Messages", "2026-09-09", 5000, seed=7, account_sid=sb.account_sid)
    assert exp["source"] == "scenario" and exp["size"] == 5000 and exp["sha256"] == local.sha256


def test_cut_connection_gives_a_short_read(sb: SandboxProcess, api: requests.Session, days_ready: str) -> None:
    sb.set_faults(files={"cut": 1})
    link = urlsplit(fetch_link(api, f"{days_ready}/2026-11-01"))
    conn = http.client.HTTPConnection(link.hostname, link.port, timeout=10)
    conn.request("GET", f"{link.path}?{link.query}")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == "70000"
    with pytest.raises(http.client.IncompleteRead) as err:
        resp.read()
    assert len(err.value.partial) == 35_000  # half the file by default
    conn.close()
    wait_until(lambda: sb.downloads()[-1]["finished_at"], timeout=10)
    log = sb.downloads()[-1]
    assert (log["fault"], log["bytes_sent"], log["completed"]) == ("cut", 35_000, False)
    sb.set_faults(files={"cut": 1, "cut_at": 1000})
    link2 = fetch_link(api, f"{days_ready}/2026-11-01")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # what a requests-based worker sees
        requests.get(link2)
    assert requests.get(fetch_link(api, f"{days_ready}/2026-11-01")).status_code == 200  # counter used up


def test_file_faults_500_expired_and_slow(sb: SandboxProcess, api: requests.Session, days_ready: str) -> None:
    sb.set_faults(files={"500": 1, "expired": 1})
    first = requests.get(fetch_link(api, f"{days_ready}/2026-11-01"))
    assert first.status_code == 403 and "Request has expired" in first.text
    second = requests.get(fetch_link(api, f"{days_ready}/2026-11-01"))
    assert second.status_code == 500 and s3_code(second) == "InternalError"
    assert requests.get(fetch_link(api, f"{days_ready}/2026-11-01")).status_code == 200
    sb.set_faults(files={"slow_ms": 2000})
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(fetch_link(api, f"{days_ready}/2026-11-01"), timeout=(5, 0.2))
    sb.set_faults(files={"chunk_delay_ms": 5})
    resp = requests.get(fetch_link(api, f"{days_ready}/2026-11-01"))
    assert len(resp.content) == 70_000  # 2 chunks with a delay between: slower, still complete
