"""Rule 3: DynamoDB's limits are checked before the write, because emulators do not enforce them.

Sizes follow https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jmespath
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

from consumer import bootstrap
from consumer.dynamodb_item import MAX_ITEM_BYTES, build_item, item_size
from consumer.message import parse_message
from consumer.sqs_event import SqsRecord, parse_event
from tests.conftest import Invoker, Stack, assert_quarantined, failures, handle_one


def _nested_maps(levels: int) -> Any:
    """``levels`` maps, one inside the other: {"a": {"a": ... {"a": 1}}}."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


def _nested_lists(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


# ---- item_size against DynamoDB's documented rules, computed by hand ----

ONE = Decimal(1)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        # string: UTF-8 bytes of the name + UTF-8 bytes of the value
        pytest.param({"name": "abc"}, 4 + 3, id="ascii-string"),  # "name"=4, "abc"=3
        pytest.param({"name": "Zoë"}, 4 + 4, id="accented-string"),  # "Zoë" = Z,o (1 each) + ë (2) = 4
        pytest.param({"ключ": "значение"}, 8 + 16, id="cyrillic-name-and-value"),  # 2 bytes per letter
        pytest.param({"r": "🚀"}, 1 + 4, id="emoji"),  # one 4-byte character
        pytest.param({"e": ""}, 1 + 0, id="empty-string"),
        # number: name + 1 byte per two significant digits (rounded up) + 1 byte
        pytest.param({"n": Decimal("7")}, 1 + 1 + 1, id="one-digit"),  # ceil(1/2)=1
        pytest.param({"n": Decimal("123")}, 1 + 2 + 1, id="three-digits"),  # ceil(3/2)=2
        pytest.param({"n": Decimal("1234")}, 1 + 2 + 1, id="four-digits"),  # ceil(4/2)=2
        pytest.param({"n": Decimal("12345")}, 1 + 3 + 1, id="five-digits"),  # ceil(5/2)=3
        pytest.param({"n": Decimal("1000")}, 1 + 1 + 1, id="trailing-zeros-trimmed"),  # significant: "1"
        pytest.param({"n": Decimal("0.00012")}, 1 + 1 + 1, id="leading-zeros-trimmed"),  # significant: "12"
        pytest.param({"n": Decimal("123.4500")}, 1 + 3 + 1, id="fraction-trailing-zeros"),  # "12345": ceil(5/2)=3
        pytest.param(
            {"n": Decimal("12345678901234567890123456789012345678")},
            1 + 19 + 1,  # ceil(38/2)=19
            id="38-digits",
        ),
        pytest.param({"n": Decimal("1234567890123456789012345678")}, 1 + 14 + 1, id="28-digits"),  # ceil(28/2)=14
        pytest.param({"n": 1700000000}, 1 + 1 + 1, id="python-int"),  # significant: "17" -> 1
        # negative numbers: this implementation adds 1 byte for the sign
        pytest.param({"n": Decimal("-123.45")}, 1 + 3 + 1 + 1, id="negative"),  # "12345" -> 3, sign 1
        # null and boolean: name + 1 byte
        pytest.param({"ok": True}, 2 + 1, id="true"),
        pytest.param({"ok": False}, 2 + 1, id="false"),
        pytest.param({"none": None}, 4 + 1, id="null"),
        # list and map: name + 3 bytes + the elements + 1 byte per element
        pytest.param({"l": []}, 1 + 3, id="empty-list"),
        pytest.param({"m": {}}, 1 + 3, id="empty-map"),
        # "l" + 3 + ("ab"=2, +1) + (number 1 = 1+1, +1)
        pytest.param({"l": ["ab", ONE]}, 1 + 3 + (2 + 1) + (2 + 1), id="list-of-string-and-number"),
        # "m" + 3 + (name "k"=1 + value "v"=1, +1)
        pytest.param({"m": {"k": "v"}}, 1 + 3 + (1 + 1 + 1), id="map-of-one-string"),
        # "m" + 3 + element "l": (1 + name 1 + list: 3 + (null 1, +1) + (map: 3 + ("x"=1 + true 1, +1), +1))
        pytest.param(
            {"m": {"l": [None, {"x": True}]}},
            1 + 3 + (1 + 1 + (3 + (1 + 1) + ((3 + (1 + 1 + 1)) + 1))),
            id="nested-map-list-map",
        ),
        # several attributes add up: ("a" + "b") + ("c" + number 1 = 1+1) + ("d" + null 1)
        pytest.param({"a": "b", "c": ONE, "d": None}, (1 + 1) + (1 + 2) + (1 + 1), id="several-attributes"),
    ],
)
def test_item_size_counts_bytes_the_way_dynamodb_documents_them(item: dict[str, Any], expected: int) -> None:
    # Given an item whose size was computed by hand from DynamoDB's rules
    # When the consumer sizes it
    # Then the two agree
    assert item_size(item) == expected


