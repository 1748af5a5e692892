"""Rule 3, hostile shapes: whatever a body of up to SQS's 1 MiB looks like, it is stored or quarantined
with a stable reason, never an unexpected exception. How long each takes is a bench figure (make bench,
section 6), not asserted here."""

from __future__ import annotations

from datetime import UTC, datetime

import jmespath
import pytest

from bench.hostile import SHAPES, SIZES
from consumer.dynamodb_item import MAX_ITEM_BYTES, build_item, item_size
from consumer.message import parse_message
from consumer.sqs_event import SqsRecord
from tests.conftest import Invoker, Stack, assert_quarantined, handle_one

QUARANTINED = {
    ("repeated names", "256 KiB"): "invalid_json",
    ("deep lists", "256 KiB"): "too_deep",
    ("deep maps", "256 KiB"): "too_deep",
    ("huge exponents", "256 KiB"): "number_out_of_range",
    ("long number", "256 KiB"): "number_out_of_range",
    ("repeated names", "1 MiB"): "invalid_json",
    ("deep lists", "1 MiB"): "too_deep",
    ("deep maps", "1 MiB"): "too_deep",
    ("huge exponents", "1 MiB"): "number_out_of_range",
    ("long string", "1 MiB"): "item_too_large",
    ("long number", "1 MiB"): "number_out_of_range",
    ("many fields", "1 MiB"): "item_too_large",
    ("many numbers", "1 MiB"): "item_too_large",
    ("long names", "1 MiB"): "item_too_large",
}
STORED = [(shape, size) for shape in SHAPES for size in SIZES if (shape, size) not in QUARANTINED]


@pytest.mark.parametrize(("shape", "size", "reason"), [(*case, reason) for case, reason in QUARANTINED.items()])
def test_a_hostile_body_that_cannot_be_stored_is_quarantined_with_its_reason(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch, shape: str, size: str, reason: str
) -> None:
    # Given a body of this shape filling this size (a body too large for an item, with no payload
    # bucket to take it: with one, it goes to S3, as tests/test_large_messages.py shows)
    if reason == "item_too_large":
        monkeypatch.delenv("PAYLOAD_BUCKET")
    body = SHAPES[shape](SIZES[size])

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is in the DLQ byte-identical with its stable reason, nowhere else, and nothing failed
    assert_quarantined(stack, event, response, out, body, reason)


@pytest.mark.parametrize(("shape", "size"), STORED)
def test_a_hostile_body_dynamodb_can_hold_becomes_its_item(shape: str, size: str) -> None:
    # Given a body of this shape filling this size, that breaks none of DynamoDB's rules
    body = SHAPES[shape](SIZES[size])
    message = parse_message(
        SqsRecord("m-1", "r-1", body, "arn:aws:sqs:us-east-1:1:q.fifo"), jmespath.compile("message_id")
    )

    # When its item is built
    item = build_item(message, datetime.now(UTC), None)

    # Then every field of the body is in it, within DynamoDB's size limit
    assert set(message.fields) <= set(item)
    assert item_size(item) <= MAX_ITEM_BYTES
