"""app.platform.url_policy: which day-file links the relay may fetch (server-side request forgery, issue 12).

Pure checks with a hosts-style resolver hook (there is no external DNS here), plus real HTTP through a session
with the policy mounted: loopback servers, and a tripwire on 127.0.0.2 that must never see a connection.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from app.platform.config import DEFAULT_DOWNLOAD_HOSTS, load_settings
from app.platform.url_policy import ForbiddenUrl, UrlPolicy, address_problem, download_policy, host_matches
from tests.tripwire import Tripwire

S3 = UrlPolicy(DEFAULT_DOWNLOAD_HOSTS)


def hosts(table: dict[str, Sequence[str]]):
    """A resolver hook answering from ``table`` like /etc/hosts; unknown names do not resolve."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} unknown")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


# -- URLs and hosts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://com-twilio-prod-exports.s3.amazonaws.com/daily/x.json.gz?X-Amz-Signature=1",  # Twilio's, as seen
        "https://s3.amazonaws.com/com-twilio-prod-exports/x.json.gz",
        "https://bucket.s3.us-east-1.amazonaws.com/x",
        "https://s3.eu-west-1.amazonaws.com/bucket/x",
        "https://bucket.s3-us-west-2.amazonaws.com/x",
        "https://bucket.s3.dualstack.eu-west-1.amazonaws.com/x",
        "https://BUCKET.S3.AMAZONAWS.COM./x",
    ],
)
def test_s3_links_pass_the_url_check(url: str) -> None:
    assert S3.check_url(url)[0] == "https"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://bucket.s3.amazonaws.com/x", "https only"),
        ("ftp://bucket.s3.amazonaws.com/x", "https only"),
        ("file:///etc/passwd", "https only"),
        ("https://127.0.0.1/x", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://169.254.169.254/latest/meta-data/", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://10.0.0.1/x", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://[::1]/x", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://2130706433/x", "not in DOWNLOAD_HOST_ALLOWLIST"),  # 127.0.0.1 as inet_aton reads it
        ("https://evil.example/x", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://s3.amazonaws.com.evil.example/x", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://ec2-1-2-3-4.compute-1.amazonaws.com/x", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://a.b.s3.amazonaws.com/x", "not in DOWNLOAD_HOST_ALLOWLIST"),  # * is one label
        ("https://amazonaws.com/x", "not in DOWNLOAD_HOST_ALLOWLIST"),
        ("https://user:pw@bucket.s3.amazonaws.com/x", "credentials"),
        ("https://bücket.s3.amazonaws.com/x", "ASCII"),
        ("https:///x", "host"),
        ("https://bucket.s3.amazonaws.com:99999/x", "not a valid URL"),
    ],
)
def test_forbidden_urls_are_refused_before_any_lookup(url: str, why: str) -> None:
    with pytest.raises(ForbiddenUrl, match=why):
        S3.check_url(url)


def test_wildcards_stay_inside_one_label_and_ip_literals_match_exactly() -> None:
    assert host_matches("x.s3.amazonaws.com", ["*.s3.amazonaws.com"])
    assert not host_matches("x.y.s3.amazonaws.com", ["*.s3.amazonaws.com"])
    assert host_matches("s3-eu-west-1.amazonaws.com", ["s3-*.amazonaws.com"])
    assert host_matches("::1", ["0:0:0:0:0:0:0:1"]) and not host_matches("127.0.0.2", ["127.0.0.1"])
    assert not host_matches("10.0.0.1", ["*.*.*.*"])


# -- addresses ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("168.63.129.16", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("10.255.255.254", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("::ffff:127.0.0.1", "private"),  # IPv4-mapped
        ("::ffff:10.1.2.3", "private"),
        ("2002:a9fe:a9fe::1", "metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::a9fe:a9fe", "metadata"),  # NAT64 of 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
    ],
)
def test_internal_addresses_are_refused(address: str, problem: str) -> None:
    found = address_problem(ipaddress.ip_address(address))
    assert found is not None and problem in found, found


