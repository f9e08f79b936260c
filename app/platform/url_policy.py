"""Which URLs the relay may download day files from: the defence against server-side request forgery.

A day file's link (FetchDay's ``redirect_to``) and every redirect after it come from outside. Whoever controls
them must not make a worker fetch an internal address (a cloud metadata endpoint, Redis, an admin port). Rules:

- ``https`` only; plain ``http`` only with ``DOWNLOAD_ALLOW_LOOPBACK`` (the sandbox), and then only to loopback.
- The host must match ``DOWNLOAD_HOST_ALLOWLIST`` (default: S3's host names). A ``*`` matches inside one DNS
  label, never across a dot; IP literals match only themselves.
- Every address the host resolves to must be public: loopback (unless allowed), private, link-local, CGNAT,
  multicast, unspecified, reserved and cloud metadata addresses are refused, also when written as IPv4 inside
  IPv6 (mapped, 6to4, NAT64, Teredo). One bad address refuses the host.
- The name is resolved once, by the connection itself, and the socket connects to exactly the addresses that
  were checked (the TLS certificate is still verified against the name): DNS rebinding between the check and
  the connect cannot switch the target.
- The checks sit in a requests transport adapter (:meth:`UrlPolicy.mount`), so every request of the session —
  every redirect hop included — is checked, whoever follows the redirects.

Behind an HTTP(S) proxy the proxy resolves the name again: the host and its current addresses are still checked
here, but pinning is then the proxy's job (give it the same egress rules).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

if TYPE_CHECKING:
    from app.platform.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]

# Instance metadata and platform endpoints: AWS/GCP/Azure/OpenStack (and AWS over IPv6), ECS task metadata,
# Alibaba Cloud, Azure's wire server (a public-looking address).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "168.63.129.16")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ForbiddenUrl(ValueError):
    """The URL, its host or an address it resolves to is not allowed; nothing was sent to it."""


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the system's resolver: /etc/hosts, DNS), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _as_checked(ip: IPAddress) -> list[IPAddress]:
    """What to classify: the address and the IPv4 addresses it carries (mapped, 6to4, Teredo); for NAT64
    (64:ff9b::/96, what DNS64 gives an IPv6-only pod for S3) only the IPv4 address it translates to."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    if ip in _NAT64:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    return [ip, *(a for a in carried if a is not None)]


def address_problem(ip: IPAddress, allow_loopback: bool = False) -> str | None:
    """Why a connection to ``ip`` is refused, or None if it is a public address."""
    for candidate in _as_checked(ip):
        if candidate in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if candidate.is_loopback:
            if allow_loopback:
                continue
            return "loopback"
        for reason, hit in (
            ("unspecified", candidate.is_unspecified),
            ("link-local", candidate.is_link_local),
            ("multicast", candidate.is_multicast),
            ("carrier-grade NAT", isinstance(candidate, ipaddress.IPv4Address) and candidate in _CGNAT),
            ("private", candidate.is_private),
            ("reserved", candidate.is_reserved),
            ("not globally routable", not candidate.is_global),
        ):
            if hit:
                return reason
    return None


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """``host`` (lower case, no trailing dot) against the allow-list: ``*`` within one label; IPs exactly."""
    ip = _ip(host)
    if ip is not None:
        return any(_ip(p) == ip for p in patterns)
    labels = host.split(".")
    for pattern in patterns:
        wanted = pattern.split(".")
        same_shape = _ip(pattern) is None and len(wanted) == len(labels)
        if same_shape and all(fnmatch.fnmatchcase(label, want) for label, want in zip(labels, wanted, strict=True)):
            return True
    return False


