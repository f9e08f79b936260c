"""The *minimal correct* webhook handler: the baseline of bench/webhook_intake.py (issue 13).

    gunicorn --config deploy/gunicorn.conf.py bench.minimal_webhook:app      # REDIS_URL set

What any correct intake must do at least: read the token from the query string, look its hash up in Redis (one
GET) and answer 204 when it names something, 404 otherwise. A Flask route served by the same gunicorn
configuration as the relay's web (deploy/gunicorn.conf.py: worker class, worker count, access log), with a
capped blocking Redis pool like the relay's (app/services.py), so the two differ only in what the relay's
handler does beyond this: signature check, delivery accounting, metrics, the sync decision.

The benchmark stores ``TOKEN_PREFIX + sha256(token)`` for the relay job's own token, so both handlers answer
the very same request bytes.
"""

from __future__ import annotations

import functools
import hashlib
import os

import redis
from flask import Flask, Response, request

TOKEN_PREFIX = "bench:minimal:token:"

app = Flask(__name__)


@functools.cache
def _redis() -> redis.Redis:
    """Made on first use, in the worker (after gevent's monkey patching), like the relay's services."""
    pool = redis.BlockingConnectionPool.from_url(os.environ["REDIS_URL"], max_connections=50, timeout=5)
    return redis.Redis(connection_pool=pool)


@app.route("/hooks/bulkexport", methods=["POST"])
def bulkexport_webhook() -> Response:
    token = request.args.get("token", "")
    if not token:
        return Response(status=404)
    found = _redis().get(TOKEN_PREFIX + hashlib.sha256(token.encode()).hexdigest())
    return Response(status=204 if found is not None else 404)


@app.route("/livez")
def livez() -> Response:
    """For the benchmark's readiness poll only."""
    return Response("ok", mimetype="text/plain")
