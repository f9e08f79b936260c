"""The streaming copy of one day file: presigned link -> verified bytes -> S3Sink (which does the S3 calls).

The link (a Day's ``redirect_to``) is a presigned, single-use, short-lived S3 GET URL. It is fetched
with a bare ``requests`` session: no auth, no Twilio headers, ``trust_env=False`` so no ~/.netrc
credentials are attached (proxies from the environment are still honoured, explicitly). The body is
read raw (``decode_content=False``) so a ``Content-Encoding: gzip`` on Twilio's object can never make
us store inflated bytes. The URL's query string is a credential: it never appears in our errors.

``VerifyingReader`` sits between the HTTP body and the S3 sink: it hashes (SHA-256), counts, and
inflates the gzip members as bytes pass, in bounded chunks, and raises ``CopyIntegrityError``
*before handing over the last bytes* when the body is not exactly the expected, intact gzip file. The
sink relies on that: it sends parts of a multipart upload while the reader is still reading, and an
upload whose reader raised is aborted, never completed (``workers.sink``).

Errors: everything raised on purpose is a ``workers.copy_errors`` class: ``RetryableCopyError`` (try again,
with a fresh link from FetchDay) or ``PermanentCopyError`` (give up and record the day as failed).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies

from app.bucket.gzip_check import GzipCheck
from app.platform.units import MiB
from app.platform.url_policy import ForbiddenUrl, UrlPolicy
from workers.copy_errors import (
    CopyIntegrityError,
    LinkExpiredError,
    LinkNotFoundError,
    LinkRejectedError,
    TransientDownloadError,
)
from workers.sink import S3Sink, StreamDigest

log = logging.getLogger(__name__)

READ_CHUNK = MiB  # bytes pulled from the socket per step
DEFAULT_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds; read = longest silence between bytes
MAX_REDIRECTS = 3
_EXPIRED_400_CODES = (
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidToken",
    "AuthorizationQueryParametersError",
)


class VerifyingReader:
    """File-like ``read(n)`` over an iterator of byte chunks that verifies what passes through.

    Computes SHA-256, byte count and record count (newlines of the inflated data; a last line without
    a newline counts), and checks the gzip framing, CRC-32 and length trailers of every member. It
    raises ``CopyIntegrityError`` as soon as more bytes than ``expected_size`` arrive or the gzip data
    is corrupt, and at the end of the source if the size is short or the gzip stream is truncated.
    Once ``expected_size`` bytes are buffered it pulls the source to its end *before* returning them,
    so the last bytes are only ever handed out verified. Errors of the source propagate unchanged.
    """

    def __init__(self, source: Iterable[bytes], expected_size: int) -> None:
        if expected_size < 0:
            raise ValueError(f"expected_size must be >= 0, not {expected_size}")
        self._source: Iterator[bytes] = iter(source)
        self.expected_size = expected_size
        self._sha = hashlib.sha256()
        self._gzip = GzipCheck(CopyIntegrityError)
        self._chunks: deque[bytes] = deque()  # verified-so-far bytes not yet handed out
        self._buffered = 0
        self.bytes_read = 0
        self._digest: StreamDigest | None = None
        self._error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False  # a stream: read once, never rewound

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes (all that remain if negative); fewer only at the verified end."""
        if self._error is not None:
            raise self._error
        want = None if size is None or size < 0 else size
        while self._digest is None and (want is None or self._buffered < want or self.bytes_read == self.expected_size):
            self._pull()
        return self._take_out(self._buffered if want is None else min(want, self._buffered))

    def _take_out(self, n: int) -> bytes:
        """The first ``n`` buffered bytes, joined once (one copy; a single whole chunk is not copied)."""
        parts: list[bytes] = []
        need = n
        while need:
            head = self._chunks[0]
            if len(head) <= need:
                parts.append(self._chunks.popleft())
                need -= len(head)
            else:
                parts.append(head[:need])
                self._chunks[0] = head[need:]
                need = 0
        self._buffered -= n
        return b"".join(parts)

    def digest(self) -> StreamDigest:
        """The verified result; raises CopyIntegrityError if the source was not read to a verified end."""
        if self._digest is None:
            raise CopyIntegrityError(
                f"stream not verified: read {self.bytes_read} of {self.expected_size} bytes, not to the end"
            )
        return self._digest

    def _pull(self) -> None:
        try:
            chunk = next(self._source, None)
            if chunk is None:
                self._finish()
            elif chunk:
                self._take(chunk)
        except BaseException as exc:
            self._error = exc  # a failed reader stays failed
            raise

    def _take(self, chunk: bytes) -> None:
        self.bytes_read += len(chunk)
        if self.bytes_read > self.expected_size:
            raise CopyIntegrityError(
                f"body is longer than the expected {self.expected_size} bytes (got {self.bytes_read} so far)"
            )
        self._sha.update(chunk)
        self._gzip.feed(chunk)
        self._chunks.append(chunk)
        self._buffered += len(chunk)

    def _finish(self) -> None:
        if self.bytes_read != self.expected_size:
            raise CopyIntegrityError(f"body is short: got {self.bytes_read} of the expected {self.expected_size} bytes")
        records = self._gzip.finish(self.bytes_read)
        self._digest = StreamDigest(self.bytes_read, self._sha.hexdigest(), records)


