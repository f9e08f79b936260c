"""``app.bucket.probe.decide``: the write path from the probe's findings and S3_OBJECT_TAGS (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from app.bucket.probe import AWS_LIKE, StoreFindings, decide

RCLONE = dataclasses.replace(
    AWS_LIKE, tagging_intact=False, put_checksum_enforced=False, part_checksum_enforced=False, multipart_etag_kept=False
)


def test_a_store_like_aws_keeps_the_digest_in_tags_unless_off() -> None:
    assert decide(AWS_LIKE, "auto", "b").digest_in_tags is True
    assert decide(AWS_LIKE, "on", "b").digest_in_tags is True
    off = decide(AWS_LIKE, "off", "b")
    assert off.digest_in_tags is False and off.refusal is None and off.multipart_etag_kept is True


def test_unsafe_tagging_means_the_manifest_under_auto_and_a_refusal_under_on() -> None:
    auto = decide(RCLONE, "auto", "b")
    assert auto.refusal is None and auto.digest_in_tags is False and auto.multipart_etag_kept is False
    assert any("ChecksumSHA256" in w for w in auto.warnings) and any("job manifests" in w for w in auto.warnings)
    on = decide(RCLONE, "on", "b")
    assert on.refusal == (
        "S3 bucket 'b': PutObjectTagging is unsafe here (tagging_intact=false) and S3_OBJECT_TAGS=on: "
        "set S3_OBJECT_TAGS=auto or off"
    )


def test_tags_that_cannot_be_read_back_are_not_used() -> None:
    unread = dataclasses.replace(AWS_LIKE, tags_read_back=False)
    assert decide(unread, "auto", "b").digest_in_tags is False
    assert "tags_read_back=false" in (decide(unread, "on", "b").refusal or "")


@pytest.mark.parametrize("capability", ["put_intact", "multipart_intact"])
@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_a_store_that_does_not_keep_its_writes_is_refused_whatever_the_setting(capability: str, mode: str) -> None:
    broken = dataclasses.replace(AWS_LIKE, **{capability: False})
    refusal = decide(broken, mode, "b").refusal
    assert refusal is not None and f"{capability}=false" in refusal and "\n" not in refusal


def test_findings_round_trip_and_anything_else_is_no_findings() -> None:
    found = dataclasses.replace(RCLONE, probed_at="2026-01-01T00:00:00+00:00")
    assert StoreFindings.from_json(found.to_json()) == found
    assert StoreFindings.from_json('{"put_intact": true}') is None
    assert StoreFindings.from_json("not json") is None