@pytest.mark.parametrize("address", ["52.216.8.1", "3.5.0.1", "2600:1f18:4000::1", "64:ff9b::3410:801"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


def test_loopback_only_passes_when_allowed_and_nothing_else_does() -> None:
    assert address_problem(ipaddress.ip_address("127.0.0.1"), allow_loopback=True) is None
    assert address_problem(ipaddress.ip_address("::1"), allow_loopback=True) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1"), allow_loopback=True) == "private"
    assert "metadata" in (address_problem(ipaddress.ip_address("169.254.169.254"), allow_loopback=True) or "")


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    resolver = hosts({"bucket.s3.amazonaws.com": ["10.0.0.7"]})
    policy = UrlPolicy(DEFAULT_DOWNLOAD_HOSTS, resolver=resolver)
    _, host, port = policy.check_url("https://bucket.s3.amazonaws.com/x")
    with pytest.raises(ForbiddenUrl, match=r"bucket.s3.amazonaws.com resolves to 10.0.0.7 \(private\)"):
        policy.resolve(host, port, "https")


def test_one_bad_address_among_good_ones_refuses_the_host() -> None:
    resolver = hosts({"bucket.s3.amazonaws.com": ["52.216.8.1", "169.254.169.254"]})
    policy = UrlPolicy(DEFAULT_DOWNLOAD_HOSTS, resolver=resolver)
    with pytest.raises(ForbiddenUrl, match="metadata"):
        policy.resolve("bucket.s3.amazonaws.com", 443, "https")
    good = UrlPolicy(DEFAULT_DOWNLOAD_HOSTS, resolver=hosts({"bucket.s3.amazonaws.com": ["52.216.8.1"]}))
    assert good.resolve("bucket.s3.amazonaws.com", 443, "https") == ["52.216.8.1"]


def test_localhost_through_the_real_resolver_is_refused_without_the_loopback_switch() -> None:
    policy = UrlPolicy(("localhost", "::1"))
    _, host, port = policy.check_url("https://localhost/x")
    with pytest.raises(ForbiddenUrl, match=r"localhost resolves to (127\.0\.0\.1|::1) \(loopback\)"):
        policy.resolve(host, port, "https")
    with pytest.raises(ForbiddenUrl, match="loopback"):
        policy.resolve("::1", 443, "https")


def test_plain_http_even_with_the_switch_reaches_loopback_only() -> None:
    policy = UrlPolicy(("files.test",), allow_loopback=True, resolver=hosts({"files.test": ["52.216.8.1"]}))
    policy.check_url("http://files.test/x")
    with pytest.raises(ForbiddenUrl, match="plain http is allowed to loopback only"):
        policy.resolve("files.test", 80, "http")
    assert policy.resolve("files.test", 443, "https") == ["52.216.8.1"]


def test_the_settings_build_the_policy() -> None:
    """The policy comes from the process's Settings (validated once by load_settings), not the environment."""
    base = {"TWILIO_ACCOUNT_SID": "AC" + "a" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "S3_BUCKET": "b"}
    local = base | {"TWILIO_BULKEXPORTS_BASE_URL": "http://127.0.0.1:8080", "DOWNLOAD_ALLOW_LOOPBACK": "true"}
    settings = load_settings(local | {"DOWNLOAD_HOST_ALLOWLIST": "127.0.0.1"})
    assert download_policy(settings) == UrlPolicy(("127.0.0.1",), True)
    assert download_policy(load_settings(base)) == S3


# -- real HTTP through a session with the policy mounted ------------------------------------------------------


class _Server:
    """A loopback HTTP server: 200 "ok" on /ok, a redirect to ``?to=`` on /redirect; counts requests."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if self.path.startswith("/redirect?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("=", 1)[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


def test_the_connection_goes_to_the_checked_address_resolved_once(server: _Server) -> None:
    """DNS rebinding: the first answer is checked and connected to; a later, different answer is never used."""
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return next(answers)

    with Tripwire("127.0.0.2", server.port) as wire:
        policy = UrlPolicy(("files.test",), allow_loopback=True, resolver=rebinding)
        session = policy.mount(requests.Session())
        assert session.get(f"http://files.test:{server.port}/ok", timeout=5).text == "ok"
        assert calls == ["files.test"], "one lookup per connection: the one that was checked"
        assert server.requests == ["/ok"] and wire.connections == 0


def test_a_redirect_from_an_allowed_host_to_a_forbidden_one_is_refused_before_connecting(server: _Server) -> None:
    policy = UrlPolicy(("127.0.0.1",), allow_loopback=True)
    session = policy.mount(requests.Session())
    with Tripwire("127.0.0.2") as wire:
        for target in (f"{wire.url}/steal", "http://169.254.169.254/latest/meta-data/", "https://10.0.0.1/"):
            with pytest.raises(ForbiddenUrl):
                session.get(f"http://127.0.0.1:{server.port}/redirect?to={target}", timeout=5)  # requests follows
        assert wire.connections == 0
    assert len(server.requests) == 3, "only the allowed first hops were sent"


def test_an_allowed_name_resolving_to_loopback_is_refused_without_the_switch(server: _Server) -> None:
    session = UrlPolicy(("localhost",), resolver=hosts({"localhost": ["127.0.0.1"]})).mount(requests.Session())
    with pytest.raises(ForbiddenUrl, match="loopback"):
        session.get(f"https://localhost:{server.port}/ok", timeout=5)
    assert server.requests == []


def test_the_copys_own_redirect_loop_refuses_a_forbidden_hop_as_a_permanent_error(server: _Server) -> None:
    """workers.copy.open_link follows redirects by hand: the hop to the tripwire is refused before connecting,
    as LinkRejectedError (permanent: the day fails instead of retrying an attack), query string redacted."""
    from workers.copy import open_link
    from workers.copy_errors import LinkRejectedError

    with Tripwire("127.0.0.2") as wire:
        link = f"http://127.0.0.1:{server.port}/redirect?to={wire.url}/latest/meta-data/?X-Amz-Signature=secret"
        with pytest.raises(LinkRejectedError, match=r"refused by the URL policy: host 127\.0\.0\.2") as caught:
            open_link(link, timeout=5, policy=UrlPolicy(("127.0.0.1",), allow_loopback=True))
        assert wire.connections == 0
    assert "secret" not in str(caught.value)
    assert len(server.requests) == 1
