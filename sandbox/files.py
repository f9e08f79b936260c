"""The files listener: stands in for Twilio's S3 bucket behind FetchDay's presigned, single-use links.

Answers like S3 does: XML ``<Error>`` bodies, 403 ``AccessDenied`` for a spent or expired link,
403 ``SignatureDoesNotMatch`` for an unknown one or a method other than GET, and 400 ``InvalidArgument``
when the request also carries an ``Authorization`` header (presigned query auth plus header auth).
Bodies are streamed member by member from sandbox.content, so multi-GiB files cost no memory.
Any request that reaches a valid link spends it, including one answered by an injected fault.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from sandbox.content import iter_day_file
from sandbox.state import Link, Store

log = logging.getLogger("sandbox.files")

CHUNK = 64 * 1024


def s3_error(status: int, code: str, message: str, **extra: str) -> Response:
    parts = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra.items())
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{parts}"
        f"<RequestId>{request_id}</RequestId><HostId>sandbox</HostId></Error>"
    )
    return Response(body, status=status, content_type="application/xml", headers={"x-amz-request-id": request_id})


class FilesApp:
    """WSGI app serving presigned day-file links."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        entry = self.store.log(
            "downloads",
            {
                "path": request.path,
                "method": request.method,
                "resource_type": None,
                "day": None,
                "status": None,
                "problem": None,
                "fault": None,
                "size": None,
                "bytes_sent": 0,
                "completed": False,
                "started_at": datetime.now(UTC).isoformat(),
                "finished_at": None,
            },
        )
        resp = self._handle(request, entry)
        self.store.update_log(entry, status=resp.status_code)
        if not resp.is_streamed:
            self.store.update_log(entry, finished_at=datetime.now(UTC).isoformat())
        return resp

    def _handle(self, request: Request, entry: dict[str, Any]) -> Response:
        if "Authorization" in request.headers:
            entry["problem"] = "authorization_header"
            return s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
                ArgumentName="Authorization",
                ArgumentValue=request.headers["Authorization"][:40],
            )
        signature = request.args.get("X-Amz-Signature")
        if not signature or request.args.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            entry["problem"] = "unsigned"
            return s3_error(403, "AccessDenied", "Access Denied")
        if request.method != "GET":
            entry["problem"] = "method"
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        link, problem = self.store.claim_link(signature, request.path.lstrip("/"))
        entry["problem"] = problem
        if link is None:
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        entry.update(resource_type=link.file.resource_type, day=link.file.day.isoformat(), size=link.file.size)
        if problem == "expired":
            return self._expired(link)
        if problem == "used":
            return s3_error(403, "AccessDenied", "Access Denied")
        fault, slow_ms, chunk_delay_ms, cut_at = self.store.take_files_fault()
        entry["fault"] = fault
        if fault == "expired":
            return self._expired(link)
        if slow_ms:
            time.sleep(slow_ms / 1000)
        if fault == "500":
            return s3_error(500, "InternalError", "We encountered an internal error. Please try again.")
        size = link.file.size
        limit = None
        if fault == "cut":
            limit = min(size - 1, cut_at if cut_at is not None else size // 2)
        body = self._body(link, entry, limit, chunk_delay_ms / 1000)
        headers = {
            "Content-Length": str(size),
            "Last-Modified": format_datetime(link.file.created_wall.replace(tzinfo=UTC), usegmt=True),
            "x-amz-request-id": uuid.uuid4().hex[:16].upper(),
            "x-amz-server-side-encryption": "AES256",
        }
        return Response(body, status=200, content_type="application/octet-stream", headers=headers)

    def _expired(self, link: Link) -> Response:
        return s3_error(
            403,
            "AccessDenied",
            "Request has expired",
            **{
                "X-Amz-Expires": str(max(1, round(link.ttl))),
                "Expires": link.created_wall.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ServerTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )

    def _body(self, link: Link, entry: dict[str, Any], limit: int | None, delay: float) -> Iterator[bytes]:
        """Stream the file; with ``limit`` stop after that many bytes (the connection then closes short)."""
        f = link.file
        sent = 0
        try:
            for member in iter_day_file(f.resource_type, f.day, f.target, f.seed, account_sid=f.account_sid):
                for off in range(0, len(member), CHUNK):
                    piece = member[off : off + CHUNK]
                    if limit is not None and sent + len(piece) >= limit:
                        piece = piece[: limit - sent]
                        if piece:
                            yield piece
                            sent += len(piece)
                        log.info("cut %s/%s after %d of %d bytes", f.resource_type, f.day, sent, f.size)
                        return
                    if delay and sent:
                        time.sleep(delay)
                    yield piece
                    sent += len(piece)
        finally:
            self.store.update_log(
                entry, bytes_sent=sent, completed=sent == f.size, finished_at=datetime.now(UTC).isoformat()
            )
