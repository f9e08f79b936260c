"""app/web/client_limits.py's pure parts: the per-client counts and the body-buffering middleware around a plain WSGI
app (the deadline itself, which needs gevent's worker, and the connection cap are run against real gunicorn in
tests/e2e/test_slow_clients.py)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from app.platform.config import ConfigError, load_settings
from app.web.client_limits import BufferedBodies, ClientSlots, connection_slots, peer_address

BASE = {
    "TWILIO_ACCOUNT_SID": "AC" + "a" * 32,
    "TWILIO_AUTH_TOKEN": "t" * 32,
    "PUBLIC_BASE_URL": "https://relay.example.com/",
    "S3_BUCKET": "b",
    "ADMIN_TOKEN": "x" * 20,
}
MAX = 1024  # WEBHOOK_MAX_BODY_BYTES' minimum


class Unreadable(io.RawIOBase):
    """A body that must never be read (refused on its declared length alone)."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def _echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def _call(mw: BufferedBodies, body: Any, remote: str = "192.0.2.1", **environ: str) -> tuple[int, bytes]:
    status: list[str] = []
    out = mw({"wsgi.input": body, "REMOTE_ADDR": remote, **environ}, lambda s, h: status.append(s))
    return int(status[0].split()[0]), b"".join(out)


def _middleware(**env: str) -> BufferedBodies:
    return BufferedBodies(_echo, load_settings(BASE | {"WEBHOOK_MAX_BODY_BYTES": str(MAX)} | env))


def test_a_body_reaches_the_app_whole_from_memory():
    assert _call(_middleware(), io.BytesIO(b"status=completed"), CONTENT_LENGTH="16") == (200, b"status=completed")
    chunked = io.BytesIO(b"x" * 700)  # what gunicorn hands over for a chunked body: the decoded bytes to their end
    assert _call(_middleware(), chunked, HTTP_TRANSFER_ENCODING="chunked") == (200, b"x" * 700)
    assert _call(_middleware(), Unreadable()) == (200, b"")  # no body: passed through untouched


def test_too_large_is_refused_before_a_byte_is_read_or_as_soon_as_a_chunked_body_passes_the_limit():
    status, payload = _call(_middleware(), Unreadable(), CONTENT_LENGTH=str(MAX + 1))
    assert status == 413 and json.loads(payload)["error"] == "request entity too large"
    assert _call(_middleware(), io.BytesIO(b"x" * (MAX + 1)), HTTP_TRANSFER_ENCODING="chunked")[0] == 413


def test_a_body_shorter_than_declared_is_a_bad_request():
    assert _call(_middleware(), io.BytesIO(b"abc"), CONTENT_LENGTH="10")[0] == 400


def test_one_client_receives_at_most_the_cap_of_bodies_at_once():
    mw = _middleware(WEB_MAX_CONNECTIONS_PER_CLIENT="2")
    assert mw.receiving is not None
    held = [mw.receiving.take("192.0.2.1"), mw.receiving.take("192.0.2.1")]  # two bodies still arriving
    status, payload = _call(mw, Unreadable(), remote="192.0.2.1", CONTENT_LENGTH="5")
    assert status == 429 and "2 request bodies" in json.loads(payload)["detail"]
    assert _call(mw, io.BytesIO(b"hello"), remote="192.0.2.2", CONTENT_LENGTH="5") == (200, b"hello")  # another
    mw.receiving.give_back(str(held[0]))
    assert _call(mw, io.BytesIO(b"hello"), remote="192.0.2.1", CONTENT_LENGTH="5") == (200, b"hello")
    assert mw.receiving.held("192.0.2.1") == 1  # a finished body gives its slot back


def test_slots_count_by_client_id_an_ipv6_64_together():
    slots = ClientSlots(2, "connections")
    assert slots.take("2001:db8::1") and slots.take("2001:db8::2")
    assert slots.take("2001:db8::3") is None  # the same /64
    assert slots.take("2001:db8:0:1::1") == "2001:db8:0:1::/64"
    assert slots.take("::ffff:192.0.2.9") == "192.0.2.9"


def test_the_connection_cap_is_off_behind_proxies_or_when_set_to_0():
    assert connection_slots(load_settings(BASE)).cap == 100  # type: ignore[union-attr]
    assert connection_slots(load_settings(BASE | {"PROXY_FIX_HOPS": "1"})) is None
    assert connection_slots(load_settings(BASE | {"WEB_MAX_CONNECTIONS_PER_CLIENT": "0"})) is None
    assert _middleware(WEB_MAX_CONNECTIONS_PER_CLIENT="0").receiving is None
    assert peer_address(("10.0.0.1", 5000)) == "10.0.0.1"
    assert peer_address("") is None  # a unix socket's peer: never counted


@pytest.mark.parametrize(
    "change",
    [{"WEB_BODY_TIMEOUT_SECONDS": "0"}, {"WEB_BODY_TIMEOUT_SECONDS": "x"}, {"WEB_MAX_CONNECTIONS_PER_CLIENT": "-1"}],
)
def test_settings_are_validated(change):
    with pytest.raises(ConfigError, match=next(iter(change))):
        load_settings(BASE | change)
