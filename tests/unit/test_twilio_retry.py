"""The HTTP retry policy of the Twilio client (pure urllib3 objects, no network)."""

from __future__ import annotations

import pytest
from urllib3.response import HTTPResponse

from app.twilio_api import API_PROFILE, WORKER_PROFILE, _http_client


@pytest.mark.parametrize("profile", [API_PROFILE, WORKER_PROFILE])
def test_retry_after_cap_holds_on_every_retry_not_only_the_first(profile):
    """urllib3 copies the Retry object at each retry; the cap must survive the copies (it did not, once)."""
    retry = _http_client(profile).session.get_adapter("https://bulkexports.twilio.com").max_retries
    busy = HTTPResponse(status=429, headers={"Retry-After": "3600"})
    for _ in range(profile.attempts - 1):
        assert retry.get_retry_after(busy) == profile.max_retry_after
        retry = retry.increment(method="GET", url="/v1/Exports/Jobs/JS1", response=busy)


def test_post_is_repeated_only_after_a_429():
    retry = _http_client(API_PROFILE).session.get_adapter("https://bulkexports.twilio.com").max_retries
    assert retry.is_retry("POST", 429, has_retry_after=True)
    assert not retry.is_retry("POST", 503)
    assert retry.is_retry("GET", 503)
