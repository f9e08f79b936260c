"""The S3 server restarted in the middle of copies (three times in the long variant).

SeaweedFS keeps its state on disk, as S3 does: buckets, finished objects and open multipart uploads survive the
restart, while the requests in flight are cut. The server is restarted each time a new multipart upload is open
(a day's upload in flight). Then every day must land byte-exact, written exactly once (counts from SeaweedFS's
own metadata log, across restarts), nothing partial may ever be listed at the data keys, and the janitor must
leave nothing behind. A dedicated server is used so the session one is not disturbed. (moto, which this ran on
before, lost every bucket and upload on restart, so the bucket had to be recreated with the workers paused.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.procs import wait_until
from devstack.s3_server import SeaweedS3Server
from tests.chaos.conftest import (
    LONG,
    QUICK,
    DataKeyWatcher,
    assert_days_exact,
    assert_no_leftovers,
    data_key,
    day,
    expected_sizes,
)

pytestmark = pytest.mark.chaos

RT = "Conferences"
MiB = 1024 * 1024
DAY_SIZE = 17 * MiB  # three 8 MiB parts: the upload is open for the last ~9 MiB of the download
CHUNK_DELAY_MS = 20  # per 64 KiB: ~2.6 s before the multipart upload starts, ~3 s more until it completes
BUCKET = "relay-chaos-s3-restart"


@pytest.fixture
def s3_dedicated(tmp_path: Path) -> Iterator[SeaweedS3Server]:
    """Set up before the stack, so it is stopped after the stack's processes."""
    with SeaweedS3Server(tmp_path, tls=True) as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


def test_s3_restarted_mid_copy(s3_dedicated, chaos_stack, sandbox):
    s3 = s3_dedicated
    n_days = 5 if LONG else 3
    restarts_wanted = 3 if LONG else 1
    days = [day(3 + i) for i in range(n_days)]
    keys = [data_key(RT, d) for d in days]
    sandbox.set_scenario(default_day_size=DAY_SIZE)
    sandbox.set_faults(files={"chunk_delay_ms": CHUNK_DELAY_MS})
    # Days bigger than S3_SINGLE_PUT_MAX_MIB stream through a multipart upload: the long-lived S3 state a restart hits.
    stack = chaos_stack(workers=2, poller=True, S3_BUCKET=BUCKET, S3_SINGLE_PUT_MAX_MIB="4", **s3.env())
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": days[-1], "end_day": days[0]})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    sandbox.complete(sid)
    client = s3.client(**QUICK)

    hit: set[str] = set()  # upload ids a restart already cut

    def restart_moment() -> str | None:
        """'upload' once a multipart upload no restart has cut yet is open; 'final' once the job is over."""
        uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []
        if any(u["UploadId"] not in hit for u in uploads):
            return "upload"
        return "final" if stack.api("GET", f"/api/jobs/{sid}").json()["state"] in ("done", "failed") else None

    open_uploads: list[int] = []
    with DataKeyWatcher(client, BUCKET, expected_sizes(sandbox, RT, days)) as watcher:
        for _ in range(restarts_wanted):
            if wait_until(restart_moment, timeout=90, interval=0.05, what="a multipart upload in flight") != "upload":
                break
            uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []
            hit.update(u["UploadId"] for u in uploads)
            open_uploads.append(len(uploads))
            s3.restart()  # buckets, objects and open uploads stay; requests in flight are cut
        sandbox.set_faults()  # retries download at full speed
        view = stack.wait_job(sid, timeout=180)
        watcher.check_once()

    assert open_uploads, "S3 was never restarted mid-copy"
    assert view["state"] == "done", view
    assert_days_exact(client, BUCKET, sandbox, RT, view)
    writes = {k: s3.writes(BUCKET, k) for k in keys}  # counted across the restarts (a graceful stop keeps the log)
    assert set(writes.values()) == {1}, writes
    assert not watcher.violations, watcher.violations
    removed = assert_no_leftovers(client, BUCKET)
    retried = sum(1 for d in view["days"] if d["attempts"] > 1)
    print(
        f"\nchaos: S3 restarted {len(open_uploads)}x mid-copy ({', '.join(map(str, open_uploads))} multipart "
        f"upload(s) open, their requests cut) -> {n_days}/{n_days} days byte-exact, {retried} day(s) retried "
        f"({sum(d['attempts'] for d in view['days'])} attempts), 1 write per day, "
        f"0 partial objects in {watcher.listings} listings, janitor removed {removed} leftover(s)"
    )
