"""The Twilio client's retry policy and error classification (pure objects, no network)."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response
from urllib3.response import HTTPResponse

from app.twilio.client import (
    API_PROFILE,
    WORKER_PROFILE,
    TwilioNotFound,
    TwilioRejected,
    TwilioUnavailable,
    classify_error,
    retrying_http_client,
)


@pytest.mark.parametrize("profile", [API_PROFILE, WORKER_PROFILE])
def test_retry_after_cap_holds_on_every_retry_not_only_the_first(profile):
    """urllib3 copies the Retry object at each retry; the cap must survive the copies (it did not, once)."""
    retry = retrying_http_client(profile).session.get_adapter("https://bulkexports.twilio.com").max_retries
    busy = HTTPResponse(status=429, headers={"Retry-After": "3600"})
    for _ in range(profile.attempts - 1):
        assert retry.get_retry_after(busy) == profile.max_retry_after
        retry = retry.increment(method="GET", url="/v1/Exports/Jobs/JS1", response=busy)


def test_post_is_repeated_only_after_a_429():
    retry = retrying_http_client(API_PROFILE).session.get_adapter("https://bulkexports.twilio.com").max_retries
    assert retry.is_retry("POST", 429, has_retry_after=True)
    assert not retry.is_retry("POST", 503)
    assert retry.is_retry("GET", 503)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (403, '{"code": 20403, "message": "Forbidden", "status": 403}', TwilioRejected, 20403),
        (404, '{"code": 20404, "message": "Not Found"}', TwilioNotFound, 20404),
        (503, "<html>busy</html>", TwilioUnavailable, None),
        (429, '{"code": 20429}', TwilioUnavailable, 20429),
    ],
)
def test_a_failed_page_fetch_is_classified_by_its_answer(status, body, kind, code):
    """twilio-python's paging raises a bare TwilioException carrying the response, not a TwilioRestException."""
    answer = Response(status, body)
    err = classify_error(TwilioException("Unable to fetch page", answer), "list Calls days")
    assert type(err) is kind and err.status == status and err.code == code
