"""Every metric the alert rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana) use is exported by a
running relay: web, worker and poller with a feed (SYNC_FEEDS), scraped at /metrics like Prometheus would."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from devstack.procs import wait_until
from tests.deploy.monitoring import exported_names, used_metric_names

pytestmark = pytest.mark.e2e


def gauge(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def refuse_one_api_request_and_one_console_sign_in(base_url: str) -> None:
    """The authentication counters are labelled: they are exported once a refusal was counted."""
    wrong = "wrong-token-" + "x" * 20
    api = requests.get(f"{base_url}/api/jobs", headers={"Authorization": f"Bearer {wrong}"}, timeout=10)
    assert api.status_code == 401, api.status_code
    http = requests.Session()  # the sign-in form's CSRF token lives in the session cookie (tests/browser/pages.py)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', http.get(f"{base_url}/console/sign-in", timeout=10).text)
    assert csrf
    signin = http.post(f"{base_url}/console/sign-in", data={"token": wrong, "csrf_token": csrf[1]}, timeout=10)
    assert signin.status_code == 401, signin.status_code


def test_a_running_relay_exports_every_metric_of_the_rules_and_the_dashboard(make_stack):
    since = (datetime.now(UTC).date() - timedelta(days=6)).isoformat()
    stack = make_stack(workers=1, poller=True, SYNC_FEEDS=f"Calls:{since}")
    # one webhook: request metrics are per process and appear once something was counted (an unknown token: 404)
    assert requests.post(f"{stack.url}/hooks/bulkexport?token={'q' * 43}", timeout=10).status_code == 404
    refuse_one_api_request_and_one_console_sign_in(stack.url)

    def scraped_after_a_poll() -> str | None:
        text = requests.get(f"{stack.url}/metrics", timeout=10).text
        ages = gauge(text, "relay_poller_last_run_age_seconds")
        return text if ages and all(v < 60 for v in ages.values()) and gauge(text, "relay_feed_lag_days") else None

    text = wait_until(scraped_after_a_poll, timeout=60, interval=0.5, what="a scrape after the first poll")
    used = used_metric_names()
    assert len(used) >= 15, used  # the rules and the dashboard were read
    missing = used - exported_names(text)
    assert not missing, f"used by deploy/prometheus or deploy/grafana but not exported: {sorted(missing)}"
    assert gauge(text, "relay_registry_lost") == {(): 0.0}
    assert [dict(labels)["resource_type"] for labels in gauge(text, "relay_feed_lag_days")] == ["Calls"]
    assert gauge(text, "relay_api_auth_total") == {(("outcome", "refused"),): 1.0}
    assert gauge(text, "relay_console_signins_total") == {(("outcome", "refused"),): 1.0}