@dataclass(frozen=True)
class UrlPolicy:
    """Allowed hosts and whether loopback (http and 127/8, ::1) is allowed; ``resolver`` is for tests."""

    host_patterns: tuple[str, ...]
    allow_loopback: bool = False
    resolver: Resolver = field(default=system_resolver, compare=False)

    def check_url(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of an allowed URL; ForbiddenUrl otherwise. Resolves nothing."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ForbiddenUrl("not a valid URL") from None
        scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
        if scheme != "https" and not (scheme == "http" and self.allow_loopback):
            raise ForbiddenUrl(f"scheme {scheme or '(none)'!r} is not allowed (https only)")
        if parts.username is not None or parts.password is not None:
            raise ForbiddenUrl("credentials in the URL are not allowed")
        if not host or not host.isascii():
            raise ForbiddenUrl("the URL has no (ASCII) host name")
        if not host_matches(host, self.host_patterns):
            raise ForbiddenUrl(f"host {host} is not in DOWNLOAD_HOST_ALLOWLIST")
        return scheme, host, port or (443 if scheme == "https" else 80)

    def resolve(self, host: str, port: int, scheme: str) -> list[str]:
        """The addresses to connect to: every one the host resolves to, each checked (one bad one refuses)."""
        addresses = list(self.resolver(host, port))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} resolves to no address")
        for address in addresses:
            ip = _ip(address.split("%", 1)[0])
            if ip is None:
                raise ForbiddenUrl(f"{host} resolves to {address!r}, which is not an IP address")
            problem = address_problem(ip, self.allow_loopback)
            if problem is None and scheme == "http" and not ip.is_loopback:
                problem = "plain http is allowed to loopback only"
            if problem:
                raise ForbiddenUrl(f"{host} resolves to {ip} ({problem})")
        return addresses

    def mount(self, session: requests.Session, **adapter_kwargs: Any) -> requests.Session:
        """Route every http(s) request of ``session`` through this policy; returns the session."""
        adapter = PolicyAdapter(self, **adapter_kwargs)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session


def download_policy(settings: Settings) -> UrlPolicy:
    """The policy the settings describe (DOWNLOAD_HOST_ALLOWLIST, DOWNLOAD_ALLOW_LOOPBACK, validated by
    ``load_settings`` when the process started): the copy path takes it from the process's Settings."""
    return UrlPolicy(settings.download_host_allowlist, settings.download_allow_loopback)


# -- transport: the checks in every request, the connection pinned to the checked addresses ----------------------


class _PinnedConnectionMixin:
    """urllib3 connection whose socket goes to the addresses the policy resolved and checked, nothing else."""

    policy: UrlPolicy
    policy_scheme: str
    _dns_host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        host = self._dns_host.rstrip(".")
        try:
            addresses = self.policy.resolve(host, self.port, self.policy_scheme)
        except socket.gaierror as exc:
            raise NameResolutionError(host, self, exc) from exc  # type: ignore[arg-type]
        error: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port), self.timeout, self.source_address, self.socket_options
                )
            except TimeoutError as exc:
                message = f"Connection to {host} timed out. (connect timeout={self.timeout})"
                raise ConnectTimeoutError(self, message) from exc
            except OSError as exc:
                error = exc
                continue
            sys.audit("http.client.connect", self, host, self.port)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]


def _pool_classes(policy: UrlPolicy) -> dict[str, type[HTTPConnectionPool]]:
    pinned = {"policy": policy, "policy_scheme": "http"}
    http_conn = type("PinnedHTTPConnection", (_PinnedConnectionMixin, HTTPConnection), pinned)
    https_conn = type(
        "PinnedHTTPSConnection", (_PinnedConnectionMixin, HTTPSConnection), {**pinned, "policy_scheme": "https"}
    )
    return {
        "http": type("PinnedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("PinnedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }


class PolicyAdapter(HTTPAdapter):
    """Checks every request's URL against the policy; direct connections are pinned to checked addresses."""

    def __init__(self, policy: UrlPolicy, **kwargs: Any) -> None:
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.policy)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        scheme, host, port = self.policy.check_url(request.url or "")
        proxies = kwargs.get("proxies") or (args[4] if len(args) > 4 else None)
        if proxies and select_proxy(request.url or "", proxies):
            self.policy.resolve(host, port, scheme)  # the proxy connects; at least the name is checked now
        return super().send(request, *args, **kwargs)
