"""Fuzzing (>= 10,000 generated requests in all): no 5xx except documented 503s, no enqueue from invalid input.

- schemathesis generates requests for every operation of app/web/openapi.json (the description kept in the repo)
  and checks each answer against it (status, content type, body schema), in-process through WSGI, with real
  Redis and the Twilio sandbox behind; the suite fails if an operation of the document was never exercised
  (test_every_operation_was_exercised).
- hypothesis throws arbitrary tokens, bodies, content types and signatures at the webhook.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue
from schemathesis.checks import content_type_conformance, response_schema_conformance

from app.platform.guess_limit import API_TOKEN
from app.platform.queueing import CONTROL_QUEUE, COPY_QUEUE
from tests.api_app import app_tracking_one_job
from tests.conftest import ADMIN_TOKEN

SPEC = Path(__file__).resolve().parents[2] / "app" / "web" / "openapi.json"
SCHEMATHESIS_EXAMPLES = 500  # per operation (every operation of SPEC: OPERATIONS)
WEBHOOK_EXAMPLES = 6000
TOKEN = "fuzz_" + "t" * 40
SID = "JS" + "ef" * 16
COUNTS = {"schemathesis": 0, "webhook": 0}
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
OPERATIONS = {
    (method.upper(), path)
    for path, item in json.loads(SPEC.read_text())["paths"].items()
    for method in HTTP_METHODS
    if method in item
}
EXERCISED: set[tuple[str, str]] = set()  # operations schemathesis reached (not a 405 probe of another method)


@pytest.fixture(scope="module")
def fuzz_app(redis_server, s3, sandbox_session):
    saved = {name: os.environ.get(name) for name in s3.env()}
    os.environ.update(s3.env())  # /readyz and /health reach the test S3 through boto3's standard variables
    yield app_tracking_one_job(redis_server, s3, sandbox_session, "fuzz-bucket", SID, TOKEN)
    print(f"\nfuzz: {COUNTS['schemathesis']} schemathesis + {COUNTS['webhook']} webhook requests")
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


schema = schemathesis.openapi.from_path(str(SPEC))


@pytest.fixture
def wsgi_app(fuzz_app):
    return fuzz_app


@schema.parametrize()
@settings(
    max_examples=SCHEMATHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_api_conforms_and_never_errors(case, fuzz_app):
    # Generated cases with a bad Authorization header count against this client's address: forgive them, so the
    # fuzz keeps reaching the handlers (the limit itself: tests/e2e/test_api_token_limit.py; 429 is documented).
    fuzz_app.extensions["relay"].auth_failures.clear(API_TOKEN, "127.0.0.1")
    response = case.call(app=fuzz_app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    COUNTS["schemathesis"] += 1
    assert response.status_code < 500 or response.status_code == 503, (case.method, case.path, response.text)
    operations = case.operation.schema.raw_schema["paths"][case.path]
    method = case.method.lower()
    if method == "options":
        return  # Flask answers OPTIONS itself (Allow header); only the no-5xx rule above applies
    if method == "head" and "get" in operations:
        method = "get"  # Flask answers HEAD wherever GET exists
    elif method not in operations:
        assert response.status_code == 405  # schemathesis also probes methods the path does not have
        return
    EXERCISED.add((method.upper(), case.path))
    documented = operations[method]["responses"]
    assert str(response.status_code) in documented, (case.method, case.path, response.status_code)
    case.validate_response(response, checks=[response_schema_conformance, content_type_conformance])


def _queued(app) -> int:
    conn = app.extensions["relay"].rq_connection
    return sum(Queue(q, connection=conn).count for q in (CONTROL_QUEUE, COPY_QUEUE))


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    token=st.one_of(st.just(TOKEN), st.text(max_size=60), st.from_regex(r"[A-Za-z0-9_-]{20,64}", fullmatch=True)),
    signature=st.one_of(header_text, st.just("")),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/json",
            "text/plain",
            "multipart/form-data",
            "application/octet-stream",
        ]
    ),
    body=st.binary(max_size=2048),
    extra_query=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=16), max_size=3),
)
@settings(
    max_examples=WEBHOOK_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_invalid_webhooks_never_enqueue(fuzz_app, method, token, signature, content_type, body, extra_query):
    client = fuzz_app.test_client()
    query = {"token": token, **{k: v for k, v in extra_query.items() if k != "token"}}
    response = client.open(
        "/hooks/bulkexport",
        method=method,
        query_string=query,
        data=body,
        headers={"X-Twilio-Signature": signature, "Content-Type": content_type},
    )
    COUNTS["webhook"] += 1
    assert response.status_code < 500 or response.status_code == 503
    assert response.status_code != 204  # never accepted: the signature is never valid here
    assert _queued(fuzz_app) == 0


UNSIGNED_EXAMPLES = 1000


@given(
    method=st.sampled_from(["GET", "POST"]),
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", "text/plain"]),
    body=st.binary(max_size=1024),
    extra_query=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=16), max_size=3),
)
@settings(
    max_examples=UNSIGNED_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_unsigned_deliveries_with_a_real_token_are_refused_once_signatures_are_seen(
    fuzz_app, method, content_type, body, extra_query
):
    """WEBHOOK_SIGNATURE=auto after a signed delivery: an unsigned one carrying a real job's token (read from a
    load balancer log, say) is refused whatever else it carries, and never queues a sync."""
    fuzz_app.extensions["relay"].tokens.mark_signed_seen()
    query = {"token": TOKEN, **{k: v for k, v in extra_query.items() if k != "token"}}
    response = fuzz_app.test_client().open(
        "/hooks/bulkexport", method=method, query_string=query, data=body, headers={"Content-Type": content_type}
    )
    COUNTS["webhook"] += 1
    assert response.status_code in (403, 413), response.status_code
    assert _queued(fuzz_app) == 0


@given(
    sid=st.sampled_from([SID, "JS" + "0" * 32]),
    # percent-encoded: a literal control character would be dropped by the URL parser before it reached us
    suffix=st.sampled_from(["%0A", "%0D%0A", "%0a", "%20", "%00", "%09"]),
    route=st.sampled_from(["/api/jobs/{}", "/api/jobs/{}/requeue"]),
)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_ids_with_trailing_newlines_or_junk_are_refused(fuzz_app, sid, suffix, route):
    client = fuzz_app.test_client()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    method = "POST" if route.endswith("requeue") else "GET"
    response = client.open(route.format(sid + suffix), method=method, headers=headers)
    COUNTS["schemathesis"] += 1
    assert response.status_code in (400, 404), (route, suffix, response.status_code)
    assert _queued(fuzz_app) == 0


def test_every_operation_was_exercised(fuzz_app):
    """Runs after the schemathesis test (file order): each operation of app/web/openapi.json got generated requests."""
    assert len(OPERATIONS) >= 25
    assert not OPERATIONS - EXERCISED, sorted(OPERATIONS - EXERCISED)


def test_total_generated_requests(fuzz_app):
    """Runs last in this module (pytest keeps file order): the suite generated at least 10,000 requests."""
    assert COUNTS["schemathesis"] + COUNTS["webhook"] >= 10_000, COUNTS
