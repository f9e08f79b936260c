"""Issue 20, items 4 and 7, against the Procfile processes (gunicorn, rq worker, poller), Redis, SeaweedFS and the
sandbox, with a parent account and three discovered subaccounts.

- A feed cannot start before EARLIEST_DAY: the API and the console form answer 400 and store nothing.
- Eight feeds at that bound: ``/livez``, ``/readyz``, ``/health`` and ``/metrics`` each answer in < 100 ms of server
  time (gunicorn's access log, ``duration_us``) across more than one refresh of their 2-second caches, and the web
  worker's memory stays put: no anonymous request computes coverage (the poller's feed summaries are read).
- Anonymous ``/health`` and ``/metrics`` name no account (a customer's friendly name, any SID) and carry no Twilio
  error text; ``/health`` with the admin token names them, and a wrong token there is a 401.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.platform.days import EARLIEST_DAY
from app.web.health import CACHE_SECONDS
from devstack.calendar import Calendar
from devstack.procs import wait_until
from tests.browser.pages import console_session
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

T0 = date(2026, 6, 10)
LABEL = "zephyr-holdings-7731"  # a customer's friendly name (Twilio's subaccount name, discovered)
TEMPLATE = "{prefix}account={account_sid}/{resource_type}/day={day}/{resource_type}-{day}.json.gz"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PROBES = ("/livez", "/readyz", "/health", "/metrics")
SERVER_BOUND_US = 100_000  # the bound: 100 ms of server time per answer (9 in 10 answers, see below)
OUTLIER_BOUND_US = 1_000_000  # any answer: coverage computed per request took 0.4-0.6 s here, 6-9 s in the issue
MEMORY_GROWTH_BOUND = 16 * 2**20  # the issue saw 108 -> 237 MiB; summaries cost nothing per day


@pytest.fixture
def family(sandbox, tmp_path):
    """The sandbox's account as the parent and three subaccounts, one named LABEL whose credentials are revoked."""
    sandbox.update_scenario(daily_quota_days=8, step_seconds=0.05, days_per_step=50)
    named = sandbox.add_subaccount(sandbox.account_sid, friendly_name=LABEL)
    others = [sandbox.add_subaccount(sandbox.account_sid, friendly_name=f"team-{n}") for n in "ab"]
    sandbox.revoke_credentials(named["sid"])
    calendar = Calendar(sandbox, tmp_path / "clock-offset")
    calendar.set_today(T0)
    return [sandbox.account_sid, named["sid"], *(s["sid"] for s in others)], named["sid"], calendar


def start(make_stack, sandbox, calendar: Calendar):
    return make_stack(
        workers=1,
        poller=True,
        **calendar.env(),
        WEB_CONCURRENCY="1",  # one web worker: the one whose memory is watched
        TWILIO_DISCOVER_SUBACCOUNTS="true",
        TWILIO_API_BASE_URL=sandbox.api_url,
        ACCOUNTS_REFRESH_SECONDS="10",
        S3_KEY_TEMPLATE=TEMPLATE,
        TWILIO_DAILY_DAY_QUOTA="8",
        POLL_INTERVAL_SECONDS="2",
        SYNC_FEEDS=f"Calls:{EARLIEST_DAY},Messages:{EARLIEST_DAY}",  # 2 types x 4 accounts: 8 feeds at the bound
    )


def detail(url: str) -> dict:
    r = requests.get(f"{url}/health", headers=AUTH, timeout=10)
    assert r.headers["Content-Type"] == "application/health+json" and "no-store" in r.headers["Cache-Control"]
    return dict(r.json())


def summarised(url: str, revoked: str) -> dict | None:
    """The named /health once the poller summarised all 8 feeds and recorded the revoked account's refusal."""
    doc = detail(url)
    feeds = doc["checks"].get("feeds:lagDays", [])
    accounts = {c.get("account"): c for c in doc["checks"].get("accounts:state", [])}
    refused = accounts.get(revoked, {}).get("observedValue") == "credentials refused"
    return doc if len(feeds) == 8 and refused else None


def web_worker(stack) -> psutil.Process:
    """The gunicorn worker (WEB_CONCURRENCY=1): the only gunicorn process without a gunicorn child."""
    tree = [psutil.Process(stack.procs["web"].pid), *psutil.Process(stack.procs["web"].pid).children(recursive=True)]
    gunicorns = [p for p in tree if "gunicorn" in " ".join(p.cmdline())]
    (worker,) = [p for p in gunicorns if not any("gunicorn" in " ".join(c.cmdline()) for c in p.children())]
    return worker


def feed_days(metrics: str) -> dict[str, float]:
    """resource type -> days of its feeds' windows, every state summed (relay_feed_days)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "relay_feed_days":
                rt = sample.labels["resource_type"]
                out[rt] = out.get(rt, 0) + sample.value
    return out


def server_times_us(stack, tag: str) -> dict[str, list[int]]:
    """path -> duration_us of every request whose X-Request-Id starts with ``tag``, from gunicorn's access log."""
    times: dict[str, list[int]] = {}
    log = stack.procs["web"].log_path.read_text()
    for line in log.splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if record.get("logger") != "gunicorn.access":
            continue
        access = json.loads(record["msg"])
        if access["request_id"].startswith(tag):
            assert access["status"] == 200, access
            times.setdefault(access["path"], []).append(int(access["duration_us"]))
    return times


