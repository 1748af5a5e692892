"""Property-based tests: arbitrary bodies, batches and events through the real handler on moto.

Each example builds its own moto stack (``mock_aws`` inside the test body), so no
function-scoped fixture is shared between examples and nothing leaks from one to the next.

Numbers: DynamoDB keeps 38 significant digits, from 1E-130 to under 1E+126, and boto3 sends
only what its context (Emin -128, 38 digits) holds exactly; the number properties draw up to
40 digits and down to 1E-130, and whatever cannot be held must be quarantined, never rounded.
The explicit examples at the end are the inputs that failed before commit d539144.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest import mock

import boto3
import jmespath
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from moto import mock_aws

import handler
from consumer import bootstrap, telemetry
from consumer.dynamodb_item import MAX_DEPTH, build_item, item_size
from consumer.exceptions import InvalidEventError, InvalidMessageError
from consumer.message import parse_message
from consumer.sqs_event import SqsRecord
from local.lambda_runtime import LocalContext
from local.template_resources import deploy_local
from tests.conftest import REGION, Stack

pytestmark = pytest.mark.slow  # not in `make check`; `make test` runs it

# A profile for this file: moto calls make durations vary, and CI replays the same examples.
settings.register_profile(
    "properties",
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("properties")

DYNAMODB_DIGITS = 38
MAX_TEST_DIGITS = 40
QUEUE_ARN_SHAPE = "arn:aws:sqs:us-east-1:123456789012:q.fifo"
MAX_BODY_BYTES = 250_000
KEYS = ["k0", "k1", "k2", "ключ-🚀", "7"]  # a small pool, so batches carry duplicates

# Characters SQS accepts in a body: #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
_CONTROL = "".join(chr(code) for code in range(0x20) if chr(code) not in "\t\n\r")
SQS_CHARS = st.characters(codec="utf-8", exclude_characters=_CONTROL + "\ufffe\uffff")
ASTRAL = ["🚀", "𝄞", "\U0010fffd", "👩‍👩‍👧", "\U00020000"]


# ---------------------------------------------------------------- JSON text, built by hand


@dataclass(frozen=True)
class Num:
    """A JSON number exactly as written in the body."""

    text: str


@dataclass(frozen=True)
class Raw:
    """JSON text put into the body verbatim (for escapes json.dumps would never write)."""

    text: str


def encode(value: Any, ascii_only: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Num | Raw):
        return value.text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    if isinstance(value, list):
        return "[" + ",".join(encode(inner, ascii_only) for inner in value) + "]"
    assert isinstance(value, dict)
    return (
        "{" + ",".join(f"{encode(name, ascii_only)}:{encode(inner, ascii_only)}" for name, inner in value.items()) + "}"
    )


def parse_exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


@st.composite
def number_texts(draw: st.DrawFn, max_digits: int = DYNAMODB_DIGITS, low: int = -128, high: int = 125) -> str:
    """A JSON number DynamoDB can hold: up to max_digits significant digits, 1E-130 <= |n| < 1E+126."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["0", "-0", "0.0", "0.000", "0e5", "0E-7", "-0.0e+3"]))
    count = draw(st.integers(1, max_digits))
    digits = str(draw(st.integers(1, 9))) + "".join(str(draw(st.integers(0, 9))) for _ in range(count - 1))
    digits = digits.rstrip("0") or "0"
    adjusted = draw(st.integers(low, high))
    exponent = adjusted - (len(digits) - 1)
    sign = draw(st.sampled_from(["", "-"]))
    style = draw(st.sampled_from(["str", "plain", "lower", "padded"]))
    value = Decimal(f"{sign}{digits}E{exponent}")
    if style == "plain" and -60 <= exponent <= 60:
        return f"{value:f}"
    if style == "lower":
        return str(value).lower()
    if style == "padded":  # leading zeros after the point and trailing zeros: trimmed by DynamoDB's rule
        return f"{sign}0.000{digits}000e{exponent + len(digits) + 3}"
    return str(value)


def strings() -> st.SearchStrategy[str]:
    small = st.text(SQS_CHARS, max_size=12)
    astral = st.lists(st.sampled_from(ASTRAL), min_size=1, max_size=4).map("".join)
    big = st.builds(
        lambda piece, times: piece * times, st.sampled_from(["a", "é", "ключ", "🚀", 'x"\\']), st.integers(1000, 8000)
    )
    return st.one_of(small, small, astral, big)


