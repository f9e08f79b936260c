"""The S3 server restarted in the middle of copies (three times in the long variant).

moto keeps everything in memory, so a restart loses every bucket, object and multipart upload; the bucket is
recreated right after the restart ("S3 came back"), while the workers are paused so that none of them sees the
server without its bucket (an artefact of moto, not of S3). A restart is only done while multipart uploads are
open and no day has been written yet (else moto would also lose finished days, which real S3 never does). Then
every day must land byte-exact, written exactly once, nothing partial may ever be listed at the data keys, and
the janitor must leave nothing behind. A dedicated moto server is used so the session one keeps its state.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from devstack.procs import wait_until
from devstack.s3_server import MotoS3Server
from tests.chaos.conftest import (
    LONG,
    PREFIX,
    QUICK,
    DataKeyWatcher,
    assert_days_exact,
    assert_no_leftovers,
    data_key,
    day,
    expected_sizes,
    signal_tree,
)

pytestmark = pytest.mark.chaos

RT = "Conferences"
MiB = 1024 * 1024
DAY_SIZE = 17 * MiB  # three 8 MiB parts: the upload is open for the last ~9 MiB of the download
CHUNK_DELAY_MS = 20  # per 64 KiB: ~2.6 s before the multipart upload starts, ~3 s more until it completes
BUCKET = "relay-chaos-s3-restart"


@pytest.fixture
def s3_dedicated(tmp_path) -> Iterator[MotoS3Server]:
    """Set up before the stack, so it is stopped after the stack's processes."""
    with MotoS3Server(tls=True, log_dir=tmp_path) as server:
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
    # Days bigger than S3_SINGLE_PUT_MAX_MIB stream through a multipart upload: the long-lived S3 state to lose.
    stack = chaos_stack(workers=2, poller=True, S3_BUCKET=BUCKET, S3_SINGLE_PUT_MAX_MIB="4", **s3.env())
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": days[-1], "end_day": days[0]})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    sandbox.complete(sid)
    client = s3.client(**QUICK)

    def restart_moment() -> str | None:
        """'upload' once a multipart upload of a day is open and no day is written yet; 'written' if too late."""
        if any(s3.writes(BUCKET, k) for k in keys):
            return "written"
        uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []
        return "upload" if any(u["Key"].startswith(f"{PREFIX}_staging/") for u in uploads) else None

    open_uploads: list[int] = []
    with DataKeyWatcher(client, BUCKET, expected_sizes(sandbox, RT, days)) as watcher:
        for _ in range(restarts_wanted):
            if wait_until(restart_moment, timeout=90, interval=0.05, what="a multipart upload in flight") != "upload":
                break
            open_uploads.append(len(client.list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []))
            # The workers are paused (SIGSTOP) from just before the restart until the bucket exists again: real
            # S3 never loses a bucket, and a worker that saw moto without it would fail its day for good
            # (NoSuchBucket is a permanent error). Their connections and uploads still die with the server.
            workers = [p for name, p in stack.procs.items() if name.startswith("worker") and p.alive()]
            for proc in workers:
                signal_tree(proc, signal.SIGSTOP)
            try:
                s3.restart()  # every bucket, object and upload is gone
                client.create_bucket(Bucket=BUCKET)  # S3 is back
            finally:
                for proc in workers:
                    signal_tree(proc, signal.SIGCONT)
        sandbox.set_faults()  # retries download at full speed
        view = stack.wait_job(sid, timeout=180)
        watcher.check_once()

    assert open_uploads, "S3 was never restarted mid-copy"
    assert view["state"] == "done", view
    assert_days_exact(client, BUCKET, sandbox, RT, view)
    writes = {k: s3.writes(BUCKET, k) for k in keys}  # counted since the last restart: nothing was written before
    assert set(writes.values()) == {1}, writes
    assert not watcher.violations, watcher.violations
    removed = assert_no_leftovers(client, BUCKET)
    retried = sum(1 for d in view["days"] if d["attempts"] > 1)
    print(
        f"\nchaos: S3 restarted {len(open_uploads)}x mid-copy ({', '.join(map(str, open_uploads))} multipart "
        f"upload(s) open, all lost) -> {n_days}/{n_days} days byte-exact, {retried} day(s) retried "
        f"({sum(d['attempts'] for d in view['days'])} attempts), 1 write per day, "
        f"0 partial objects in {watcher.listings} listings, janitor removed {removed} leftover(s)"
    )
