"""Rules 1 and 2: the body is exact JSON with an idempotency key, or it goes to the DLQ unchanged."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from local.lambda_runtime import sqs_event
from tests.conftest import REGION, Invoker, Output, Stack, assert_quarantined, failures, handle_one


def _standard_queue(stack: Stack, name: str) -> tuple[str, str]:
    url = str(stack.sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = str(stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    return url, arn


def _receive_standard(stack: Stack, url: str, arn: str, expected: int = 1) -> dict[str, Any]:
    answer = stack.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"]
    )
    assert len(answer["Messages"]) == expected
    return sqs_event(answer["Messages"], arn, REGION)


def _queue_depth(stack: Stack, url: str) -> int:
    counts = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"])


# ---- Parse: the body is one JSON object, numbers exact ----


def test_numbers_are_stored_as_the_exact_decimals_that_were_written(stack: Stack, invoke: Invoker) -> None:
    # Given numbers that a float would change: long fractions, exponents, integers beyond 2**53
    body = (
        '{"message_id":"n-1","price":0.1,"sum":0.30000000000000000000000000000000000001,'
        '"big":9007199254740993,"exp":1.5E+10,"neg":-2.50,"zero":0}'
    )

    # When the consumer handles it
    _, response, _ = handle_one(stack, invoke, body)

    # Then each attribute equals the decimal literal, not its float approximation
    assert failures(response) == []
    item = stack.items()["n-1"]
    assert item["price"] == Decimal("0.1")
    assert item["sum"] == Decimal("0.30000000000000000000000000000000000001")
    assert item["big"] == 9007199254740993
    assert item["exp"] == Decimal("15000000000")
    assert item["neg"] == Decimal("-2.5")
    assert item["zero"] == 0


INVALID_BODIES = [
    pytest.param("not json at all", "invalid_json", id="plain-text"),
    pytest.param('{"message_id": "a",}', "invalid_json", id="trailing-comma"),
    pytest.param('{"message_id": "a", "amount": NaN}', "invalid_json", id="nan"),
    pytest.param('{"message_id": "a", "amount": Infinity}', "invalid_json", id="infinity"),
    pytest.param('{"message_id": "a", "amount": -Infinity}', "invalid_json", id="minus-infinity"),
    pytest.param('{"message_id": "a", "amount": 1, "amount": 2}', "invalid_json", id="same-field-twice"),
    pytest.param('{"message_id": "a", "message_id": "b"}', "invalid_json", id="key-field-twice"),
    pytest.param('{"message_id": "a", "x": {"y": 1, "y": 1}}', "invalid_json", id="nested-field-twice"),
    pytest.param('[{"message_id": "a"}]', "not_an_object", id="array"),
    pytest.param('"message_id"', "not_an_object", id="string"),
    pytest.param("42", "not_an_object", id="number"),
    pytest.param("true", "not_an_object", id="true"),
    pytest.param("null", "not_an_object", id="null"),
    pytest.param("[" * 100_000, "too_deep", id="100000-open-brackets"),
    pytest.param('{"a":' * 50_000 + "1" + "}" * 50_000, "too_deep", id="50000-nested-objects"),
]


@pytest.mark.parametrize(("body", "reason"), INVALID_BODIES)
def test_a_body_that_is_not_one_json_object_goes_to_the_dlq_unchanged(
    stack: Stack, invoke: Invoker, body: str, reason: str
) -> None:
    # Given a message whose body can never be parsed into an item
    # When the consumer handles it
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined with the reason, byte-identical, deleted and not retried
    assert_quarantined(stack, event, response, out, body, reason)
    assert stack.messages_in_queue() == 0


def test_nan_is_not_a_number_and_goes_to_the_dlq(stack: Stack, invoke: Invoker) -> None:
    # Given a body with NaN next to a valid message in another group
    bad = '{"message_id": "nan-1", "amount": NaN}'
    stack.send(bad, group="g1")
    stack.send({"message_id": "ok-1", "amount": 1}, group="g2")
    event = stack.receive_event(2)

    # When the batch is handled
    response, out = invoke(event)

    # Then only the NaN message is quarantined; the other is stored; nothing is retried
    assert failures(response) == []
    assert list(stack.items()) == ["ok-1"]
    dlq = stack.dlq_messages()
    assert [message["Body"] for message in dlq] == [bad]
    assert dlq[0]["MessageAttributes"]["quarantine_reason"]["StringValue"] == "invalid_json"
    assert "NaN" in dlq[0]["MessageAttributes"]["quarantine_details"]["StringValue"]
    assert out.metrics()["InvalidMessages"] == 1
    assert out.metrics()["MessagesSaved"] == 1
    assert stack.messages_in_queue() == 0


def test_an_invalid_body_keeps_its_own_message_attributes_in_the_dlq(stack: Stack, invoke: Invoker) -> None:
    # Given an invalid body sent with a producer's message attribute
    body = "{oops"
    stack.send(body, group="g1", attributes={"tenant": {"DataType": "String", "StringValue": "acme"}})
    event = stack.receive_event(1)

    # When it is handled
    response, out = invoke(event)

    # Then the DLQ copy carries the producer's attribute next to the quarantine ones
    copy = assert_quarantined(stack, event, response, out, body, "invalid_json")
    assert copy["MessageAttributes"]["tenant"] == {"DataType": "String", "StringValue": "acme"}
    assert stack.messages_in_queue() == 0


def test_a_body_with_non_ascii_text_reaches_the_dlq_byte_identical(stack: Stack, invoke: Invoker) -> None:
    # Given an invalid body with accents, emoji and odd spacing
    body = '  {"message_id": "zoë-🚀",\n\t"note": "naïve"  '

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then the DLQ body is the same string, whitespace and all
    assert_quarantined(stack, event, response, out, body, "invalid_json")


# ---- Key: where the idempotency key comes from ----


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("a" * 2048, id="2048-ascii"),
        pytest.param("🚀" * 512, id="512-four-byte-chars"),
    ],
)
def test_a_key_of_exactly_2048_utf8_bytes_is_accepted(stack: Stack, invoke: Invoker, key: str) -> None:
    # Given a key right at DynamoDB's partition key limit, counted in UTF-8 bytes
    assert len(key.encode("utf-8")) == 2048

    # When the message is handled
    _, response, _ = handle_one(stack, invoke, json.dumps({"message_id": key, "n": 1}))

    # Then it is stored under that exact key
    assert failures(response) == []
    assert list(stack.items()) == [key]
    assert stack.dlq_messages() == []


def test_a_surrogate_pair_escape_is_one_character_and_a_valid_key(stack: Stack, invoke: Invoker) -> None:
    # Given a key written with a JSON surrogate-pair escape (a rocket)
    body = '{"message_id": "launch-\\ud83d\\ude80"}'

    # When it is handled
    _, response, _ = handle_one(stack, invoke, body)

    # Then the key is the decoded character
    assert failures(response) == []
    assert list(stack.items()) == ["launch-🚀"]


INVALID_KEYS = [
    pytest.param('{"message_id": 1.5}', id="float"),
    pytest.param('{"message_id": 1e3}', id="exponent-integer"),
    pytest.param('{"message_id": 10.0}', id="integer-with-fraction-zero"),
    pytest.param('{"message_id": true}', id="true"),
    pytest.param('{"message_id": {"id": "a"}}', id="object"),
    pytest.param('{"message_id": ["a"]}', id="array"),
    pytest.param('{"message_id": ""}', id="empty-string"),
    pytest.param(json.dumps({"message_id": "a" * 2049}), id="2049-ascii-bytes"),
    pytest.param(json.dumps({"message_id": "é" * 1024 + "a"}, ensure_ascii=False), id="2049-bytes-multibyte"),
    pytest.param('{"message_id": "\\ud800"}', id="lone-high-surrogate"),
]


@pytest.mark.parametrize("body", INVALID_KEYS)
def test_a_key_that_is_not_a_usable_string_or_integer_goes_to_the_dlq(stack: Stack, invoke: Invoker, body: str) -> None:
    # Given a message whose key is of the wrong type, empty, too long or not valid Unicode
    # When the consumer handles it
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined as invalid_key, unchanged, and not retried
    assert_quarantined(stack, event, response, out, body, "invalid_key")
    assert stack.messages_in_queue() == 0


def _key_sources(out: Output, keys: list[str]) -> dict[str, list[tuple[str, str]]]:
    """The message_parse log lines of each key: (status, details.key_source)."""
    return {
        key: [(line["status"], line["details"]["key_source"]) for line in out.steps("message_parse", key)]
        for key in keys
    }


def test_a_fifo_message_without_a_key_falls_back_to_its_deduplication_id(stack: Stack, invoke: Invoker) -> None:
    # Given FIFO messages whose key is missing, null, or present, each with a deduplication id
    stack.send('{"amount": 1}', group="g1", dedup="dedup-missing")
    stack.send('{"message_id": null, "amount": 2}', group="g2", dedup="dedup-null")
    stack.send('{"message_id": "own-key", "amount": 3}', group="g3", dedup="dedup-ignored")
    event = stack.receive_event(3)

    # When they are handled
    response, out = invoke(event)

    # Then a missing or null key falls back to the deduplication id; a body key wins over it
    assert failures(response) == []
    items = stack.items()
    assert sorted(items) == ["dedup-missing", "dedup-null", "own-key"]
    assert (items["dedup-missing"]["amount"], items["dedup-null"]["amount"], items["own-key"]["amount"]) == (1, 2, 3)
    # And both the item and the message_parse log line say where the key came from
    sources = {key: item["_meta"]["key_source"] for key, item in items.items()}
    assert sources == {
        "dedup-missing": "MessageDeduplicationId",
        "dedup-null": "MessageDeduplicationId",
        "own-key": "body",
    }
    assert _key_sources(out, sorted(items)) == {
        "dedup-missing": [("success", "MessageDeduplicationId")],
        "dedup-null": [("success", "MessageDeduplicationId")],
        "own-key": [("success", "body")],
    }
    assert stack.messages_in_queue() == 0


def test_a_fifo_redelivery_without_a_key_is_a_duplicate_of_the_same_deduplication_id(
    stack: Stack, invoke: Invoker
) -> None:
    # Given a keyless message stored under its deduplication id, then sent again later with the same id
    stack.send('{"amount": 7}', group="g1", dedup="dedup-88")
    invoke(stack.receive_event(1))
    stack.sqs.purge_queue(QueueUrl=stack.deployed.queue_url)
    stack.send('{"amount": 7}', group="g1", dedup="dedup-88")
    event = stack.receive_event(1)

    # When the copy is handled
    response, out = invoke(event)

    # Then it is a duplicate, not a second item
    assert failures(response) == []
    assert out.metrics()["DuplicateMessages"] == 1
    assert list(stack.items()) == ["dedup-88"]


def test_a_standard_queue_message_without_a_key_falls_back_to_its_message_id(stack: Stack, invoke: Invoker) -> None:
    # Given a standard queue (no deduplication id) and messages whose key is missing or null
    url, arn = _standard_queue(stack, "plain-orders")
    stack.sqs.send_message(QueueUrl=url, MessageBody='{"amount": 3}')
    stack.sqs.send_message(QueueUrl=url, MessageBody='{"message_id": null, "amount": 4}')
    event = _receive_standard(stack, url, arn, expected=2)
    ids = {json.loads(record["body"])["amount"]: record["messageId"] for record in event["Records"]}
    assert all("MessageDeduplicationId" not in record["attributes"] for record in event["Records"])

    # When they are handled
    response, out = invoke(event)

    # Then each is stored under its SQS messageId, and the item and the log say so
    assert failures(response) == []
    items = stack.items()
    assert sorted(items) == sorted(ids.values())
    assert items[ids[3]]["amount"] == 3
    assert items[ids[4]]["amount"] == 4
    assert {item["_meta"]["key_source"] for item in items.values()} == {"messageId"}
    assert _key_sources(out, sorted(items)) == {key: [("success", "messageId")] for key in items}
    assert _queue_depth(stack, url) == 0


def test_an_invalid_message_from_a_standard_queue_is_quarantined_and_deleted_there(
    stack: Stack, invoke: Invoker
) -> None:
    # Given a standard queue whose message is not JSON (the DLQ comes from DLQ_URL)
    url, arn = _standard_queue(stack, "plain-invalid")
    body = "<xml>not json</xml>"
    stack.sqs.send_message(QueueUrl=url, MessageBody=body)
    event = _receive_standard(stack, url, arn)

    # When it is handled
    response, out = invoke(event)

    # Then it is in the DLQ with the standard queue as its source, and gone from that queue
    assert_quarantined(stack, event, response, out, body, "invalid_json")
    assert _queue_depth(stack, url) == 0


def test_a_nested_key_path_takes_the_key_from_inside_the_body(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given IDEMPOTENCY_KEY_JMESPATH points inside the payload
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", "payload.transaction.id")
    stack.send('{"payload": {"transaction": {"id": "tx-1"}}, "amount": 3}', group="g1")
    stack.send('{"payload": {"transaction": {"id": 42}}, "amount": 4}', group="g1")
    stack.send('{"message_id": "tx-3", "payload": {"transaction": {"id": "tx-3"}}}', group="g1")
    stack.send('{"payload": {"other": 1}}', group="g1", dedup="dedup-nested")

    # When they are handled
    response, out = invoke(stack.receive_event(4))

    # Then each is stored under the nested value (an integer as its decimal string), the payload unchanged,
    # and a body without the path falls back to its deduplication id
    assert failures(response) == []
    items = stack.items()
    assert sorted(items) == ["42", "dedup-nested", "tx-1", "tx-3"]
    assert items["dedup-nested"]["_meta"]["key_source"] == "MessageDeduplicationId"
    assert items["tx-1"]["payload"] == {"transaction": {"id": "tx-1"}}
    assert items["42"]["payload"] == {"transaction": {"id": 42}}
    assert items["tx-1"]["_meta"]["key_source"] == "body"
    assert out.steps("message_parse", "tx-1")[0]["details"]["key_source"] == "body"
    assert stack.dlq_messages() == []


def test_a_body_message_id_that_differs_from_a_nested_key_is_reserved(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a nested key path and a body whose own message_id is something else
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", "payload.transaction.id")
    body = '{"message_id": "other", "payload": {"transaction": {"id": "tx-9"}}}'

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then storing it would overwrite the body's field with the key: it is quarantined instead
    assert_quarantined(stack, event, response, out, body, "reserved_attribute")


def test_a_nested_key_of_the_wrong_kind_is_invalid(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a nested key path whose value is a float, not a usable key
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", "payload.transaction.id")
    body = '{"payload": {"transaction": {"id": 1.5}}}'

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined as invalid_key
    assert_quarantined(stack, event, response, out, body, "invalid_key")
