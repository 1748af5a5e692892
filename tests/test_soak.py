"""The CI-sized soak: faults on the wire, thousands of messages, every invariant at 0 violations."""

from __future__ import annotations

import io
from types import SimpleNamespace
from typing import cast

import pytest

from local.cli import Run
from local.faults import WriteLedger
from local.producer import INVALID, POINTER, VALID, Outgoing
from local.report import REDRIVEN, DlqMessage
from local.soak import check, soak

slow = pytest.mark.slow  # not in `make check`; `make test` runs it


@slow
def test_under_wire_faults_nothing_is_lost_stored_twice_or_reordered() -> None:
    # Given 1,500 orders over 24 groups, with duplicates and invalid bodies, 15 bodies too large for an item,
    # 40 Extended Client pointers (every fifth payload too large for an item, four naming no object), and
    # faults on the consumer's wire (PutItem throttling/5xx bursts, lost answers, timeouts, DeleteMessageBatch
    # failures and partial failures, DLQ sends failing, invocations dying between the write and the delete,
    # S3 writes and reads throttled, failing, timing out or lost)

    # When the poller drains them through the handler
    result = soak(1_500, 24, 75, 30, large=15, pointers=40, seed=11, scale=3.0, err=io.StringIO())

    # Then faults were met, on both S3 calls too, and every invariant holds
    assert sum(result.faults_injected.values()) > 0
    assert any(name.startswith("PutObject") for name in result.faults_injected)
    assert any(name.startswith("GetObject") for name in result.faults_injected)
    assert result.messages_sent == 1_605 + 15 + 40
    assert result.not_written_exactly_once == 0
    assert result.items_naming_no_body == 0
    assert result.body_objects_written_twice == 0
    assert result.lost == 0
    assert result.groups_out_of_order == 0
    assert result.invalid_not_in_dlq_with_reason == 0
    assert result.invalid_in_table == 0
    assert result.left_in_queue == 0


@slow
def test_with_concurrent_pollers_nothing_is_lost_stored_twice_or_reordered() -> None:
    # Given 400 orders over 16 groups, with duplicates and invalid bodies, faults on the consumer's wire,
    # and three event source pollers draining the queue at once, each invoking the handler in its own
    # process with faults of its own (as three Lambda containers would)

    # When they drain the queue together
    result = soak(400, 16, 20, 10, seed=5, scale=3.0, pollers=3, err=io.StringIO())

    # Then each of the three invoked the handler, faults were met, and every invariant holds across them
    assert result.pollers == 3
    assert len(result.invocations_by_poller) == 3
    assert all(invocations > 0 for invocations in result.invocations_by_poller)
    assert sum(result.faults_injected.values()) > 0
    assert result.messages_sent == 430
    assert result.not_written_exactly_once == 0
    assert result.lost == 0
    assert result.groups_out_of_order == 0
    assert result.invalid_not_in_dlq_with_reason == 0
    assert result.invalid_in_table == 0
    assert result.left_in_queue == 0


def _finished_run(
    sent: list[Outgoing], dlq: list[DlqMessage], written: list[str], handed_back: tuple[Outgoing, ...] = ()
) -> tuple[Run, WriteLedger]:
    """What a drained queue left: the messages sent, the DLQ, the accepted writes, and the records the handler
    gave back to SQS without judging them (held back behind their group)."""
    ledger = WriteLedger()
    for key in written:
        ledger.record(key)
    report = SimpleNamespace(unaccounted=0, queue_left=0)
    output = SimpleNamespace(handed_back={message.sqs_message_id for message in handed_back})
    run = SimpleNamespace(sent=sent, dlq=dlq, items={}, payload_objects={}, report=report, output=output)
    return cast(Run, run), ledger


def _sent(kind: str, index: int, key: str | None = None, reason: str | None = None) -> Outgoing:
    return Outgoing(f"body-{index}", "g", f"d{index}", kind, key, reason, sqs_message_id=f"m{index}", sent_index=index)


def _redriven(message: Outgoing) -> DlqMessage:
    return DlqMessage(f"dlq-{message.sqs_message_id}", message.sqs_message_id, message.body, REDRIVEN, "")


def test_messages_sqs_redrove_after_max_receives_are_not_violations_but_unwritten_ones_are() -> None:
    # Given a group whose pointer kept failing: SQS moved it, and the valid and invalid messages held back
    # behind it, to the DLQ itself; a fourth message (valid) is neither written nor in the DLQ
    failing = _sent(POINTER, 0, key="k0")
    held_back = _sent(VALID, 1, key="k1")
    invalid = _sent(INVALID, 2, reason="invalid_json")
    missing = _sent(VALID, 3, key="k3")
    moved = [_redriven(failing), _redriven(held_back), _redriven(invalid)]
    run, ledger = _finished_run([failing, held_back, invalid, missing], moved, [], handed_back=(held_back, invalid))

    # When the soak's invariants are counted
    figures = check(run, ledger)

    # Then only the message that is nowhere is a violation
    assert figures["not_written_exactly_once"] == 1
    assert figures["invalid_not_in_dlq_with_reason"] == 0


def test_redriven_messages_the_consumer_should_have_settled_are_still_violations() -> None:
    # Given a pointer written twice then moved to the DLQ by SQS, an invalid message SQS moved although the
    # handler had it alone (it should have quarantined it), and an invalid message not in the DLQ at all
    pointer = _sent(POINTER, 0, key="k0")
    judged_alone = _sent(INVALID, 1, reason="invalid_json")
    missing = _sent(INVALID, 2, reason="invalid_json")
    run, ledger = _finished_run(
        [pointer, judged_alone, missing], [_redriven(pointer), _redriven(judged_alone)], ["k0", "k0"]
    )

    # When the soak's invariants are counted
    figures = check(run, ledger)

    # Then all three count
    assert figures["not_written_exactly_once"] == 1
    assert figures["invalid_not_in_dlq_with_reason"] == 2
