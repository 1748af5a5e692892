"""The CI-sized soak: faults on the wire, thousands of messages, every invariant at 0 violations."""

from __future__ import annotations

import io

from local.soak import soak


def test_under_wire_faults_nothing_is_lost_stored_twice_or_reordered() -> None:
    # Given 1,500 orders over 24 groups, with duplicates and invalid bodies, 15 bodies too large for an item
    # and 40 Extended Client pointers, and faults on the consumer's wire (PutItem throttling/5xx bursts, lost
    # answers, timeouts, DeleteMessageBatch failures and partial failures, DLQ sends failing, invocations
    # dying between the write and the delete, S3 writes and reads throttled, failing, timing out or lost)

    # When the poller drains them through the handler
    result = soak(1_500, 24, 75, 30, large=15, pointers=40, seed=11, scale=3.0, err=io.StringIO())

    # Then faults were met, on S3 too, and every invariant holds
    assert sum(result.faults_injected.values()) > 0
    assert any(name.startswith(("PutObject", "GetObject")) for name in result.faults_injected)
    assert result.messages_sent == 1_605 + 15 + 40
    assert result.not_written_exactly_once == 0
    assert result.items_naming_no_body == 0
    assert result.body_objects_written_twice == 0
    assert result.lost == 0
    assert result.groups_out_of_order == 0
    assert result.invalid_not_in_dlq_with_reason == 0
    assert result.invalid_in_table == 0
    assert result.left_in_queue == 0