def test_the_metadata_map_counts_towards_the_item_size() -> None:
    # Given a message whose body is tiny
    record = SqsRecord(
        message_id="m-1",
        receipt_handle="rh",
        body='{"message_id":"k"}',
        event_source_arn="arn:aws:sqs:us-east-1:123456789012:q.fifo",
        attributes={"ApproximateReceiveCount": "1"},
    )
    message = parse_message(record, jmespath.compile("message_id"))

    # When its item is built
    item = build_item(message, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), None)

    # Then the size is the key plus the whole _meta map, by the same rules
    meta = item["_meta"]
    assert set(item) == {"message_id", "_meta"}
    entries = (
        (1 + 14 + 3)  # "sqs_message_id" + "m-1"
        + (1 + 16 + 41)  # "event_source_arn" + the ARN
        + (1 + 10 + 4)  # "key_source" + "body"
        + (1 + 11 + 64)  # "body_sha256" + 64 hex characters
        + (1 + 12 + 29)  # "processed_at" + "2026-01-02T03:04:05.000+00:00"
        + (1 + 25 + 2)  # "approximate_receive_count" + the number 1 (ceil(1/2) + 1)
    )
    assert len(meta["event_source_arn"]) == 41
    assert len(meta["processed_at"]) == 29
    assert item_size(item) == (10 + 1) + (5 + 3 + entries)  # "message_id"+"k", "_meta" + map overhead + entries


# ---- The 400 KB limit, end to end ----


def _item_bytes(record: SqsRecord) -> int:
    message = parse_message(record, jmespath.compile("message_id"))
    return item_size(build_item(message, datetime.now(UTC), None))


def _padded(key: str, padding: int) -> str:
    return json.dumps({"message_id": key, "pad": "x" * padding}, separators=(",", ":"))


def _event_of_item_size(stack: Stack, key: str, target: int) -> tuple[dict[str, Any], str]:
    """A received message whose item would be exactly ``target`` bytes.

    The item grows by one byte per padding character (the body's hash has a fixed length), so
    its size is the size with no padding, for the record as received, plus the padding. What is
    received (its SentTimestamp, whose trailing zeros DynamoDB trims) is only known after the
    receive: the event then carries the body padded to size, as SQS would have delivered it.
    """
    stack.send(_padded(key, target - 437), group="big", dedup=key)
    event = stack.receive_event(1)
    (record,) = parse_event(event)
    padding = target - _item_bytes(replace(record, body=_padded(key, 0)))
    body = _padded(key, padding)
    event["Records"][0]["body"] = body
    return event, body


