"""``relay migrate-layout`` (app/bucket/migrate_layout.py) in-process, against real Redis, each S3 server of the
``server``
fixture (copied through the workers' sink, as the migration task copies) and the Twilio sandbox: days copied
under the default template are moved to an account-partitioned one, then a relay built with that
S3_KEY_TEMPLATE reconciles every day as copied and plans nothing; run twice; --dry-run changes nothing;
--delete-old deletes old objects only after the copy is verified and recorded; a killed run continues."""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.bucket import migrate_layout
from app.bucket import reconcile as bucket_reconcile
from app.feeds import planner
from app.feeds.store import CoverageDay, Feed
from app.platform import clock
from app.platform.config import ConfigError, check_key_template, load_settings
from app.platform.errors import RequestError
from app.twilio.accounts import owner_of
from devstack.s3_server import RcloneS3Server
from tests.conftest import make_env
from tests.days import day
from tests.integration import s3_calls
from tests.integration.s3_calls import path_settings
from workers.copy import VerifyingReader
from workers.sink import S3Sink, SinkSettings
from workers.sink import layout as sink_layout

bucket = s3_calls.server_bucket  # fixture: a new bucket per test on the module's ``server``

RT = "Calls"
NEW = "{prefix}{resource_type}/account={account_sid}/day={day}/{resource_type}-{day}.json.gz"
DAYS_AGO = (4, 5, 6)


# Days count back from when the module was loaded, not from the relay's clock: the `past` fixture moves that clock
# 15 minutes back, which near midnight (UTC) would move "today" too, between the feed's window and its days.
ANCHOR = datetime.now(UTC).date()


@pytest.fixture
def past(monkeypatch, tmp_path: Path) -> Callable[[], None]:
    """The relay's clock (app/platform/clock.py) 15 minutes back while days are copied and moved; calling it sets the
    clock
    back to now: the records are then older than the reconcile's listing lag, so it checks every one of them."""
    offset = tmp_path / "clock-offset"
    offset.write_text("-900")
    monkeypatch.setenv(clock.OFFSET_FILE_VAR, str(offset))
    _until(lambda: clock.now() < time.time() - 800)

    def back_to_now() -> None:
        offset.write_text("0")
        _until(lambda: clock.now() > time.time() - 5)

    return back_to_now


def _until(cond: Callable[[], bool]) -> None:
    """Poll (the clock rereads its offset file every 0.2 s) with a deadline."""
    deadline = time.monotonic() + 5
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"


@pytest.fixture
def app(redis_url, server, bucket, sandbox):
    return create_app(load_settings(make_env(redis_url, server, bucket, sandbox, "http://127.0.0.1:9")))


@pytest.fixture
def svc(app):
    svc = app.extensions["relay"]
    svc.feeds.put_feed(
        Feed(RT, since=day(max(DAYS_AGO), ANCHOR), until=day(min(DAYS_AGO), ANCHOR), account=svc.accounts.primary.sid)
    )
    return svc


def sink_for(svc: Any, client: Any, bucket: str, template: str | None = None) -> S3Sink:
    extra = {"key_template": template} if template else {}
    return S3Sink(client, SinkSettings(bucket=bucket, prefix=svc.settings.s3_prefix, **path_settings(client), **extra))


@pytest.fixture
def sink(svc, client, bucket) -> S3Sink:
    return sink_for(svc, client, bucket)


def copy_days(svc: Any, sink: S3Sink) -> dict[str, str]:
    """Days copied as the workers copy them (the object, the job manifest, the coverage record): day -> key."""
    owner, keys, manifest = owner_of(RT, svc.accounts.primary.sid), {}, []
    for n in DAYS_AGO:
        iso = day(n, ANCHOR)
        data = gzip.compress(b"".join(b'{"sid": "CA%d"}\n' % i for i in range(n)), mtime=0)
        meta = {"job_sid": "JS1", "day": iso, "resource_type": RT, "twilio_create_date": "2026-01-01T00:00:00Z"}
        key = sink.day_key(RT, iso, "JS1", svc.accounts.primary.sid)
        r = sink.upload_verified(VerifyingReader([data], len(data)), key, len(data), meta)
        rec = CoverageDay("copied", "JS1", r.key, r.size, r.sha256, r.records, etag=r.etag, updated_at=clock.now())
        svc.feeds.put_days(owner, {iso: rec})
        manifest.append({"key": r.key, "size": r.size, "sha256": r.sha256, "records": r.records})
        keys[iso] = key
    sink.put_json(sink.manifest_key(RT, "JS1"), {"days": manifest})
    return keys


