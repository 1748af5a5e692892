"""Rules 3 and 4: one conditional PutItem stores the body unchanged; a known key is a duplicate."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from consumer import bootstrap
from tests.conftest import Invoker, Stack, failures
from tests.faults import WireFaults

EXACT_BODY = (
    '{"message_id":"order-1","amount":19.99,"tiny":1E-5,"big":12345678901234567890123456789012345678,'
    '"pi":3.1415926535897932384626433832795028,"ok":true,"none":null,"empty":"","name":"Zoë 🚀",'
    '"payload":{"lines":[{"sku":"A-1","qty":2,"price":0.10}],"nested":{"deeper":[[1,2],[3]]}}}'
)


def test_a_new_message_is_stored_with_every_field_exactly_as_written(stack: Stack, invoke: Invoker) -> None:
    # Given a message whose numbers a float would round
    message_id = stack.send(EXACT_BODY, group="g1", dedup="dedup-1")
    event = stack.receive_event(1)

    # When the consumer handles it
    response, _ = invoke(event)

    # Then every body field is an attribute, numbers are the exact decimals that were written
    assert failures(response) == []
    item = stack.items()["order-1"]
    body = json.loads(EXACT_BODY, parse_float=Decimal, parse_int=Decimal)
    assert {name: item[name] for name in body} == body
    assert item["amount"] == Decimal("19.99")
    assert item["big"] == Decimal("12345678901234567890123456789012345678")
    assert item["pi"] == Decimal("3.1415926535897932384626433832795028")
    # And the SQS metadata is kept apart, in one map, with a hash of the body
    meta = item["_meta"]
    record = event["Records"][0]
    assert meta["sqs_message_id"] == message_id
    assert meta["message_group_id"] == "g1"
    assert meta["message_deduplication_id"] == "dedup-1"
    assert meta["sequence_number"] == record["attributes"]["SequenceNumber"]
    assert meta["sent_timestamp"] == Decimal(record["attributes"]["SentTimestamp"])
    assert meta["approximate_receive_count"] == 1
    assert meta["event_source_arn"] == stack.deployed.queue_arn
    assert meta["body_sha256"] == hashlib.sha256(EXACT_BODY.encode()).hexdigest()
    assert meta["key_source"] == "body"
    processed_at = datetime.fromisoformat(meta["processed_at"])
    assert abs(datetime.now(UTC) - processed_at) < timedelta(minutes=1)
    assert set(item) == {*body, "_meta"}
    # And the message is gone from the queue
    assert stack.messages_in_queue() == 0


def test_a_redelivered_message_is_a_duplicate_skipped_counted_and_deleted(stack: Stack, invoke: Invoker) -> None:
    # Given a message already stored, then sent again with a new deduplication id
    body = {"message_id": "order-2", "amount": 5}
    stack.send(body, group="g1")
    invoke(stack.receive_event(1))
    stack.send(body, group="g1")

    # When the copy is handled
    response, out = invoke(stack.receive_event(1))

    # Then it is not an error, it is counted as a duplicate, and removed from the queue
    assert failures(response) == []
    assert out.metrics()["DuplicateMessages"] == 1
    assert out.metrics()["MessagesSaved"] == 0
    assert out.metrics()["ConflictingDuplicates"] == 0
    assert out.metrics()["MessagesDeleted"] == 1
    assert [line["status"] for line in out.steps("message_skipped", "order-2")] == ["info"]
    assert list(stack.items()) == ["order-2"]
    assert stack.messages_in_queue() == 0


def test_a_conflicting_duplicate_keeps_the_first_write_and_is_flagged(stack: Stack, invoke: Invoker) -> None:
    # Given two messages with the same key but different bodies, in one batch and one group
    stack.send({"message_id": "order-3", "amount": 10}, group="g1")
    stack.send({"message_id": "order-3", "amount": 99}, group="g1")

    # When both are handled
    response, out = invoke(stack.receive_event(2))

    # Then the first write wins, the second is a conflicting duplicate: warned, counted, deleted
    assert failures(response) == []
    assert stack.items()["order-3"]["amount"] == 10
    assert out.metrics()["ConflictingDuplicates"] == 1
    assert out.metrics()["DuplicateMessages"] == 1
    skipped = out.steps("message_skipped", "order-3")
    assert [line["status"] for line in skipped] == ["warning"]
    assert skipped[0]["details"]["conflicting"] is True
    assert stack.messages_in_queue() == 0


def test_each_message_costs_one_put_item_and_the_table_is_described_once_per_container(
    stack: Stack, invoke: Invoker
) -> None:
    # Given ten new messages over three groups
    for index in range(10):
        stack.send({"message_id": f"order-{index}", "n": index}, group=f"g{index % 3}")
    event = stack.receive_event(10)
    dynamodb = WireFaults(bootstrap.clients().dynamodb)
    sqs = WireFaults(bootstrap.clients().sqs)

    # When they are handled
    response, _ = invoke(event)

    # Then DynamoDB saw exactly one PutItem per message (and, once per container, the table's key schema
    # was read), and SQS one lookup and one batched delete
    assert failures(response) == []
    assert dict(dynamodb.sent) == {"PutItem": 10, "DescribeTable": 1}
    assert dict(sqs.sent) == {"GetQueueUrl": 1, "DeleteMessageBatch": 1}
    assert len(stack.items()) == 10

    # When another batch arrives in the same container
    stack.send({"message_id": "order-10"}, group="g0")
    invoke(stack.receive_event(1))

    # Then it cost one PutItem and one delete: no describe, no lookup
    assert dict(dynamodb.sent) == {"PutItem": 11, "DescribeTable": 1}
    assert dict(sqs.sent) == {"GetQueueUrl": 1, "DeleteMessageBatch": 2}


def test_items_carry_a_ttl_when_record_ttl_days_is_set(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given RECORD_TTL_DAYS=7
    monkeypatch.setenv("RECORD_TTL_DAYS", "7")
    stack.send({"message_id": "order-ttl"}, group="g1")

    # When the message is stored
    invoke(stack.receive_event(1))

    # Then the item expires seven days from now (epoch seconds, the attribute the table's TTL reads)
    expires_at = int(stack.items()["order-ttl"]["expires_at"])
    expected = (datetime.now(UTC) + timedelta(days=7)).timestamp()
    assert abs(expires_at - expected) < 60


def test_an_integer_key_is_stored_as_its_decimal_string(stack: Stack, invoke: Invoker) -> None:
    # Given a producer that numbers its messages
    stack.send('{"message_id": 4200000000000000000001, "amount": 1}', group="g1")

    # When it is stored
    response, _ = invoke(stack.receive_event(1))

    # Then the key is the integer's decimal string
    assert failures(response) == []
    assert stack.items()["4200000000000000000001"]["amount"] == 1