# -- the link ----------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without its query string (which holds the presigned signature and token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?<redacted>" if parts.query else "")


def _scrub(text: str) -> str:
    """Remove query strings from an exception message (requests puts whole URLs in them)."""
    return re.sub(r"\?[^\s'\"()]*", "?<redacted>", text)


def _clean_session() -> requests.Session:
    """A session that sends nothing but the request: no auth, no netrc, no Twilio headers."""
    session = requests.Session()
    session.trust_env = False  # no ~/.netrc, no REQUESTS_CA_BUNDLE; proxies are added explicitly
    session.auth = None
    session.headers = CaseInsensitiveDict(
        {"User-Agent": "bulkexport-relay", "Accept": "*/*", "Accept-Encoding": "identity"}
    )
    return session


def open_link(
    url: str,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    *,
    verify: bool | str = True,
    policy: UrlPolicy,
) -> requests.Response:
    """GET the presigned link (streaming) and return the open 200 response, or raise a typed error.

    Redirects are followed by hand, at most MAX_REDIRECTS, never from https to http, with nothing
    but the URL carried over. Every hop passes ``policy`` (the process's, from its Settings:
    ``app.platform.url_policy.download_policy``) before anything is sent. The caller must close the response.
    """
    session = policy.mount(_clean_session())
    try:
        for _ in range(MAX_REDIRECTS + 1):
            resp = _get(session, url, timeout, verify)
            if not resp.is_redirect:
                _raise_for_status(resp, url)
                return resp
            location = resp.headers.get("Location", "")
            resp.close()
            url = _next_hop(url, location)
        raise TransientDownloadError(f"more than {MAX_REDIRECTS} redirects from {redact(url)}")
    except ForbiddenUrl as exc:
        raise LinkRejectedError(f"download link {redact(url)} refused by the URL policy: {exc}") from None
    finally:
        session.close()  # the returned response keeps its own connection


def _get(
    session: requests.Session, url: str, timeout: float | tuple[float, float], verify: bool | str
) -> requests.Response:
    try:
        return session.get(
            url,
            stream=True,
            allow_redirects=False,
            timeout=timeout,
            verify=verify,
            proxies=get_environ_proxies(url),
        )
    except requests.RequestException as exc:
        raise TransientDownloadError(
            f"download link {redact(url)} unreachable: {type(exc).__name__}: {_scrub(str(exc))}"
        ) from None