NAMES = st.text(SQS_CHARS, min_size=1, max_size=8)


def values(max_digits: int = DYNAMODB_DIGITS) -> st.SearchStrategy[Any]:
    leaf = st.one_of(st.none(), st.booleans(), number_texts(max_digits).map(Num), st.text(SQS_CHARS, max_size=12))
    tree = st.recursive(
        leaf,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(NAMES, children, max_size=4),
        max_leaves=12,
    )
    deep = st.builds(_nest, st.integers(1, MAX_DEPTH), leaf, st.booleans())
    wide_list = st.builds(lambda leaf_value, n: [leaf_value] * n, leaf, st.integers(50, 1500))
    wide_map = st.builds(lambda n: {f"f{index}": Num(str(index)) for index in range(n)}, st.integers(50, 300))
    return st.one_of(tree, tree, tree, deep, wide_list, wide_map, strings())


def _nest(depth: int, leaf: Any, maps: bool) -> Any:
    """depth nested containers around leaf: the outermost is a top-level field's value (depth 1)."""
    value = leaf
    for level in range(depth):
        value = {"d": value} if maps and level % 2 else [value]
    return value


TOP_NAMES = NAMES.filter(lambda name: name not in {"message_id", "_meta", "expires_at"})


@st.composite
def valid_bodies(draw: st.DrawFn, max_digits: int = DYNAMODB_DIGITS) -> str:
    """A JSON object the consumer must store (or skip as a duplicate of its key)."""
    fields: dict[str, Any] = draw(st.dictionaries(TOP_NAMES, values(max_digits), max_size=5))
    key = draw(st.sampled_from([*KEYS, None, 7, 42]))
    if key is not None:
        fields = {"message_id": Num(str(key)) if isinstance(key, int) else key, **fields}
    ascii_only = draw(st.booleans())
    body = encode(fields, ascii_only)
    while len(body.encode("utf-8")) > MAX_BODY_BYTES:  # an SQS message holds 256 KiB: drop the largest field
        largest = max(
            (name for name in fields if name != "message_id"), key=lambda name: len(encode(fields[name], True))
        )
        del fields[largest]
        body = encode(fields, ascii_only)
    return body


_LONE = st.sampled_from(["\\ud800", "\\udfff", "\\udc00x", "a\\ud83d"])


@st.composite
def invalid_bodies(draw: st.DrawFn) -> str:
    """A body that can never be stored: it must reach the DLQ unchanged."""
    kind = draw(st.integers(0, 11))
    key = draw(st.sampled_from(KEYS))
    if kind == 0:  # a valid object cut short: never JSON
        text = draw(valid_bodies())
        return text[: draw(st.integers(1, len(text) - 1))]
    if kind == 1:  # any text that is not a JSON object
        text = draw(st.text(SQS_CHARS, min_size=1, max_size=40))
        try:
            parsed = parse_exact(text)
        except (ValueError, RecursionError):
            return text
        return text if not isinstance(parsed, dict) else "[" + text + "]"
    if kind == 2:  # JSON, but not an object
        return encode(
            draw(st.one_of(st.lists(values(), max_size=3), number_texts().map(Num), st.text(SQS_CHARS))), True
        )
    if kind == 3:  # deeper than DynamoDB allows, or than the parser allows
        depth = draw(st.sampled_from([MAX_DEPTH + 1, MAX_DEPTH + 5, 3000]))
        if depth > 100:  # beyond the JSON parser's recursion limit: built as text
            return '{"message_id":"' + key + '","deep":' + "[" * depth + "1" + "]" * depth + "}"
        return encode({"message_id": key, "deep": _nest(depth, Num("1"), draw(st.booleans()))}, True)
    if kind == 4:  # a field the consumer reserves
        return encode({"message_id": key, draw(st.sampled_from(["_meta", "expires_at"])): Num("1")}, True)
    if kind == 5:  # an empty name, inside a map or at the top level
        if draw(st.booleans()):
            return encode({"message_id": key, "": Num("1")}, True)
        return encode({"message_id": key, "m": {"": Num("1")}}, True)
    if kind == 6:  # an escaped lone surrogate in a value, a name, or the key
        lone = draw(_LONE)
        where = draw(st.sampled_from(["value", "name", "nested", "key"]))
        if where == "key":
            return '{"message_id":"' + lone + '"}'
        if where == "name":
            return '{"message_id":"' + key + '","' + lone + '":1}'
        if where == "nested":
            return '{"message_id":"' + key + '","m":{"a":[1,{"' + lone + '":2}]}}'
        return '{"message_id":"' + key + '","s":["ok","' + lone + '"]}'
    if kind == 7:  # a number DynamoDB cannot hold: out of range, or over 38 significant digits
        over_38_digits = st.builds(
            lambda digits, exponent: f"{digits}e{exponent}",
            st.integers(10**38, 10**40 - 1).filter(lambda n: n % 10 != 0),
            st.integers(-150, 80),
        )
        fixed = st.sampled_from(["1e126", "-5E+200", "1e-131", "-9.9e-140", "1" + "0" * 130, "1." + "1" * 38])
        out = draw(st.one_of(fixed, over_38_digits))
        return encode({"message_id": key, "n": Num(out)}, True)
    if kind == 8:  # JavaScript constants are not JSON numbers
        return encode({"message_id": key, "n": Num(draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])))}, True)
    if kind == 9:  # one name twice in one object
        return '{"message_id":"' + key + '","a":1,"a":2}'
    if kind == 10:  # a key of the wrong type, empty, or too long
        bad = draw(st.sampled_from([Num("1.5"), Num("1E2"), True, [], {}, "", "k" * 2049]))
        return encode({"message_id": bad}, True)
    # kind 11: a whole object with something after it
    return draw(valid_bodies()) + draw(st.sampled_from(["x", ",", "}", " {}", "\n[]"]))


