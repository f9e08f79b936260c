"""app/web/openapi.json against the code: every route and method of the app, the query parameters each view declares
and reads, and the enums the code produces. Any difference fails.

- Routes: every rule of ``create_app()``'s URL map, with its methods (HEAD and OPTIONS are Flask's own), is an
  operation of the document with the same path parameters, and the other way round. Excluded: ``/console/*``
  and ``/static``: the console is HTML for people (a session cookie and CSRF form, tests/browser), not the API.
- Query parameters: each view declares the ones it reads in one place (``app.platform.validation.query_args``); the
  document lists exactly those; every /api view refuses any other (400); and a request carrying all of them
  reads each one and nothing else (so a documented filter cannot be silently ignored again, as
  ``GET /api/jobs?resource_type=`` was).
- Enums: job and day states, job origins, coverage states, resource types, feed managers, account states.
- JSON bodies: every documented field is accepted and any other is a 400.
"""

from __future__ import annotations

import ast
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.utils import cached_property

from app.feeds.coverage import REPORTED_STATES
from app.jobs.records import ORIGINS, DayState, JobState
from app.platform import clock
from app.platform.config import RESOURCE_TYPES
from app.twilio.accounts import OK, REFUSED, SUSPENDED
from tests.api_app import app_tracking_one_job
from tests.conftest import ADMIN_TOKEN

ROOT = Path(__file__).resolve().parents[2]
DOC = json.loads((ROOT / "app" / "web" / "openapi.json").read_text())
SCHEMAS = DOC["components"]["schemas"]
NOT_THE_API = ("/console", "/static")  # HTML pages for people (tests/browser), not the API
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SID = "JS" + "c0" * 16
TOKEN = "contract_" + "k" * 30
READ: list[str] = []  # names of the query parameters read by the request under test


class TrackedArgs(ImmutableMultiDict):  # type: ignore[type-arg]
    """request.args that notes every parameter a view looks up (iterating over them, as only_args does, is no
    read)."""

    def __getitem__(self, key: Any) -> Any:
        READ.append(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None, type: Any = None) -> Any:
        READ.append(key)
        return super().get(key, default, type)

    def getlist(self, key: Any, type: Any = None) -> Any:
        READ.append(key)
        return super().getlist(key, type)

    def __contains__(self, key: object) -> bool:
        READ.append(str(key))
        return super().__contains__(key)