def _next_hop(url: str, location: str) -> str:
    if not location:
        raise TransientDownloadError(f"redirect without Location from {redact(url)}")
    target = urljoin(url, location)
    scheme = urlsplit(target).scheme
    if scheme not in ("http", "https") or (urlsplit(url).scheme == "https" and scheme != "https"):
        raise LinkRejectedError(f"refusing redirect from {redact(url)} to {redact(target)}")
    return target


def _raise_for_status(resp: requests.Response, url: str) -> None:
    status = resp.status_code
    if status == 200:
        return
    code = _s3_error_code(resp)
    resp.close()
    where = f"download link {redact(url)} answered HTTP {status}" + (f" {code}" if code else "")
    if status == 403 or (status == 400 and code in _EXPIRED_400_CODES):
        raise LinkExpiredError(f"{where}: expired or already used, fetch a fresh link")
    if status in (404, 410):
        raise LinkNotFoundError(f"{where}: the day file is gone")
    if status in (408, 429) or status >= 500:
        raise TransientDownloadError(where)
    if 400 <= status < 500:
        raise LinkRejectedError(where)
    raise TransientDownloadError(f"{where}: unexpected status")


def _s3_error_code(resp: requests.Response) -> str:
    """The <Code> of an S3 XML error body (read at most 16 KiB of it), or ''."""
    try:
        head = resp.raw.read(16 * 1024, decode_content=True) or b""
    except Exception:  # the error body is a courtesy; the status decides
        return ""
    match = re.search(rb"<Code>([A-Za-z0-9.]{1,64})</Code>", head)
    return match.group(1).decode() if match else ""


def body_chunks(resp: requests.Response, chunk_size: int = READ_CHUNK) -> Iterator[bytes]:
    """The raw (still gzip) body in chunks; a cut or stalled connection becomes TransientDownloadError."""
    try:
        yield from resp.raw.stream(chunk_size, decode_content=False)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise TransientDownloadError(f"download cut: {type(exc).__name__}: {_scrub(str(exc))}") from None


def _resolve_size(resp: requests.Response, expected_size: int | None) -> int:
    """The size to verify against; fails before uploading anything if the link announces another."""
    length = resp.headers.get("Content-Length", "")
    announced = int(length) if length.isdigit() else None
    if expected_size is None:
        if announced is None:
            raise CopyIntegrityError("the size is unknown: Twilio gave none and the link sends no Content-Length")
        return announced
    if announced is not None and announced != expected_size:
        raise CopyIntegrityError(f"link serves {announced} bytes but the Day's size is {expected_size}")
    return expected_size


# -- the copy ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyResult:
    key: str
    size: int
    sha256: str
    records: int
    etag: str  # S3's ETag of the object written (coverage compares bucket listings with it)


def copy_link_to_s3(
    url: str,
    expected_size: int | None,
    sink: S3Sink,
    key: str,
    metadata: Mapping[str, str],
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    *,
    verify: bool | str = True,
    policy: UrlPolicy,
) -> CopyResult:
    """Stream the day file at ``url`` into ``key`` via ``sink``, verified, with bounded memory.

    ``expected_size`` is the Day's ``size`` from Twilio; if Twilio gave none, the link's Content-Length
    is used instead (and the gzip trailers remain the integrity check). ``metadata`` should hold
    job_sid, day, resource_type and twilio_create_date; the sink adds size, and puts sha256 and records in the
    object's tags (also returned here, for the registry and the manifest). Whether
    ``key`` already holds the file was decided by the caller (``S3Sink.stored_day``). ``policy`` decides which
    hosts the link and its redirects may point at (``open_link``).
    """
    with closing(open_link(url, timeout, verify=verify, policy=policy)) as resp:
        size = _resolve_size(resp, expected_size)
        reader = VerifyingReader(body_chunks(resp), size)
        result = sink.upload_verified(reader, key, size, metadata)
    return CopyResult(result.key, result.size, result.sha256, result.records, result.etag)