def coverage_of(svc: Any) -> dict[str, CoverageDay]:
    owner = owner_of(RT, svc.accounts.primary.sid)
    return svc.feeds.coverage([owner])[owner]


def listed(client: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []) if "/day=" in o["Key"]}


def switch_to_new_template(redis_url, server, bucket, sandbox, client) -> tuple[Any, S3Sink]:
    env = make_env(redis_url, server, bucket, sandbox, "http://127.0.0.1:9", S3_KEY_TEMPLATE=NEW)
    svc = create_app(load_settings(env)).extensions["relay"]
    return svc, sink_for(svc, client, bucket, NEW)


def test_moved_days_are_all_copied_after_the_switch_and_the_planner_submits_nothing(
    svc, sink, client, bucket, past, redis_url, server, sandbox
):
    old_keys = copy_days(svc, sink)
    moves = migrate_layout.migrate(svc, sink, NEW, None, delete_old=False)
    assert [m.outcome for m in moves] == ["moved"] * 3
    new_keys = {m.day: m.new_key for m in moves}
    assert {m.day: m.old_key for m in moves} == old_keys
    assert all(f"/account={svc.accounts.primary.sid}/" in k for k in new_keys.values())
    assert listed(client, bucket) == set(old_keys.values()) | set(new_keys.values())  # nothing deleted
    for iso, rec in coverage_of(svc).items():
        assert (rec.state, rec.key) == ("copied", new_keys[iso])
        held = sink.held(rec.key)
        assert held is not None and held.size == rec.size
        if sink.keeps_tags:
            assert (held.sha256, held.records) == (rec.sha256, rec.records)
    assert [m.outcome for m in migrate_layout.plan(svc, NEW)] == ["done"] * 3  # what --dry-run shows now
    again = migrate_layout.migrate(svc, sink, NEW, None, delete_old=False)
    assert [m.outcome for m in again] == ["done"] * 3  # idempotent: nothing copied twice

    past()  # now: the records are older than the listing lag, every one is checked
    svc2, new_sink = switch_to_new_template(redis_url, server, bucket, sandbox, client)
    result = bucket_reconcile.reconcile(svc2.feeds, new_sink, RT, svc2.accounts.primary.sid)
    assert (result.found, result.lost, result.corrupt) == (0, 0, 0)
    assert {d: (r.state, r.key) for d, r in coverage_of(svc2).items()} == {
        d: ("copied", k) for d, k in new_keys.items()
    }
    assert planner.plan(svc2, svc2.feeds).submitted == []


def test_dry_run_plans_and_changes_nothing(svc, sink, client, bucket, past):
    old_keys = copy_days(svc, sink)
    before = coverage_of(svc)
    moves = migrate_layout.plan(svc, NEW)
    assert [(m.day, m.old_key, m.outcome) for m in moves] == [(d, old_keys[d], "planned") for d in sorted(old_keys)]
    text = migrate_layout.summary_text(migrate_layout.summary(moves)).splitlines()
    assert text[0] == f"PLANNED    {RT} {moves[0].day}  {moves[0].old_key} -> {moves[0].new_key}"
    assert coverage_of(svc) == before and listed(client, bucket) == set(old_keys.values())


