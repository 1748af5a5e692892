"""A ``Message`` becomes the DynamoDB item, checked against DynamoDB's own limits.

Emulators accept items that real DynamoDB refuses, and a refusal in production
would fail the record on every delivery. So the limits are checked here and a
message that breaks one is invalid (it goes to the dead-letter queue).
Rules: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, DecimalException
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT

from consumer.exceptions import InvalidMessageError
from consumer.message import Message

KEY_ATTRIBUTE = "message_id"
METADATA_ATTRIBUTE = "_meta"
TTL_ATTRIBUTE = "expires_at"

MAX_ITEM_BYTES = 400 * 1024
MAX_DEPTH = 32
MAX_SIGNIFICANT_DIGITS = 38
MAX_NAME_BYTES = 65535
# DynamoDB numbers: 1E-130 <= |n| < 1E+126, i.e. the adjusted exponent stays in this range.
MIN_ADJUSTED_EXPONENT = -130
MAX_ADJUSTED_EXPONENT = 125


def build_item(
    message: Message, processed_at: datetime, ttl_days: int | None, key_attribute: str = KEY_ATTRIBUTE
) -> dict[str, Any]:
    """The body's top-level fields unchanged, plus the key, the metadata map and the TTL."""
    _check_reserved_fields(message, key_attribute)
    _check_names(message.fields, "the body")
    # A body field named like the key attribute holds the key itself (checked above): it is stored
    # as the key's string, so a long integer there is not a number DynamoDB must hold.
    item: dict[str, Any] = {
        name: _checked(value, name, depth=1) for name, value in message.fields.items() if name != key_attribute
    }
    item[key_attribute] = message.key
    item[METADATA_ATTRIBUTE] = _metadata(message, processed_at)
    if ttl_days is not None:
        item[TTL_ATTRIBUTE] = int((processed_at + timedelta(days=ttl_days)).timestamp())
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise InvalidMessageError(
            "item_too_large", f"the item would be {size} bytes; DynamoDB's limit is {MAX_ITEM_BYTES}"
        )
    return item


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes as DynamoDB counts them: names and values, 3 bytes per list or map, 1 per element."""
    return sum(_name_size(name) + _value_size(value) for name, value in item.items())


def _metadata(message: Message, processed_at: datetime) -> dict[str, Any]:
    record = message.record
    attributes = record.attributes
    metadata: dict[str, Any] = {
        "sqs_message_id": record.message_id,
        "event_source_arn": record.event_source_arn,
        "key_source": message.key_source,
        "body_sha256": message.body_sha256,
        "processed_at": processed_at.isoformat(timespec="milliseconds"),
        "approximate_receive_count": record.receive_count,
    }
    optional = {
        "message_group_id": attributes.get("MessageGroupId"),
        "message_deduplication_id": attributes.get("MessageDeduplicationId"),
        "sequence_number": attributes.get("SequenceNumber"),
    }
    metadata.update({name: value for name, value in optional.items() if value})
    sent = attributes.get("SentTimestamp", "")
    if sent.isdigit():
        metadata["sent_timestamp"] = int(sent)
    return metadata


def _check_reserved_fields(message: Message, key_attribute: str) -> None:
    for name in (METADATA_ATTRIBUTE, TTL_ATTRIBUTE):
        if name in message.fields:
            raise InvalidMessageError(
                "reserved_attribute", f"the body has a field {name!r}, which the consumer reserves"
            )
    body_key = message.fields.get(key_attribute)
    if body_key is None:
        return  # absent or null: the key takes its place
    if not isinstance(body_key, str | Decimal) or str(body_key) != message.key:
        raise InvalidMessageError(
            "reserved_attribute",
            f"the body's {key_attribute!r} differs from the idempotency key taken from {message.key_source}; "
            "it is the table's key attribute (DYNAMO_KEY_ATTRIBUTE): to keep the body's field, give the "
            "table another key attribute name",
        )


def _checked(value: Any, path: str, depth: int) -> Any:
    """The value as it will be stored; raises for what DynamoDB would refuse."""
    if isinstance(value, Decimal):
        return _checked_number(value, path)
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        raise InvalidMessageError("too_deep", f"{path} is nested deeper than DynamoDB's {MAX_DEPTH} levels")
    if isinstance(value, dict):
        _check_names(value, path)
        return {name: _checked(inner, f"{path}.{name}", depth + 1) for name, inner in value.items()}
    if isinstance(value, list):
        return [_checked(inner, f"{path}[{index}]", depth + 1) for index, inner in enumerate(value)]
    return value


def _check_names(fields: Mapping[str, Any], path: str) -> None:
    for name in fields:
        if not name:
            raise InvalidMessageError("invalid_attribute_name", f"{path} has an empty field name")
        if _utf8_size(name) > MAX_NAME_BYTES:
            raise InvalidMessageError("invalid_attribute_name", f"{path} has a field name over {MAX_NAME_BYTES} bytes")


def _checked_number(number: Decimal, path: str) -> Decimal:
    if number.is_zero():
        # 0E-200 is zero, but boto3 cannot send its exponent: store the plain zero DynamoDB keeps anyway.
        return Decimal(0)
    trimmed = _trimmed(number)
    digits = len(trimmed.as_tuple().digits)
    if digits > MAX_SIGNIFICANT_DIGITS:
        raise InvalidMessageError(
            "number_out_of_range", f"{path} has {digits} significant digits; DynamoDB keeps {MAX_SIGNIFICANT_DIGITS}"
        )
    if not MIN_ADJUSTED_EXPONENT <= trimmed.adjusted() <= MAX_ADJUSTED_EXPONENT:
        raise InvalidMessageError("number_out_of_range", f"{path} is outside DynamoDB's range 1E-130 to 1E+126")
    # Stored as written when boto3 can send that exactly; else without its trailing zeros (the same
    # value, as DynamoDB keeps it anyway); else (38 digits at the bottom of the range) never.
    for candidate in (number, trimmed):
        if _sendable(candidate):
            return candidate
    raise InvalidMessageError("number_out_of_range", f"{path} cannot be sent to DynamoDB exactly")


def _sendable(number: Decimal) -> bool:
    """What boto3's serializer accepts: it refuses to round (its context traps Inexact and Rounded)."""
    try:
        DYNAMODB_CONTEXT.create_decimal(number)
    except DecimalException:
        return False
    return True


def _trimmed(number: Decimal) -> Decimal:
    """The same value without trailing zeros, built exactly: no decimal context, so no rounding."""
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite: JSON has no NaN or Infinity, and they are refused earlier
    kept = len(digits)
    while kept > 1 and digits[kept - 1] == 0:
        kept -= 1
    return Decimal((sign, digits[:kept], exponent + len(digits) - kept))


def _name_size(name: str) -> int:
    return _utf8_size(name)


def _value_size(value: Any) -> int:
    if isinstance(value, str):
        return _utf8_size(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, Decimal | int):
        return _number_size(Decimal(value))
    if isinstance(value, dict):
        return 3 + sum(1 + _name_size(name) + _value_size(inner) for name, inner in value.items())
    if isinstance(value, list):
        return 3 + sum(1 + _value_size(inner) for inner in value)
    raise TypeError(f"unexpected {type(value).__name__} in a DynamoDB item")


def _number_size(number: Decimal) -> int:
    digits = 1 if number.is_zero() else len(_trimmed(number).as_tuple().digits)
    return (digits + 1) // 2 + 1 + (1 if number.is_signed() else 0)


def _utf8_size(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidMessageError(
            "invalid_unicode", "a string holds a lone surrogate, which is not valid UTF-8"
        ) from None
