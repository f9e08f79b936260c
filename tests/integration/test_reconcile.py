"""Coverage reconciled with the bucket (each test on SeaweedFS and moto: the ``server`` fixture; real Redis): days
found in S3 are recorded, days gone from S3 are dropped (and planned again), a day the listing does not show but a
HEAD finds is never dropped, since dropping it would export it again, and a copied day whose object changed (size
or ETag) is ``corrupt``, never silently ``copied`` (app/bucket/check.py)."""

from __future__ import annotations

import gzip
import random
from typing import Any

import pytest

from app.bucket import reconcile as bucket_reconcile
from app.feeds import coverage
from app.feeds.store import CoverageDay, Feed
from app.platform import clock
from app.platform.config import load_settings
from app.services import Services, build_services
from app.twilio.accounts import owner_of
from tests.conftest import make_env
from tests.days import day
from tests.integration import s3_calls
from tests.integration.s3_calls import path_settings
from workers.copy import VerifyingReader
from workers.sink import S3Sink, SinkSettings, UploadResult

# Fixtures: a new bucket per test on the module's ``server``, and the workers' sink on it.
bucket, sink = s3_calls.server_bucket, s3_calls.server_sink

RT = "Calls"
MiB = 1024 * 1024


@pytest.fixture
def svc(redis_url, server, bucket, sandbox) -> Services:
    return build_services(load_settings(make_env(redis_url, server, bucket, sandbox, "http://127.0.0.1:9")))


class LaggingListing:
    """The real bucket, but a listing that does not show the newest objects yet (some S3 servers list new
    objects late; SeaweedFS cannot be made to on demand): ``day_index`` leaves out ``hidden`` days."""

    def __init__(self, sink: S3Sink, hidden: set[str]) -> None:
        self.sink, self.hidden = sink, hidden

    def day_index(self, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int, str]]:
        listed = self.sink.day_index(resource_type, account_sid)
        return {d: v for d, v in listed.items() if d not in self.hidden}

    def holds(self, key: str) -> bool:
        return self.sink.holds(key)


def put_day(client: Any, bucket: str, sink: S3Sink, iso: str) -> str:
    key = sink.day_key(RT, iso, "JS" + "0" * 32)
    client.put_object(Bucket=bucket, Key=key, Body=b"x")
    return key


def day_file(size: int, seed: int = 1) -> bytes:
    return gzip.compress(random.Random(seed).randbytes(size), compresslevel=1, mtime=0)


def copy_day(sink: S3Sink, iso: str, data: bytes) -> UploadResult:
    """A day written as the copy writes it (verified, digest tags) to its final key."""
    key = sink.day_key(RT, iso, "JS1")
    reader = VerifyingReader((data[i : i + MiB] for i in range(0, len(data), MiB)), len(data))
    meta = {"job_sid": "JS1", "day": iso, "resource_type": RT, "twilio_create_date": "2026-01-01T00:00:00Z"}
    return sink.upload_verified(reader, key, len(data), meta)


def recorded(result: UploadResult, **changes: Any) -> CoverageDay:
    """The coverage record of a copy made well before the listing (LISTING_LAG_SECONDS), as record_job_day makes it."""
    fields = {"state": "copied", "job_sid": "JS1", "key": result.key, "size": result.size, "sha256": result.sha256}
    fields |= {"records": result.records, "etag": result.etag, "updated_at": long_ago()}
    return CoverageDay(**(fields | changes))


def long_ago() -> float:
    return clock.now() - bucket_reconcile.LISTING_LAG_SECONDS - 60


def reconcile(svc: Services, index: Any) -> bucket_reconcile.Reconciled:
    return bucket_reconcile.reconcile(svc.feeds, index, RT, svc.accounts.primary.sid)


def cov_of(svc: Services) -> dict[str, CoverageDay]:
    return svc.feeds.coverage([owner_of(RT, svc.accounts.primary.sid)])[owner_of(RT, svc.accounts.primary.sid)]


