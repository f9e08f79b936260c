"""Numbers in request arguments (issue 20, item 13): ``/console/jobs?page=²`` answered 500 (``isdigit()`` accepts
"²", ``int()`` does not). Every number the API and the console read from a request goes through one rule
(``app.platform.validation.bounded_int``); here every kind of bad number is sent to each of them, through the real
gunicorn, and each answers 400 naming the argument."""

from __future__ import annotations

import pytest
import requests

from tests.browser.pages import console_session
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

BAD = ["²", "\u0663", "\uff11", "+1", "-1", " 1", "1_0", "1e3", "0x10", "1.0", "", "9" * 30, "99999999"]


def test_bad_numbers_are_a_400_everywhere(make_stack) -> None:
    stack = make_stack(workers=0)
    r = stack.api("PUT", "/api/feeds/Messages", json={"since": "2026-01-01", "enabled": False})
    assert r.status_code == 200, r.text
    console, _ = console_session(stack.url)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    targets = [
        (api, "/api/jobs", "page", "3"),
        (api, "/api/jobs", "page_size", "10"),
        (console, "/console/jobs", "page", "1"),
        (console, "/console/feeds/Messages/calendar", "year", "2026"),
    ]
    for http, path, name, good in targets:
        assert http.get(f"{stack.url}{path}", params={name: good}, timeout=10).status_code == 200, (path, name)
        for bad in BAD:
            answer = http.get(f"{stack.url}{path}", params={name: bad}, timeout=10)
            assert answer.status_code == 400, (path, name, bad, answer.status_code)
            assert name in (answer.json()["detail"] if path.startswith("/api/") else answer.text), (path, bad)