@pytest.fixture(scope="module")
def app(redis_server, s3, sandbox_session) -> Flask:
    app = app_tracking_one_job(redis_server, s3, sandbox_session, "contract-bucket", SID, TOKEN)

    class TrackingRequest(app.request_class):  # type: ignore[name-defined,misc]
        @cached_property
        def args(self) -> TrackedArgs:
            return TrackedArgs(super().args)

    app.request_class = TrackingRequest
    return app


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> the operation, with the path item's parameters merged in and every $ref resolved."""
    out = {}
    for path, item in DOC["paths"].items():
        shared = [resolve(p) for p in item.get("parameters", [])]
        for method in HTTP_METHODS:
            if method in item:
                op = item[method]
                out[(method.upper(), path)] = op | {
                    "parameters": shared + [resolve(p) for p in op.get("parameters", [])]
                }
    return out


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    target: Any = DOC
    for part in node["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return resolve(target)


def documented(op: dict[str, Any], where: str) -> set[str]:
    return {p["name"] for p in op["parameters"] if p["in"] == where}


def routes(app: Flask) -> dict[tuple[str, str], Any]:
    """(METHOD, path as OpenAPI writes it) -> the rule, for every rule of the API."""
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(NOT_THE_API):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out[(method, path)] = rule
    return out


def test_every_route_is_documented_and_every_operation_exists(app: Flask) -> None:
    assert not any("{" in path and ":" in path for _, path in routes(app)), "converters: map them to the doc's types"
    assert sorted(routes(app)) == sorted(operations())


def test_path_parameters_match(app: Flask) -> None:
    ops = operations()
    for key, rule in routes(app).items():
        assert documented(ops[key], "path") == set(rule.arguments), key


def test_each_view_declares_exactly_the_documented_query_parameters(app: Flask) -> None:
    ops = operations()
    for key, rule in routes(app).items():
        view = app.view_functions[rule.endpoint]
        assert hasattr(view, "query_args"), (
            f"{key}: declare its query parameters with app.platform.validation.query_args"
        )
        assert set(view.query_args) == documented(ops[key], "query"), key
        if key[1].startswith("/api/"):
            assert view.query_args_strict, f"{key}: an /api operation refuses unknown query parameters"


def test_every_api_operation_refuses_an_unknown_query_parameter(app: Flask) -> None:
    client = app.test_client()
    for (method, path), rule in routes(app).items():
        if not path.startswith("/api/"):
            continue
        url = rule.build(example_path_args(rule.arguments), append_unknown=False)[1]
        r = client.open(url + "?frobnicate=1", method=method, headers=AUTH, json=example_body(method, path))
        assert r.status_code == 400, (method, path, r.status_code)
        assert "unknown query parameter(s): frobnicate" in r.get_json()["detail"], (method, path)
        assert "400" in operations()[(method, path)]["responses"], (method, path)


EXAMPLES = {
    "page": "0",
    "page_size": "1",
    "resource_type": "Calls",
    "from": "2026-11-01",
    "to": "2026-11-02",
    "token": TOKEN,
    "bodySHA256": "0" * 64,
}


def example_path_args(names: set[str]) -> dict[str, str]:
    values = {"job_sid": SID, "resource_type": "Calls", "day": "2026-11-01"}
    return {name: values[name] for name in names}


def example_body(method: str, path: str) -> Any:
    """A valid body, so the view gets as far as reading its query parameters."""
    bodies = {
        ("PUT", "/api/feeds/{resource_type}"): {"since": "2026-11-01"},
        ("PUT", "/api/daily/{resource_type}"): {"enabled": False},
    }
    return bodies.get((method, path), {} if method in ("POST", "PUT") else None)


def test_each_view_reads_every_parameter_it_declares_and_no_other(app: Flask) -> None:
    """A request with every documented parameter (valid values) reads each of them: none is ignored. The webhook
    reads ``bodySHA256`` only for a signed non-form body (so by POST), as Twilio signs it."""
    client = app.test_client()
    primary = app.extensions["relay"].accounts.primary.sid
    for (method, path), rule in routes(app).items():
        view = app.view_functions[rule.endpoint]
        query = {name: EXAMPLES.get(name, primary) for name in view.query_args}  # "account": the primary's SID
        url = rule.build(example_path_args(rule.arguments), append_unknown=False)[1]
        headers = AUTH | ({"X-Twilio-Signature": "not-valid"} if path.startswith("/hooks/") else {})
        READ.clear()
        client.open(url, method=method, query_string=query, headers=headers, json=example_body(method, path))
        if (method, path) == ("GET", "/hooks/bulkexport"):
            assert set(READ) == {"token"}
        else:
            assert set(READ) == set(view.query_args), (method, path)


def enum(schema: dict[str, Any], *names: str) -> list[Any]:
    for name in names:
        schema = resolve(schema)["properties"][name]
    return resolve(schema)["enum"]


def test_job_and_day_states() -> None:
    assert enum(SCHEMAS["Job"], "state") == [s.value for s in JobState]
    assert enum(SCHEMAS["TwilioJob"], "state") == [s.value for s in JobState] + [None]
    assert enum(SCHEMAS["Day"], "state") == [s.value for s in DayState]


def test_coverage_states() -> None:
    counts = SCHEMAS["Coverage"]["properties"]["feeds"]["items"]["allOf"][1]["properties"]["counts"]
    assert list(counts["properties"]) == list(REPORTED_STATES)
    assert enum(SCHEMAS["TwilioDay"], "bucket") == list(REPORTED_STATES)


def test_resource_types_everywhere() -> None:
    found = [node["enum"] for node in walk(DOC) if node.get("enum") and "Messages" in node["enum"]]
    assert found and all(e == list(RESOURCE_TYPES) for e in found)


def test_account_states() -> None:
    assert enum(SCHEMAS["Account"], "state") == [OK, REFUSED, SUSPENDED]


def walk(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [d for item in node for d in walk(item)]
    if not isinstance(node, dict):
        return []
    return [node] + [d for value in node.values() for d in walk(value)]


def literals_given_to(keyword: str) -> set[str]:
    """Every string constant the code passes as ``keyword=...`` (or gives a field of that name as a default)."""
    found = set()
    for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            named = node.arg if isinstance(node, ast.keyword) else None
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                named = node.target.id
            if named != keyword:
                continue
            value = node.value  # type: ignore[union-attr]
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
            elif isinstance(value, ast.IfExp):  # origin="feed" if ... else "api"
                found |= {v.value for v in (value.body, value.orelse) if isinstance(v, ast.Constant)}
    return found


def test_job_origins() -> None:
    assert enum(SCHEMAS["Job"], "origin") == list(ORIGINS)
    assert literals_given_to("origin") == set(ORIGINS)


def test_feed_managers() -> None:
    assert set(enum(SCHEMAS["Feed"], "managed_by")) == literals_given_to("managed_by") == {"api", "env"}


def full_bodies(app: Flask) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> a valid body with every property its schema documents."""
    primary = app.extensions["relay"].accounts.primary.sid
    day = (clock.utc_today() - timedelta(days=5)).isoformat()
    return {
        ("POST", "/api/jobs"): {
            "resource_type": "Calls",
            "start_day": day,
            "end_day": day,
            "friendly_name": "contract",
            "email": "ops@example.com",
            "account": primary,
        },
        ("POST", "/api/jobs/track"): {"job_sid": SID, "resource_type": "Calls", "account": primary},
        ("POST", "/api/jobs/{job_sid}/requeue"): {"days": ["2026-11-01"]},
        ("PUT", "/api/feeds/{resource_type}"): {"since": day, "until": day, "enabled": False, "retain_days": 30},
        ("DELETE", "/api/days/{resource_type}/{day}"): {"reason": "contract", "by": "api"},
        ("PUT", "/api/daily/{resource_type}"): {"enabled": False},
    }


def test_each_json_body_takes_exactly_its_documented_fields(app: Flask) -> None:
    """Every documented field is accepted (not refused as unknown) and any other field is a 400."""
    client, bodies = app.test_client(), full_bodies(app)
    for (method, path), rule in routes(app).items():
        schema = operations()[(method, path)].get("requestBody", {}).get("content", {}).get("application/json")
        if schema is None or not path.startswith("/api/"):
            continue  # the webhook's body is whatever Twilio sends: only its signature is checked
        schema = resolve(schema["schema"])
        body = bodies[(method, path)]
        assert set(body) == set(schema["properties"]) and schema["additionalProperties"] is False, (method, path)
        url = rule.build(example_path_args(rule.arguments), append_unknown=False)[1]
        r = client.open(url, method=method, headers=AUTH, json=body)
        detail = (r.get_json() or {}).get("detail") or ""
        assert not (r.status_code == 400 and ("unknown" in detail or "body must be" in detail)), (path, detail)
        r = client.open(url, method=method, headers=AUTH, json=body | {"frobnicate": 1})
        assert r.status_code == 400, (method, path, r.status_code)


def test_real_answers_match_their_schemas(app: Flask) -> None:
    """The answers of a relay with a feed, a job and an account (not only the empty ones the fuzz mostly sees)
    validate against their documented schemas."""
    client, svc = app.test_client(), app.extensions["relay"]
    doc = schemathesis.openapi.from_dict(DOC)
    day = (clock.utc_today() - timedelta(days=5)).isoformat()
    assert client.put("/api/feeds/Calls", headers=AUTH, json={"since": day}).status_code == 200
    submitted = client.post(
        "/api/jobs", headers=AUTH, json={"resource_type": "Messages", "start_day": day, "end_day": day}
    )
    assert submitted.status_code == 201, submitted.get_json()
    sid = submitted.get_json()["job_sid"]
    answers = [
        ("GET", "/api/accounts", "/api/accounts"),
        ("GET", "/api/feeds", "/api/feeds"),
        ("GET", "/api/feeds/{resource_type}", "/api/feeds/Calls"),
        ("GET", "/api/coverage", "/api/coverage"),
        ("GET", "/api/jobs", "/api/jobs"),
        ("GET", "/api/jobs/{job_sid}", f"/api/jobs/{sid}"),
        ("GET", "/api/twilio/jobs", "/api/twilio/jobs?resource_type=Messages"),
        ("GET", "/api/twilio/days/{resource_type}", "/api/twilio/days/Calls"),
    ]
    for method, path, url in answers:
        r = client.open(url, method=method, headers=AUTH)
        assert r.status_code == 200, (url, r.get_json())
        doc[path][method].validate_response(r)
    assert {j["origin"] for j in client.get("/api/jobs", headers=AUTH).get_json()["jobs"]} <= set(ORIGINS)
    assert svc.jobs.get_job(sid) is not None
