"""Prediction ids are UUIDv7: unique, time-ordered, and their issue time can be read back."""

from __future__ import annotations

import uuid

from mlops_core.serving.capture import issued_at_ms, prediction_ids


def test_ids_are_version_7_rfc_4122_unique_and_carry_their_time() -> None:
    ids = prediction_ids(5000, now_ms=1_796_115_000_123)

    parsed = [uuid.UUID(i) for i in ids]
    assert all(p.version == 7 and p.variant == uuid.RFC_4122 for p in parsed)
    assert len(set(ids)) == len(ids)
    assert {issued_at_ms(i) for i in ids} == {1_796_115_000_123}


def test_later_ids_sort_after_earlier_ones() -> None:
    earlier, later = prediction_ids(1, now_ms=1_000)[0], prediction_ids(1, now_ms=2_000)[0]
    assert earlier < later


def test_ids_that_are_not_ours_have_no_issue_time() -> None:
    assert issued_at_ms(str(uuid.uuid4())) is None
    assert issued_at_ms("not-an-id") is None