class _DynamoDBAcceptingPutItem:
    """PutItem answered as real DynamoDB answers an item of up to 400 KiB; every other call reaches moto.

    moto refuses items over 405,000 bytes by its own count, below DynamoDB's 409,600.
    """

    def __init__(self, client: Any) -> None:
        self.items: list[dict[str, Any]] = []
        client.meta.events.unregister("before-send", botocore_stubber)
        client.meta.events.register("before-send", self._dispatch)

    def _dispatch(self, event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
        if not event_name.endswith(".PutItem"):
            return botocore_stubber(event_name=event_name, request=request, **kwargs)
        deserializer = TypeDeserializer()
        sent = json.loads(request.body)["Item"]
        self.items.append({name: deserializer.deserialize(value) for name, value in sent.items()})
        headers = HTTPHeaders.from_dict({"Content-Type": "application/x-amz-json-1.0"})
        return AWSResponse(request.url, 200, headers, MockRawResponse(b"{}"))


def test_an_item_of_exactly_400_kib_is_written(stack: Stack, invoke: Invoker) -> None:
    # Given a message whose item, _meta included, is exactly 409,600 bytes
    event, body = _event_of_item_size(stack, "big-1", MAX_ITEM_BYTES)
    assert MAX_ITEM_BYTES == 409_600
    dynamodb = _DynamoDBAcceptingPutItem(bootstrap.clients().dynamodb)

    # When it is handled
    response, out = invoke(event)

    # Then the whole item is written, not quarantined
    assert failures(response) == []
    (item,) = dynamodb.items
    assert item["message_id"] == "big-1"
    assert item["pad"] == json.loads(body)["pad"]
    assert item_size(item) == 409_600
    assert out.metrics()["MessagesSaved"] == 1
    assert out.metrics()["InvalidMessages"] == 0
    assert stack.dlq_messages() == []
    assert stack.messages_in_queue() == 0


def test_without_a_payload_bucket_an_item_one_byte_over_400_kib_goes_to_the_dlq_naming_the_setting(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function without PAYLOAD_BUCKET, and a message whose item would be 409,601 bytes
    monkeypatch.delenv("PAYLOAD_BUCKET")
    event, body = _event_of_item_size(stack, "big-2", MAX_ITEM_BYTES + 1)

    # When it is handled
    response, out = invoke(event)

    # Then it is quarantined as item_too_large, its body unchanged, with the size and the setting that would store it
    assert_quarantined(stack, event, response, out, body, "item_too_large")
    details = out.steps("message_parse", event["Records"][0]["messageId"])[0]["details"]
    assert "409601" in details["error"]
    assert "PAYLOAD_BUCKET" in details["error"]


def test_without_a_payload_bucket_a_body_far_over_the_item_limit_goes_to_the_dlq(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a function without PAYLOAD_BUCKET, and a 600 KB body (SQS allows up to 1 MiB)
    monkeypatch.delenv("PAYLOAD_BUCKET")
    body = _padded("huge-1", 600_000)

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined, not retried, and nothing was written to S3
    assert_quarantined(stack, event, response, out, body, "item_too_large")
    assert stack.s3.list_objects_v2(Bucket=stack.deployed.payload_bucket).get("KeyCount") == 0


# ---- Nesting depth ----


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_nested_maps(32), id="32-maps"),
        pytest.param(_nested_lists(32), id="32-lists"),
    ],
)
def test_an_attribute_nested_32_levels_deep_is_stored(stack: Stack, invoke: Invoker, value: Any) -> None:
    # Given an attribute whose value nests 32 maps or lists, DynamoDB's limit
    body = json.dumps({"message_id": "deep-32", "v": value})

    # When it is handled
    _, response, _ = handle_one(stack, invoke, body)

    # Then it is stored and reads back the same
    assert failures(response) == []
    assert stack.items()["deep-32"]["v"] == value


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(_nested_maps(33), id="33-maps"),
        pytest.param(_nested_lists(33), id="33-lists"),
        pytest.param({"l": [_nested_maps(31)]}, id="map-list-31-maps"),
    ],
)
def test_an_attribute_nested_33_levels_deep_goes_to_the_dlq(stack: Stack, invoke: Invoker, value: Any) -> None:
    # Given an attribute nested one level deeper than DynamoDB allows
    body = json.dumps({"message_id": "deep-33", "v": value})

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined as too_deep
    assert_quarantined(stack, event, response, out, body, "too_deep")


# ---- Numbers: 38 significant digits, 1E-130 <= |n| < 1E+126 ----

LARGEST = "9.9999999999999999999999999999999999999E+125"


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(LARGEST, id="largest"),
        pytest.param("-" + LARGEST, id="most-negative"),
        pytest.param("1E-130", id="smallest-positive"),
        pytest.param("-1E-130", id="smallest-negative"),
        pytest.param("12345678901234567890123456789012345678", id="38-digit-integer"),
        pytest.param("0.12345678901234567890123456789012345678", id="38-digit-fraction"),
    ],
)
def test_a_number_within_dynamodb_range_is_stored_exactly(stack: Stack, invoke: Invoker, number: str) -> None:
    # Given a number at the edge of DynamoDB's range or precision
    body = f'{{"message_id": "num", "n": {number}}}'

    # When it is handled
    _, response, _ = handle_one(stack, invoke, body)

    # Then it reads back equal to what was written
    assert failures(response) == []
    assert stack.items()["num"]["n"] == Decimal(number)


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("1." + "0" * 45, id="one-with-45-zeros"),
        pytest.param("12345678901234567890123456789012345678" + "0" * 10, id="38-digits-then-10-zeros"),
        pytest.param(
            "-1.2345678901234567890123456789012345678" + "0" * 7,
            id="negative-fraction-trailing-zeros",
        ),
        pytest.param("1." + "0" * 37 + "E-130", id="trailing-zeros-at-the-bottom-of-the-range"),
    ],
)
def test_trailing_zeros_beyond_38_digits_are_not_significant_and_are_stored(
    stack: Stack, invoke: Invoker, number: str
) -> None:
    # Given a number with at most 38 significant digits but more digits written
    body = f'{{"message_id": "zeros", "n": {number}, "in_list": [{number}]}}'

    # When it is handled
    _, response, _ = handle_one(stack, invoke, body)

    # Then it is stored and reads back equal
    assert failures(response) == []
    item = stack.items()["zeros"]
    assert item["n"] == Decimal(number)
    assert item["in_list"] == [Decimal(number)]


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("123456789012345678901234567890123456789", id="39-digit-integer"),
        pytest.param("1.23456789012345678901234567890123456789", id="39-digit-fraction"),
        pytest.param("1E+126", id="too-large"),
        pytest.param("-1E+126", id="too-negative"),
        pytest.param("1E-131", id="too-small"),
        pytest.param("1E-1000000", id="tiny-exponent"),
        pytest.param(
            "1E+1000000",
            id="huge-exponent",
        ),
    ],
)
def test_a_number_dynamodb_cannot_hold_goes_to_the_dlq(stack: Stack, invoke: Invoker, number: str) -> None:
    # Given a number outside DynamoDB's precision or range, deep inside the body
    body = f'{{"message_id": "num", "payload": {{"lines": [{{"n": {number}}}]}}}}'

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined as number_out_of_range, unchanged
    assert_quarantined(stack, event, response, out, body, "number_out_of_range")


