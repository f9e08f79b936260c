"""The lake end to end (issue 23, docs/lake.md): gunicorn, rq workers and SeaweedFS with LAKE_CATALOG=sql and a
SQLite catalog in the test's directory. A job's days are copied, then loaded by the worker from the relay-lake
queue; each (account, day) partition holds the verified records, coverage says ``loaded``, and copying a day again
(the copy-day API) leaves its rows there exactly once.

SeaweedFS is plain http here: pyiceberg's Arrow S3 FileIO takes no CA bundle (AWS_CA_BUNDLE), so it could not
trust the test CA of the TLS server the other e2e tests use.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest

from app.lake.catalog import open_catalog
from app.lake.tables import open_table
from app.platform.config import load_settings
from devstack.procs import wait_until
from devstack.s3_server import SeaweedS3Server
from tests.conftest import started

pytestmark = pytest.mark.e2e

RT = "Messages"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    """This module's S3: SeaweedFS over plain http (see the module docstring)."""
    with started(lambda: SeaweedS3Server(tmp_path_factory.mktemp("lake-e2e-s3"), tls=False)) as server:
        yield server


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def lake_of(stack: Any) -> dict[str, Any]:
    feed = stack.api("GET", f"/api/coverage?resource_type={RT}").json()["feeds"][0]
    return feed["lake"]


def table_of(stack: Any) -> Any:
    settings = load_settings(stack.env)
    assert settings.lake is not None
    return open_table(open_catalog(settings.lake, stack.env), settings.lake.namespace, RT)


def rows_per_day(stack: Any) -> dict[str, int]:
    days = table_of(stack).scan(selected_fields=("day",)).to_arrow().column("day")
    counts = pc.value_counts(days).to_pylist()
    return {str(c["values"]): int(c["counts"]) for c in counts}


def test_copied_days_are_loaded_once_each(make_stack: Any, sandbox: Any, tmp_path: Path) -> None:
    days = [day(5), day(4), day(3)]
    sandbox.set_scenario(default_day_size=30000)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}?timeout=60"
    stack = make_stack(workers=2, LAKE_CATALOG="sql", LAKE_CATALOG_URI=catalog)
    account = load_settings(stack.env).twilio_account_sid
    put = stack.api("PUT", f"/api/feeds/{RT}", json={"since": days[0], "until": days[-1]})
    assert put.status_code in (200, 201), put.text
    job = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": days[0], "end_day": days[-1]})
    assert job.status_code == 201, job.text
    view = stack.wait_job(job.json()["job_sid"])
    assert view["state"] == "done", view
    records = {d["day"]: d["records"] for d in view["days"]}
    assert all(records[d] for d in days), records

    def loaded() -> dict[str, Any] | None:
        lake = lake_of(stack)
        return lake if lake["loaded"] == len(days) else None

    lake = wait_until(loaded, timeout=120, interval=0.5, what="every copied day loaded into the lake")
    assert lake == {"loaded": 3, "failed": 0, "waiting": 0, "failed_days": {}}
    assert rows_per_day(stack) == records

    again = stack.api("POST", f"/api/days/{RT}/{days[1]}/copy")
    assert again.status_code == 202, again.text
    stack.wait_job(again.json()["job_sid"])
    snapshots = len(table_of(stack).snapshots())

    def reloaded() -> bool:
        return lake_of(stack)["loaded"] == len(days) and len(table_of(stack).snapshots()) > snapshots

    wait_until(reloaded, timeout=120, interval=0.5, what="the copied-again day loaded again")
    assert rows_per_day(stack) == records  # replaced, not appended
    partitions = table_of(stack).scan(selected_fields=("account_sid",)).to_arrow().column("account_sid")
    assert set(partitions.to_pylist()) == {account}
