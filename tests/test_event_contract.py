"""Rule 10 and the sample events: what the handler returns, and what it refuses."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from consumer import bootstrap
from consumer.exceptions import InvalidEventError
from tests.conftest import EVENTS_DIR, Invoker, Stack, failures, load_event
from tests.faults import refuse

NOT_SQS_EVENTS = {
    "none": (None, "got NoneType"),
    "no records": ({"detail-type": "Scheduled Event"}, "'Records' is missing"),
    "s3 event": ({"Records": [{"eventSource": "aws:s3", "s3": {}}]}, "expected 'aws:sqs'"),
    "record without body": (
        {"Records": [{"eventSource": "aws:sqs", "messageId": "m", "receiptHandle": "r", "eventSourceARN": "a"}]},
        "Records[0].body is missing",
    ),
}


@pytest.mark.parametrize(("event", "says"), NOT_SQS_EVENTS.values(), ids=NOT_SQS_EVENTS.keys())
def test_an_event_that_is_not_an_sqs_event_raises_and_touches_nothing(
    stack: Stack, invoke: Invoker, event: object, says: str
) -> None:
    # Given a valid message in the queue, and an event that is not from SQS
    stack.send({"message_id": "untouched"}, group="g1")

    # When the handler is invoked with it
    error, out = invoke.raising(event)

    # Then it raises an error that says what is wrong, and nothing is written or deleted
    assert isinstance(error, InvalidEventError)
    assert says in str(error)
    assert stack.items() == {}
    assert stack.messages_in_queue() == 1
    # And the log says so in the usual shape
    [line] = out.steps("event_parse")
    assert (line["status"], line["level"]) == ("error", "ERROR")
    assert says in line["details"]["error"]


def test_one_bad_record_makes_the_whole_event_invalid_before_anything_is_written(stack: Stack, invoke: Invoker) -> None:
    # Given a sample event whose last record lost its receipt handle
    event = load_event("fifo-several-groups.json")
    del event["Records"][-1]["receiptHandle"]

    # When the handler is invoked
    error, _ = invoke.raising(event)

    # Then nothing of the event was processed
    assert "Records[4].receiptHandle" in str(error)
    assert stack.items() == {}


def test_an_empty_batch_has_no_failures(stack: Stack, invoke: Invoker) -> None:
    # Given an SQS event with no records / When it is handled / Then nothing failed
    response, out = invoke({"Records": []})
    assert response == {"batchItemFailures": []}
    assert out.metrics()["BatchItemFailures"] == 0


def test_when_every_record_fails_the_full_list_is_returned_not_an_exception(stack: Stack, invoke: Invoker) -> None:
    # Given DynamoDB refuses every write
    for group in "ABC":
        stack.send({"message_id": group}, group=group)
    event = stack.receive_event(3)
    refuse(bootstrap.clients().dynamodb, "PutItem", "ProvisionedThroughputExceededException")

    # When the batch is handled
    response, out = invoke(event)

    # Then every record is listed for a retry
    assert sorted(failures(response)) == sorted(record["messageId"] for record in event["Records"])
    assert out.metrics()["BatchItemFailures"] == 3
    assert out.metrics()["DynamoDBSaveError"] == 3


def _bodies(event: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(record["body"]) for record in event["Records"]]


def test_sample_event_with_several_groups_stores_every_order(stack: Stack, invoke: Invoker) -> None:
    # Given the sample event (also used with `sam local invoke`)
    event = load_event("fifo-several-groups.json")

    # When the handler runs on it
    response, out = invoke(event)

    # Then all five orders are stored, amounts exact as written
    assert failures(response) == []
    items = stack.items()
    assert sorted(items) == sorted(body["message_id"] for body in _bodies(event))
    amounts = sorted(str(item["payload"]["transaction"]["amount"]) for item in items.values())
    assert amounts == ["0.01", "19.99", "250.00", "250.00", "5.10"]
    assert out.metrics()["MessagesSaved"] == 5


def test_sample_event_with_a_duplicate_stores_it_once(stack: Stack, invoke: Invoker) -> None:
    # Given the duplicate sample: one order sent twice with two deduplication ids
    event = load_event("fifo-duplicate.json")

    # When the handler runs on it
    response, out = invoke(event)

    # Then it is stored once, and the second is an ordinary duplicate
    assert failures(response) == []
    assert len(stack.items()) == 1
    assert out.metrics()["DuplicateMessages"] == 1
    assert out.metrics()["ConflictingDuplicates"] == 0


def test_sample_event_with_invalid_bodies_quarantines_them(stack: Stack, invoke: Invoker) -> None:
    # Given the invalid-body sample: one order, one truncated body, one array
    event = load_event("fifo-invalid-body.json")

    # When the handler runs on it
    response, _ = invoke(event)

    # Then the order is stored and the two others are in the DLQ, unchanged, with their reasons
    assert failures(response) == []
    assert len(stack.items()) == 1
    quarantined = {
        message["Body"]: message["MessageAttributes"]["quarantine_reason"]["StringValue"]
        for message in stack.dlq_messages()
    }
    assert quarantined == {event["Records"][1]["body"]: "invalid_json", event["Records"][2]["body"]: "not_an_object"}


def test_sample_standard_queue_event_keys_a_body_without_id_by_its_sqs_message_id(
    stack: Stack, invoke: Invoker
) -> None:
    # Given the standard-queue sample, whose third body has no message_id, and that queue
    stack.sqs.create_queue(QueueName="sqs-fifo-consumer-standard")
    event = load_event("standard-queue.json")

    # When the handler runs on it
    response, out = invoke(event)

    # Then all three are stored; the third under its SQS messageId, and the log says so
    assert failures(response) == []
    third = event["Records"][2]["messageId"]
    assert third in stack.items()
    assert stack.items()[third]["_meta"]["key_source"] == "messageId"
    assert out.steps("message_parse", third)[0]["details"]["key_source"] == "messageId"


def test_sample_events_are_lambda_sqs_events() -> None:
    # Given every sample event / Then each record has the fields Lambda's SQS event has
    names = sorted(path.name for path in EVENTS_DIR.glob("*.json"))
    assert names == ["fifo-duplicate.json", "fifo-invalid-body.json", "fifo-several-groups.json", "standard-queue.json"]
    for name in names:
        for record in load_event(name)["Records"]:
            expected = {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody"}
            assert expected | {"eventSource", "eventSourceARN", "awsRegion"} <= set(record)
            assert record["eventSource"] == "aws:sqs"
            fifo = record["eventSourceARN"].endswith(".fifo")
            assert ("MessageGroupId" in record["attributes"]) == fifo
            assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
