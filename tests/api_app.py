"""The relay's Flask app as the API's document tests use it (tests/integration/test_api_contract.py,
tests/fuzz/test_fuzz.py): a clean Redis and sandbox, a bucket of its own, and one tracked job, so the operations on
a job have one to answer about."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app import create_app
from app.jobs.records import JobRecord, hash_token
from app.platform.config import load_settings
from tests.conftest import make_env

PUBLIC = "https://relay.example.com"


def app_tracking_one_job(redis_server: Any, s3: Any, sandbox: Any, bucket: str, job_sid: str, token: str) -> Flask:
    """``create_app()`` on a flushed Redis, a reset sandbox and a new ``bucket``, tracking ``job_sid`` (Calls, one
    day) whose webhook token is ``token``."""
    s3.client().create_bucket(Bucket=bucket)
    redis_server.client().flushall()
    sandbox.reset()
    app = create_app(load_settings(make_env(redis_server.url, s3, bucket, sandbox, PUBLIC)))
    job = JobRecord(
        job_sid=job_sid,
        resource_type="Calls",
        start_day="2026-11-01",
        end_day="2026-11-01",
        token_hash=hash_token(token),
    )
    app.extensions["relay"].jobs.add_job(job)
    return app