def test_feeds_before_the_bound_are_refused_by_the_api_and_the_console(make_stack, sandbox):
    stack = make_stack(workers=0)
    too_old = (EARLIEST_DAY - timedelta(days=1)).isoformat()
    r = stack.api("PUT", "/api/feeds/Calls", json={"since": too_old})
    assert r.status_code == 400 and f"since must be {EARLIEST_DAY} or later" in r.json()["detail"]
    http, csrf = console_session(stack.url)
    form = {"resource_type": "Calls", "since": too_old, "enabled": "on", "csrf_token": csrf}
    page = http.post(f"{stack.url}/console/feeds", data=form, timeout=10)
    assert page.status_code == 400 and f"since must be {EARLIEST_DAY} or later" in page.text
    assert stack.api("GET", "/api/feeds").json() == {"feeds": []}  # nothing stored
    at_bound = stack.api("PUT", "/api/feeds/Calls", json={"since": EARLIEST_DAY.isoformat(), "enabled": False})
    assert at_bound.status_code == 200, at_bound.text


def test_eight_feeds_at_the_bound_cost_anonymous_probes_nothing_and_name_no_account(make_stack, family, sandbox):
    sids, revoked, calendar = family
    stack = start(make_stack, sandbox, calendar)
    wait_until(lambda: summarised(stack.url, revoked), timeout=120, interval=0.5, what="8 feeds summarised")
    window_days = (T0 - timedelta(days=2) - EARLIEST_DAY).days + 1  # since the bound to today-2: ~18 years
    days = feed_days(requests.get(f"{stack.url}/metrics", timeout=10).text)
    assert days == {"Calls": 4 * window_days, "Messages": 4 * window_days}, (days, window_days)

    worker = web_worker(stack)
    for path in PROBES:  # warm: first imports, connections
        assert requests.get(f"{stack.url}{path}", timeout=10).status_code in (200, 503)
    rss_before = worker.memory_info().rss
    tag = f"cost-{uuid.uuid4().hex[:8]}-"
    deadline = time.monotonic() + 2.5 * CACHE_SECONDS  # every cached check is recomputed at least once
    n = 0
    while time.monotonic() < deadline:
        for path in PROBES:
            r = requests.get(f"{stack.url}{path}", headers={"X-Request-Id": f"{tag}{n}"}, timeout=10)
            assert r.status_code == 200 or (path == "/health" and r.status_code == 503), (path, r.status_code)
            n += 1
    rss_after = worker.memory_info().rss

    times = wait_until(
        lambda: (t := server_times_us(stack, tag)) and sum(map(len, t.values())) == n and t,
        timeout=10,
        what="every probe in the access log",
    )
    # The 90th percentile, not the maximum, against the 100 ms: on a loaded 2-core CI machine one answer may wait
    # for a core (the poller recomputes 8 x 6,700 days beside it); computing coverage per request would raise
    # every /health and /metrics answer (0.4-0.6 s measured), which both bounds catch.
    p90 = {path: sorted(us)[(len(us) * 9) // 10 - 1] for path, us in times.items()}
    slowest = {path: max(us) for path, us in times.items()}
    assert set(p90) == set(PROBES)
    assert all(us < SERVER_BOUND_US for us in p90.values()), (p90, slowest)
    assert all(us < OUTLIER_BOUND_US for us in slowest.values()), slowest
    assert rss_after - rss_before < MEMORY_GROWTH_BOUND, (rss_before, rss_after)

    error = {a["sid"]: a for a in stack.api("GET", "/api/accounts").json()["accounts"]}[revoked]["error"]
    assert error and LABEL not in error  # Twilio's text, recorded for the revoked account
    named = [LABEL, error, json.dumps(error)[1:-1], *sids]  # the error as is and as a JSON string holds it
    for path in ("/health", "/metrics"):
        body = requests.get(f"{stack.url}{path}", timeout=10).text
        leaked = [s for s in named if s in body]
        assert not leaked, (path, leaked)
    anonymous = requests.get(f"{stack.url}/health", timeout=10).json()["checks"]
    states = {c["componentId"]: c["observedValue"] for c in anonymous["accounts:state"]}
    assert states == {"ok": 3, "credentials refused": 1}
    assert sorted(c["componentId"] for c in anonymous["feeds:lagDays"]) == ["Calls", "Messages"]
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    assert (
        'relay_accounts{state="credentials refused"} 1.0' in metrics
        and 'relay_feeds{resource_type="Calls"} 4.0' in metrics
    )

    named_checks = detail(stack.url)["checks"]
    by_account = {c["account"]: c for c in named_checks["accounts:state"]}
    assert sorted(by_account) == sorted(sids)
    assert (by_account[revoked]["componentId"], by_account[revoked]["output"]) == (LABEL, error)
    feeds = {(c["label"], c["componentId"]) for c in named_checks["feeds:lagDays"]}
    assert {(LABEL, "Calls"), (LABEL, "Messages"), ("team-a", "Calls")} <= feeds and len(feeds) == 8
    wrong = requests.get(f"{stack.url}/health", headers={"Authorization": "Bearer not-the-token"}, timeout=10)
    assert wrong.status_code == 401 and LABEL not in wrong.text
