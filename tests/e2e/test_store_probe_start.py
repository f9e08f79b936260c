"""The store probe at start-up, with the real processes, on ``rclone serve s3`` (whose PutObjectTagging replaces
the object): forced to put the digest in tags there (S3_OBJECT_TAGS=on), a worker refuses to start with one line
naming the capability and the setting, and the web's readiness fails; under ``auto`` the same store is used,
with the digest in the job manifests."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from devstack.procs import wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("s3", ["rclone"], indirect=True)
def test_a_worker_refuses_to_start_where_its_writes_would_be_corrupted(make_stack: Any, s3: Any) -> None:
    stack = make_stack(workers=0, S3_OBJECT_TAGS="on")
    worker = stack.start_worker("worker1")
    wait_until(lambda: not worker.alive(), timeout=60, what="the worker to exit")
    assert worker.proc is not None and worker.proc.returncode != 0
    lines = [line for line in worker.tail(60).splitlines() if "refuses to start" in line]
    assert len(lines) == 1, worker.tail(60)
    assert "tagging_intact=false" in lines[0] and "S3_OBJECT_TAGS=on" in lines[0] and "auto or off" in lines[0]

    def store_unready() -> bool:
        r = requests.get(f"{stack.url}/readyz", timeout=5)
        return r.status_code == 503 and r.json()["failing"] == ["store"]

    wait_until(store_unready, timeout=10, what="/readyz failing on the store")
    public = requests.get(f"{stack.url}/health", timeout=5).json()["checks"]["s3:store"][0]
    assert public == {"status": "fail"}  # the findings only with the token
    detail = stack.api("GET", "/health").json()["checks"]["s3:store"][0]["detail"]
    assert detail["digest_in"] == "job manifests" and detail["findings"]["tagging_intact"] is False


@pytest.mark.parametrize("s3", ["rclone"], indirect=True)
def test_under_auto_the_same_store_is_used_without_tags(make_stack: Any, s3: Any) -> None:
    stack = make_stack(workers=1)

    def probed() -> dict[str, Any] | None:
        detail: dict[str, Any] = stack.api("GET", "/health").json()["checks"]["s3:store"][0].get("detail", {})
        return detail if detail.get("digest_in") else None

    detail = wait_until(probed, timeout=30, what="the worker's probe in /health")
    assert detail["digest_in"] == "job manifests" and detail["S3_OBJECT_TAGS"] == "auto"
    assert stack.procs["worker1"].alive()
    assert requests.get(f"{stack.url}/readyz", timeout=5).status_code == 200