def test_delete_old_after_verification_and_a_killed_run_continues(svc, sink, client, bucket, past):
    old_keys = copy_days(svc, sink)
    first = sorted(old_keys)[0]
    # a run killed after copying the first day, before recording it: the new key holds the verified copy
    rec = coverage_of(svc)[first]
    target = migrate_layout.plan(svc, NEW)[0].new_key
    sink.copy_within(old_keys[first], target, rec.size, rec.sha256, rec.records)
    moves = migrate_layout.migrate(svc, sink, NEW, None, delete_old=True)
    # where the store keeps no tags (rclone), nothing says the new key's object is the verified copy: copied again
    resumed = "recorded" if sink.keeps_tags else "moved"
    assert [(m.day, m.outcome, m.deleted_old) for m in moves] == [(first, resumed, True)] + [
        (d, "moved", True) for d in sorted(old_keys)[1:]
    ]
    assert listed(client, bucket) == {m.new_key for m in moves}
    assert {d: r.key for d, r in coverage_of(svc).items()} == {m.day: m.new_key for m in moves}
    assert [m.outcome for m in migrate_layout.migrate(svc, sink, NEW, None, delete_old=True)] == ["done"] * 3


def test_a_day_whose_object_is_not_the_verified_copy_is_not_moved_and_its_old_object_stays(
    svc, sink, client, bucket, past
):
    old_keys = copy_days(svc, sink)
    bad = sorted(old_keys)[1]
    client.put_object(Bucket=bucket, Key=old_keys[bad], Body=b"x" * coverage_of(svc)[bad].size)  # same size
    before = coverage_of(svc)[bad]
    moves = {m.day: m for m in migrate_layout.migrate(svc, sink, NEW, None, delete_old=True)}
    assert moves[bad].outcome == "unverified" and not moves[bad].deleted_old
    assert coverage_of(svc)[bad] == before
    held = listed(client, bucket)
    assert old_keys[bad] in held and moves[bad].new_key not in held
    doc = migrate_layout.summary(list(moves.values()))
    assert [p["day"] for p in doc["problems"]] == [bad]


def test_the_new_template_is_checked_as_s3_key_template_is(svc):
    with pytest.raises(RequestError, match="--to: S3_KEY_TEMPLATE must contain"):
        migrate_layout.validate_template(svc, "{prefix}{resource_type}/all.json.gz")
    with pytest.raises(RequestError, match="conversion or format spec"):
        migrate_layout.validate_template(svc, "{prefix}{resource_type}/{day:.4}.json.gz")
    with pytest.raises(ConfigError, match=r"must contain \{account_sid\}"):
        check_key_template("{prefix}{resource_type}/{day}.json.gz", several_accounts=True)
    check_key_template(NEW, several_accounts=True)


def test_objects_over_the_copy_object_limit_are_copied_in_parts(svc, sink, client, bucket, server, monkeypatch):
    """Above S3's 5 GiB CopyObject limit the sink copies in parts (UploadPartCopy); here with the limit lowered,
    a 9 MiB day (two parts) is copied, tagged and verified as any other."""
    monkeypatch.setattr(sink_layout, "COPY_OBJECT_MAX", 0)
    iso, data = day(4, ANCHOR), gzip.compress(os.urandom(9 * 1024 * 1024), compresslevel=0, mtime=0)
    meta = {"job_sid": "JS1", "day": iso, "resource_type": RT, "twilio_create_date": "2026-01-01T00:00:00Z"}
    r = sink.upload_verified(VerifyingReader([data], len(data)), sink.day_key(RT, iso, "JS1"), len(data), meta)
    owner = owner_of(RT, svc.accounts.primary.sid)
    svc.feeds.put_days(owner, {iso: CoverageDay("copied", "JS1", r.key, r.size, r.sha256, r.records, etag=r.etag)})
    sink.put_json(sink.manifest_key(RT, "JS1"), {"days": [{"key": r.key, "size": r.size, "sha256": r.sha256}]})
    (move,) = migrate_layout.migrate(svc, sink, NEW, None, delete_old=False)
    if isinstance(server, RcloneS3Server):
        # rclone serve s3 answers UploadPartCopy without an ETag: the day is reported, nothing recorded
        assert move.outcome == "failed" and move.detail
        assert coverage_of(svc)[iso].key == r.key
        return
    assert move.outcome == "moved", move.detail
    body = client.get_object(Bucket=bucket, Key=move.new_key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == r.sha256
    assert client.head_object(Bucket=bucket, Key=move.new_key)["Metadata"].get("job_sid") == "JS1"
