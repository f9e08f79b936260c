"""The lake task's core (workers/lake_loader.py) against real Redis, SeaweedFS (plain http: pyiceberg's Arrow S3
FileIO takes no CA bundle, docs/lake.md) and a SQLite catalog: what each outcome leaves on the day's coverage record
(``lake``/``lake_error``) and in the table, and the janitor's lake housekeeping."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from app.feeds.store import CoverageDay
from app.lake.catalog import open_catalog
from app.lake.tables import open_table
from app.platform.config import load_settings
from app.services import Services, build_services
from app.twilio.accounts import owner_of
from devstack.s3_server import SeaweedS3Server
from sandbox.content import describe_day_file, iter_day_file
from tests.conftest import make_env, started
from workers.lake_loader import FAILED, LOADED, SKIPPED, LakeDay, load_copied_day, maintain
from workers.sink import S3Sink, SinkSettings

RT = "Messages"
DAY = date(2026, 6, 1)
SIZE = 20_000


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3Server]:
    with started(lambda: SeaweedS3Server(tmp_path_factory.mktemp("lake-task-s3"), tls=False)) as server:
        yield server


@dataclasses.dataclass
class World:
    svc: Services
    sink: S3Sink
    client: Any
    bucket: str


def world(redis_url: str, weed: SeaweedS3Server, sandbox: Any, tmp_path: Path, **env: str) -> World:
    bucket = f"lake-task-{tmp_path.name[-12:].lower().replace('_', '-')}"
    client = weed.client()
    client.create_bucket(Bucket=bucket)
    lake = {"LAKE_CATALOG": "sql", "LAKE_CATALOG_URI": f"sqlite:///{tmp_path / 'catalog.db'}?timeout=60"}
    settings = load_settings(make_env(redis_url, weed, bucket, sandbox, "http://127.0.0.1:9", **(lake | env)))
    svc = build_services(settings)
    return World(svc, S3Sink(svc.s3_client(), SinkSettings(bucket=bucket, prefix="twilio/")), client, bucket)


@pytest.fixture
def w(redis_url: str, weed: SeaweedS3Server, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    for name, value in weed.env().items():  # the lake's FileIO reads the relay's AWS_* environment
        monkeypatch.setenv(name, value)
    return world(redis_url, weed, sandbox, tmp_path)


def copied(w: World, seed: int = 0) -> tuple[LakeDay, CoverageDay]:
    """A day file in the bucket and its coverage record, as the copy leaves them."""
    account = w.svc.settings.twilio_account_sid
    key = f"twilio/{RT}/day={DAY}/{RT}-{DAY}.json.gz"
    body = b"".join(iter_day_file(RT, DAY, SIZE, seed, account_sid=account))
    w.client.put_object(Bucket=w.bucket, Key=key, Body=body)
    info = describe_day_file(RT, DAY, SIZE, seed, account_sid=account)
    rec = CoverageDay("copied", "JS1", key, len(body), info.sha256, info.records)
    w.svc.feeds.put_days(owner_of(RT, account), {DAY.isoformat(): rec})
    return LakeDay(account, RT, DAY.isoformat(), key, info.sha256, info.records), rec


def coverage_day(w: World, lake_day: LakeDay) -> CoverageDay:
    rec = w.svc.feeds.get_day(lake_day.owner, lake_day.day)
    assert rec is not None
    return rec


def rows(w: World) -> int:
    lake = w.svc.settings.lake
    assert lake is not None
    return open_table(open_catalog(lake), lake.namespace, RT).scan().to_arrow().num_rows


def test_a_loaded_day_is_recorded_loaded_and_loading_it_again_replaces_it(w: World) -> None:
    lake_day, rec = copied(w)
    assert load_copied_day(w.svc, w.sink, lake_day, final=True) == LOADED
    assert load_copied_day(w.svc, w.sink, lake_day, final=True) == LOADED
    after = coverage_day(w, lake_day)
    assert (after.lake, after.lake_error) == ("loaded", None)
    assert dataclasses.replace(after, lake=None) == rec  # nothing else on the record changed
    assert rows(w) == lake_day.records
    assert maintain(w.svc.settings.lake) == {"expired_snapshots": 0, "removed_files": 0}  # all younger than a day


def test_a_permanent_failure_is_recorded_with_its_reason_at_once(w: World) -> None:
    lake_day, _ = copied(w)
    wrong = dataclasses.replace(lake_day, records=lake_day.records + 1)
    assert load_copied_day(w.svc, w.sink, wrong, final=False) == FAILED
    after = coverage_day(w, lake_day)
    assert after.lake == "failed" and after.lake_error and after.lake_error.startswith("RecordCountMismatch")
    w.client.delete_object(Bucket=w.bucket, Key=lake_day.key)
    assert load_copied_day(w.svc, w.sink, lake_day, final=False) == FAILED
    assert (coverage_day(w, lake_day).lake_error or "").startswith("ObjectGone")


def test_a_load_of_a_copy_the_day_no_longer_holds_is_skipped(w: World) -> None:
    lake_day, rec = copied(w)
    other = dataclasses.replace(lake_day, sha256="0" * 64)
    assert load_copied_day(w.svc, w.sink, other, final=True) == SKIPPED
    assert coverage_day(w, lake_day) == rec


def test_a_transient_failure_is_raised_and_recorded_only_on_the_last_attempt(
    redis_url: str, weed: SeaweedS3Server, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in weed.env().items():
        monkeypatch.setenv(name, value)
    unreachable = f"sqlite:///{tmp_path / 'no-such-dir' / 'catalog.db'}"
    w = world(redis_url, weed, sandbox, tmp_path, LAKE_CATALOG_URI=unreachable)
    lake_day, rec = copied(w)
    with pytest.raises(Exception, match="unable to open database file"):
        load_copied_day(w.svc, w.sink, lake_day, final=False)
    assert coverage_day(w, lake_day) == rec  # retried by RQ: not failed yet
    with pytest.raises(Exception, match="unable to open database file"):
        load_copied_day(w.svc, w.sink, lake_day, final=True)
    assert coverage_day(w, lake_day).lake == "failed"