def test_days_in_s3_are_found_and_days_gone_from_s3_are_dropped(svc, client, bucket, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    key = put_day(client, bucket, sink, day(5))
    gone = CoverageDay("copied", "JS1", sink.day_key(RT, day(6), "JS1"), 1, updated_at=long_ago())
    svc.feeds.put_days(owner, {day(6): gone})
    assert reconcile(svc, sink)[:3] == (1, 1, 0)
    cov = cov_of(svc)
    assert cov[day(5)].state == "copied" and cov[day(5)].key == key and cov[day(5)].size == 1
    assert cov[day(5)].etag  # the listing's, so a later change is seen
    assert day(6) not in cov  # missing again: the planner asks Twilio for it


def test_a_day_the_listing_does_not_show_yet_is_kept_when_its_object_is_there(svc, client, bucket, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    key = put_day(client, bucket, sink, day(5))
    svc.feeds.put_days(owner, {day(5): CoverageDay("copied", "JS1", key, 1, updated_at=long_ago())})
    assert reconcile(svc, LaggingListing(sink, {day(5)}))[:3] == (0, 0, 0)
    assert cov_of(svc)[day(5)].state == "copied"


def test_a_recently_copied_day_is_not_dropped_even_when_absent(svc, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    recent = CoverageDay("copied", "JS1", sink.day_key(RT, day(7), "JS1"), 1)  # recorded now
    svc.feeds.put_days(owner, {day(7): recent})
    assert reconcile(svc, sink)[:3] == (0, 0, 0)
    assert cov_of(svc)[day(7)].state == "copied"


# -- the bucket re-checked -----------------------------------------------------------------------------------


@pytest.mark.parametrize("single_put_max", [16 * MiB, 0], ids=["single-put", "multipart"])
def test_a_verified_copy_stays_copied_whatever_the_write_path(svc, client, bucket, single_put_max):
    """The ETag the upload answered is the ETag the listing shows: a fresh copy is never taken for a changed one."""
    sink = S3Sink(
        client, SinkSettings(bucket=bucket, prefix="twilio/", single_put_max=single_put_max, **path_settings(client))
    )
    result = copy_day(sink, day(5), day_file(9 * MiB if single_put_max == 0 else 4096))
    assert result.etag
    svc.feeds.put_days(owner_of(RT, svc.accounts.primary.sid), {day(5): recorded(result)})
    assert reconcile(svc, sink)[:3] == (0, 0, 0)
    assert cov_of(svc)[day(5)].state == "copied"


def test_an_object_replaced_by_one_of_another_size_is_corrupt_and_stays_visible(svc, client, bucket, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    result = copy_day(sink, day(5), day_file(4096))
    svc.feeds.put_days(owner, {day(5): recorded(result)})
    tagging_xml = b'<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet></TagSet></Tagging>'
    client.put_object(Bucket=bucket, Key=result.key, Body=tagging_xml)  # what rclone's PutObjectTagging did

    assert reconcile(svc, sink)[:3] == (0, 0, 1)
    rec = cov_of(svc)[day(5)]
    assert rec.state == "corrupt"
    assert rec.error == f"the bucket's object is {len(tagging_xml)} bytes, the verified copy was {result.size}"
    assert (rec.size, rec.sha256, rec.etag) == (result.size, result.sha256, result.etag)  # the verified copy's
    svc.feeds.put_feed(Feed(RT, since=day(10), account=svc.accounts.primary.sid))
    feed = coverage.report(svc, RT)["feeds"][0]
    assert feed["counts"]["corrupt"] == 1 and feed["ranges"]["corrupt"] == [[day(5), day(5)]]

    # Reconciled again: still corrupt (a listing alone never makes it copied), not counted twice.
    assert reconcile(svc, sink)[:3] == (0, 0, 0)
    assert cov_of(svc)[day(5)].state == "corrupt"


def test_an_object_rewritten_with_the_same_size_is_corrupt_by_its_etag(svc, client, bucket, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    data = day_file(4096)
    result = copy_day(sink, day(5), data)
    svc.feeds.put_days(owner, {day(5): recorded(result)})
    tampered = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
    client.put_object(Bucket=bucket, Key=result.key, Body=tampered)

    assert reconcile(svc, sink)[:3] == (0, 0, 1)
    rec = cov_of(svc)[day(5)]
    assert rec.state == "corrupt" and rec.error.startswith("the bucket's object has ETag ")
    assert rec.error.endswith(f"the verified copy had {result.etag}")


def test_a_multipart_etag_is_not_compared_with_a_listed_md5(svc, client, bucket, sink):
    """rclone answers CompleteMultipartUpload with ``<md5 of part md5s>-<parts>`` but lists the object by the MD5
    of its bytes: ETags of different kinds are not compared (the size still is)."""
    owner = owner_of(RT, svc.accounts.primary.sid)
    result = copy_day(sink, day(5), day_file(4096))
    svc.feeds.put_days(owner, {day(5): recorded(result, etag="0" * 32 + "-2")})
    assert reconcile(svc, sink)[:3] == (0, 0, 0)
    assert cov_of(svc)[day(5)].state == "copied"


def test_a_corrupt_day_whose_object_then_vanished_is_missing(svc, client, bucket, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    result = copy_day(sink, day(5), day_file(4096))
    bad = recorded(result, state="corrupt", error="the bucket's object is 240 bytes, the verified copy was 4")
    svc.feeds.put_days(owner, {day(5): bad})
    client.delete_object(Bucket=bucket, Key=result.key)
    assert reconcile(svc, sink)[:3] == (0, 1, 0)
    assert day(5) not in cov_of(svc)  # missing: planned again


def test_days_recorded_without_a_size_or_etag_are_checked_as_far_as_they_can_be(svc, client, bucket, sink):
    """Older versions recorded no ETag (size only), and possibly no size (presence only): never a false alarm."""
    owner = owner_of(RT, svc.accounts.primary.sid)
    no_etag, no_size = copy_day(sink, day(5), day_file(4096, 1)), copy_day(sink, day(6), day_file(4096, 2))
    svc.feeds.put_days(owner, {day(5): recorded(no_etag, etag=None), day(6): recorded(no_size, size=None, etag=None)})
    client.put_object(Bucket=bucket, Key=no_size.key, Body=b"replaced")  # another size: unseen without a size
    assert reconcile(svc, sink)[:3] == (0, 0, 0)
    assert {d: r.state for d, r in cov_of(svc).items()} == {day(5): "copied", day(6): "copied"}
    client.put_object(Bucket=bucket, Key=no_etag.key, Body=b"replaced")  # the size recorded is enough for this
    assert reconcile(svc, sink)[:3] == (0, 0, 1)
    assert cov_of(svc)[day(5)].state == "corrupt"


def test_a_copy_recorded_while_the_listing_ran_is_not_marked_corrupt(svc, client, bucket, sink):
    """The listing showed the object a new copy replaced: the record written since is left alone."""
    owner = owner_of(RT, svc.accounts.primary.sid)
    old = copy_day(sink, day(5), day_file(4096, 1))
    svc.feeds.put_days(owner, {day(5): recorded(old)})
    listing = sink.day_index(RT, svc.accounts.primary.sid)  # shows the old object

    class ListedBeforeTheCopy:
        def day_index(self, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int, str]]:
            return listing

        def holds(self, key: str) -> bool:
            return sink.holds(key)

    new = copy_day(sink, day(5), day_file(8192, 2))
    svc.feeds.put_days(owner, {day(5): recorded(new, updated_at=clock.now())})
    assert reconcile(svc, ListedBeforeTheCopy())[:3] == (0, 0, 0)
    assert cov_of(svc)[day(5)].state == "copied" and cov_of(svc)[day(5)].size == new.size