@pytest.mark.parametrize("number", [pytest.param("0E-200", id="0E-200"), pytest.param("0e+200", id="0e+200")])
def test_a_zero_written_with_a_large_exponent_is_stored_as_zero(stack: Stack, invoke: Invoker, number: str) -> None:
    # Given a valid JSON zero written with a large exponent
    body = f'{{"message_id": "zero", "n": {number}}}'

    # When it is handled
    _, response, _ = handle_one(stack, invoke, body)

    # Then it is stored as zero, like "0" or "0.000"
    assert failures(response) == []
    assert stack.items()["zero"]["n"] == 0


def test_a_38_digit_number_near_the_smallest_is_never_retried_forever(stack: Stack, invoke: Invoker) -> None:
    # Given a number inside DynamoDB's documented range with 38 significant digits
    number = "1.2345678901234567890123456789012345678E-130"
    body = f'{{"message_id": "tiny", "n": {number}}}'

    # When it is handled
    _, response, _ = handle_one(stack, invoke, body)

    # Then it is settled now, not failed on every delivery: boto3 cannot send it exactly, so it is quarantined
    assert failures(response) == []
    assert stack.items() == {}
    dlq = stack.dlq_messages()
    assert [m["MessageAttributes"]["quarantine_reason"]["StringValue"] for m in dlq] == ["number_out_of_range"]


# ---- Attribute names ----


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"message_id": "names", "x": {"": 1}}', id="in-a-map"),
        pytest.param('{"message_id": "names", "x": [{"ok": {"": null}}]}', id="deep-in-a-list"),
        pytest.param(
            '{"message_id": "names", "": 1}',
            id="top-level",
        ),
    ],
)
def test_an_empty_field_name_goes_to_the_dlq(stack: Stack, invoke: Invoker, body: str) -> None:
    # Given a body with an empty field name nested inside it
    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined as invalid_attribute_name
    assert_quarantined(stack, event, response, out, body, "invalid_attribute_name")


def test_a_field_name_over_64_kb_goes_to_the_dlq(stack: Stack, invoke: Invoker) -> None:
    # Given a nested field name one byte over DynamoDB's 65,535-byte limit for attribute names
    body = '{"message_id": "long-name", "x": {"' + "n" * 65536 + '": 1}}'

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined, not failed on every delivery by a ValidationException
    assert_quarantined(stack, event, response, out, body, "invalid_attribute_name")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('{"message_id": "r", "_meta": {"mine": 1}}', id="_meta"),
        pytest.param('{"message_id": "r", "expires_at": 1700000000}', id="expires_at"),
    ],
)
def test_a_body_field_the_consumer_reserves_goes_to_the_dlq(stack: Stack, invoke: Invoker, body: str) -> None:
    # Given a body with a field the consumer writes itself
    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined as reserved_attribute instead of being overwritten
    assert_quarantined(stack, event, response, out, body, "reserved_attribute")


def test_a_lone_surrogate_in_a_value_goes_to_the_dlq(stack: Stack, invoke: Invoker) -> None:
    # Given a body whose string value is a lone surrogate escape, not valid UTF-8 once decoded
    body = '{"message_id": "u", "note": "\\udc00"}'

    # When it is handled
    event, response, out = handle_one(stack, invoke, body)

    # Then it is quarantined (DynamoDB strings are UTF-8)
    assert_quarantined(stack, event, response, out, body, "invalid_unicode")