@dataclass(frozen=True)
class Planned:
    group: str
    body: str
    valid: bool


@st.composite
def batches(draw: st.DrawFn) -> list[Planned]:
    groups = [f"g{index}" for index in range(draw(st.integers(1, 10)))]
    count = draw(st.integers(1, 10))
    planned: list[Planned] = []
    for _ in range(count):
        valid = draw(st.integers(0, 2)) > 0
        body = draw(valid_bodies() if valid else invalid_bodies())
        planned.append(Planned(draw(st.sampled_from(groups)), body, valid))
    return planned


# ---------------------------------------------------------------- a fresh stack per example


@contextmanager
def fresh_stack() -> Iterator[Stack]:
    """The template's queue, DLQ and table on moto, and a new container pointed at them."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        deployed = deploy_local(sqs, dynamodb, stack_name=f"prop-{uuid.uuid4().hex[:8]}", region=REGION, s3=s3)
        environment = {**deployed.environment, "IDEMPOTENCY_KEY_JMESPATH": "message_id", "LOG_MESSAGE_BODY": "false"}
        with mock.patch.dict(os.environ, environment):
            bootstrap.reset()
            telemetry.metrics.clear_metrics()
            try:
                yield Stack(deployed, sqs, dynamodb, s3)
            finally:
                bootstrap.reset()
                telemetry.metrics.clear_metrics()


def same(expected: Any, actual: Any) -> bool:
    """Equal and of the same JSON type: True is not 1, and numbers compare as exact decimals."""
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(same(expected[name], actual[name]) for name in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(same(a, b) for a, b in zip(expected, actual, strict=True))
        )
    if isinstance(expected, Decimal):
        return isinstance(actual, Decimal) and expected == actual
    return type(expected) is type(actual) and expected == actual


def expected_key(body: str, record: dict[str, Any]) -> str:
    key = parse_exact(body).get("message_id")
    if key is None:
        return str(record["attributes"]["MessageDeduplicationId"])
    return key if isinstance(key, str) else str(key)


# ---------------------------------------------------------------- (a) any batch: every record ends once


def _run_batch(planned: list[Planned]) -> None:
    with fresh_stack() as stack:
        # Given the planned messages in the FIFO queue, received as one Lambda event
        sent = {stack.send(item.body, group=item.group): item for item in planned}
        event = stack.receive_event(len(planned))

        # When the handler runs
        response = handler.lambda_handler(event, LocalContext())

        # Then it returned normally, and with no fault injected, no record is reported as failed
        failed = {entry["itemIdentifier"] for entry in response["batchItemFailures"]}
        assert failed == set()
        items = stack.items()
        stored_by = {item["_meta"]["sqs_message_id"]: item for item in items.values()}
        dlq: dict[str, str] = {}
        for message in stack.dlq_messages():
            original = message["MessageAttributes"]["original_message_id"]["StringValue"]
            assert original not in dlq
            dlq[original] = message["Body"]
        records = event["Records"]
        assert {record["messageId"] for record in records} == set(sent)
        for position, record in enumerate(records):
            message_id = record["messageId"]
            item_plan = sent[message_id]
            assert record["body"] == item_plan.body
            stored = message_id in stored_by
            quarantined = message_id in dlq
            key = expected_key(item_plan.body, record) if item_plan.valid else None
            duplicate = not stored and key is not None and key in items
            # And each record is exactly one of: stored, duplicate, quarantined, failed
            assert [stored, duplicate, quarantined, message_id in failed].count(True) == 1, item_plan
            if not item_plan.valid:
                # And an invalid one is in the DLQ byte-identical
                assert quarantined, item_plan
                assert dlq[message_id] == item_plan.body
                continue
            assert key is not None
            if stored:
                # And a stored one reads back equal to its body, numbers exact
                item = stored_by[message_id]
                assert item["message_id"] == key
                body = parse_exact(item_plan.body)
                body.pop("message_id", None)
                fields = {name: value for name, value in item.items() if name not in {"message_id", "_meta"}}
                if "RECORD_TTL_DAYS" in stack.deployed.environment:
                    fields.pop("expires_at")
                assert same(body, fields), item_plan
                # And it is the first valid record of its key within its own group (order kept)
                earlier = [
                    other
                    for other in records[:position]
                    if sent[other["messageId"]].valid
                    and other["attributes"]["MessageGroupId"] == record["attributes"]["MessageGroupId"]
                    and expected_key(sent[other["messageId"]].body, other) == key
                ]
                assert earlier == []
        # And everything handled left the source queue
        assert stack.messages_in_queue() == 0


@settings(PROFILE, max_examples=30)
@given(planned=batches())
def test_any_batch_ends_every_record_exactly_once(planned: list[Planned]) -> None:
    _run_batch(planned)


# ---------------------------------------------------------------- (b) malformed events


_REQUIRED = ["messageId", "receiptHandle", "eventSourceARN"]
_NOT_STRINGS: st.SearchStrategy[Any] = st.one_of(
    st.integers(), st.none(), st.booleans(), st.lists(st.integers(), max_size=2), st.just({})
)


@st.composite
def malformed(draw: st.DrawFn) -> tuple[str, Any]:
    """A mutation that makes a real SQS event malformed, applied by break_event."""
    kind = draw(
        st.sampled_from(
            [
                "not_a_dict",
                "no_records",
                "records_not_list",
                "record_not_dict",
                "missing_field",
                "wrong_type",
                "empty",
                "source",
                "attributes",
            ]
        )
    )
    if kind == "not_a_dict":
        return kind, draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)))
    if kind == "records_not_list":
        return kind, draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.just({}), st.just({"0": {}})))
    if kind == "record_not_dict":
        return kind, draw(st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2)))
    if kind == "missing_field":
        return kind, draw(st.sampled_from([*_REQUIRED, "body", "eventSource"]))
    if kind == "wrong_type":
        return kind, (draw(st.sampled_from([*_REQUIRED, "body"])), draw(_NOT_STRINGS))
    if kind == "empty":
        return kind, draw(st.sampled_from(_REQUIRED))
    if kind == "source":
        return kind, draw(st.one_of(st.none(), st.sampled_from(["aws:s3", "aws:SQS", "aws:sqs ", ""]), st.integers()))
    # attributes or messageAttributes that are not objects ("or {}" makes a falsy messageAttributes valid)
    name = draw(st.sampled_from(["attributes", "messageAttributes"]))
    bad = draw(st.sampled_from([[1], "x", 5, True] + ([None, [], "", 0] if name == "attributes" else [])))
    return kind, (name, bad)


def break_event(event: dict[str, Any], mutation: tuple[str, Any], index: int) -> object:
    kind, argument = mutation
    records = event["Records"]
    target = records[index % len(records)]
    if kind == "not_a_dict":
        return argument
    if kind == "no_records":
        return {"detail-type": "Scheduled Event"}
    if kind == "records_not_list":
        return {"Records": argument}
    if kind == "record_not_dict":
        records[index % len(records)] = argument
    elif kind == "missing_field":
        del target[argument]
    elif kind == "wrong_type":
        target[argument[0]] = argument[1]
    elif kind == "empty":
        target[argument] = ""
    elif kind == "source":
        target["eventSource"] = argument
    else:
        target[argument[0]] = argument[1]
    return event


@pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")
@settings(PROFILE, max_examples=25)
@given(bodies=st.lists(valid_bodies(), min_size=1, max_size=4), mutation=malformed(), index=st.integers(0, 9))
def test_a_malformed_event_raises_and_writes_nothing(bodies: list[str], mutation: tuple[str, Any], index: int) -> None:
    with fresh_stack() as stack:
        # Given real messages in the queue, and their event broken in one place
        for body in bodies:
            stack.send(body, group="g1")
        event = break_event(stack.receive_event(len(bodies)), mutation, index)

        # When the handler is invoked with it
        with pytest.raises(InvalidEventError):
            handler.lambda_handler(event, LocalContext())

        # Then nothing was written, quarantined or deleted
        assert stack.items() == {}
        assert stack.dlq_messages() == []
        assert stack.messages_in_queue() == len(bodies)


# ---------------------------------------------------------------- (c) item size, by the documented rules


def documented_size(value: Any) -> tuple[int, int]:
    """(bytes by the documented rules, count of negative numbers): written apart from the consumer.

    Strings and names: UTF-8 bytes. Numbers: 1 byte per 2 significant digits, rounded up,
    plus 1; leading and trailing zeros do not count. Null and booleans: 1. Lists and maps:
    3 bytes, plus 1 per element, plus the elements (and, for maps, their names).
    """
    if isinstance(value, str):
        return len(value.encode("utf-8")), 0
    if value is None or isinstance(value, bool):
        return 1, 0
    if isinstance(value, Decimal):
        mantissa = format(value, "E").split("E")[0]  # scientific form: no grouping, digits then exponent
        significant = mantissa.lstrip("-").replace(".", "").strip("0")
        # The consumer adds 1 byte per signed number (-0 included): allowed, as an overestimate.
        return -(-max(len(significant), 1) // 2) + 1, int(value.is_signed())
    if isinstance(value, list):
        inner = [documented_size(element) for element in value]
        return 3 + sum(1 + size for size, _ in inner), sum(negative for _, negative in inner)
    assert isinstance(value, dict)
    inner = [documented_size(element) for element in value.values()]
    names = sum(len(name.encode("utf-8")) for name in value)
    return 3 + names + sum(1 + size for size, _ in inner), sum(negative for _, negative in inner)


def documented_item_size(item: dict[str, Any]) -> tuple[int, int]:
    sizes = [documented_size(value) for value in item.values()]
    names = sum(len(name.encode("utf-8")) for name in item)
    return names + sum(size for size, _ in sizes), sum(negative for _, negative in sizes)


def items(max_digits: int) -> st.SearchStrategy[dict[str, Any]]:
    number = number_texts(max_digits, low=-130, high=125).map(Decimal)
    leaf = st.one_of(st.none(), st.booleans(), number, st.text(SQS_CHARS, max_size=20), st.sampled_from(ASTRAL))
    value = st.recursive(
        leaf, lambda children: st.lists(children, max_size=5) | st.dictionaries(NAMES, children, max_size=5)
    )
    return st.dictionaries(st.text(SQS_CHARS, min_size=1, max_size=10), value, min_size=1, max_size=6)


def _numbers(value: Any) -> list[Decimal]:
    if isinstance(value, Decimal):
        return [value]
    if isinstance(value, dict):
        return [number for inner in value.values() for number in _numbers(inner)]
    if isinstance(value, list):
        return [number for inner in value for number in _numbers(inner)]
    return []


def _check_size(item: dict[str, Any]) -> None:
    # When the consumer sizes the item
    if not all(dynamodb_holds(str(number)) for number in _numbers(item)):
        # Then a number boto3 cannot send exactly makes the item unstorable, whatever its size
        with pytest.raises(InvalidMessageError, match="number_out_of_range"):
            item_size(item)
        return
    size = item_size(item)
    # Then it is the documented size, or that plus the 1 byte the consumer adds per negative number
    documented, negatives = documented_item_size(item)
    assert documented <= size <= documented + negatives, (size, documented, negatives)


@settings(PROFILE, max_examples=300)
@example(item={"n": Decimal("12345678901234567890123456789012345678")})  # was counted 15 bytes, documented 20
@example(item={"n": Decimal("1.0000000000000000000000000000000000001E-129")})  # 38 digits below boto3's Emin
@given(item=items(DYNAMODB_DIGITS))
def test_item_size_follows_dynamodbs_documented_rules(item: dict[str, Any]) -> None:
    # Given any item of strings, numbers, nulls, booleans, lists and maps
    _check_size(item)


@given(text=st.text(max_size=5).map(lambda text: text + "\ud800"))
@settings(PROFILE, max_examples=30)
def test_a_lone_surrogate_has_no_size_and_is_an_invalid_message(text: str) -> None:
    # Given a string no UTF-8 encoder takes, as a value and as a name
    for item in ({"s": text}, {text: "v"}, {"m": {"l": [text]}}):
        # When it is sized, Then the message is invalid (not a crash)
        with pytest.raises(InvalidMessageError, match="invalid_unicode"):
            item_size(item)


# ---------------------------------------------------------------- (d) numbers read back exactly


def dynamodb_holds(text: str) -> bool:
    """DynamoDB's documented limits, and boto3's exact-conversion rule, checked apart from the consumer."""
    value = Decimal(text)
    if value.is_zero():
        return True
    mantissa, exponent = format(value, "E").split("E")
    significant = mantissa.lstrip("-").replace(".", "").rstrip("0")
    if len(significant) > DYNAMODB_DIGITS or not -130 <= int(exponent) <= 125:
        return False
    # boto3's context: Emin -128, precision 38; below 1E-128 only what stays exact at 1E-165 is sent.
    return int(exponent) - (len(significant) - 1) >= -165


def _round_trip(numbers: list[str]) -> None:
    body = '{"message_id":"numbers","n":[' + ",".join(numbers) + "]}"
    with fresh_stack() as stack:
        # Given a body of numbers, sent and received
        stack.send(body, group="g1")
        # When it is handled
        response = handler.lambda_handler(stack.receive_event(1), LocalContext())
        # Then it never fails: it is stored if DynamoDB can hold every number, else quarantined unchanged
        assert response == {"batchItemFailures": []}
        stored = stack.items().get("numbers")
        if not all(dynamodb_holds(text) for text in numbers):
            assert stored is None
            assert [message["Body"] for message in stack.dlq_messages()] == [body]
            return
        assert stored is not None, numbers
        # And every number reads back exactly equal to the text's number, never rounded
        for text, value in zip(numbers, stored["n"], strict=True):
            assert isinstance(value, Decimal)
            assert value == Decimal(text), (text, value)


@settings(PROFILE, max_examples=20)
@example(numbers=["1234567890123456789012345678900000000000"])  # 30 significant digits: was rounded to 28
@example(numbers=["1234567890123456789012345678901234567891"])  # 40 digits: was stored rounded, not quarantined
@example(numbers=["9." + "9" * 37 + "E+125"])  # DynamoDB's largest number: was quarantined
@example(numbers=["0e-200", "0e200", "0." + "0" * 170])  # zeros boto3 cannot send: the record failed forever
@example(numbers=["1.2345678901234567890123456789012345678e-130"])  # boto3 underflow: the record failed forever
@given(numbers=st.lists(number_texts(MAX_TEST_DIGITS, low=-132, high=126), min_size=1, max_size=30))
def test_stored_numbers_read_back_exactly_or_the_message_is_quarantined(numbers: list[str]) -> None:
    _round_trip(numbers)


def test_an_empty_top_level_field_name_is_invalid_like_a_nested_one() -> None:
    # Given a body whose top-level object has a field named "" (DynamoDB refuses empty attribute names)
    record = SqsRecord("m-1", "r-1", '{"message_id":"k","":1}', QUEUE_ARN_SHAPE)
    message = parse_message(record, jmespath.compile("message_id"))
    # When the item is built, Then the message is invalid, as it is for a nested empty name (fixed in d539144)
    with pytest.raises(InvalidMessageError, match="invalid_attribute_name"):
        build_item(message, datetime.now(UTC), None)
