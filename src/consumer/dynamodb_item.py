"""A ``Message`` becomes the DynamoDB item, checked against DynamoDB's own limits.

Emulators accept items that real DynamoDB refuses, and a refusal in production
would fail the record on every delivery. So the limits are checked here and a
message that breaks one is invalid (it goes to the dead-letter queue).
Rules: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html

One pass over the body checks every value and counts the item's size as it goes, and stops
at the first value DynamoDB would refuse or as soon as the item is over 400 KB: the work is
linear in the body, whatever its shape. The reason names the rule and where it was broken
by position only (``$.#2[7]``: the third field, its eighth element), never by the body's
own names or values, which may be personal data.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal, DecimalException
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT

from consumer.exceptions import InvalidMessageError
from consumer.message import Message, name_digest

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
# boto3 sends a number through a context of precision 38 and Emin -128: at most 38 digits and
# an adjusted exponent from -128 up go as written, without a trial conversion.
_BOTO3_MIN_ADJUSTED_EXPONENT = DYNAMODB_CONTEXT.Emin
_ZERO = Decimal(0)


def build_item(
    message: Message, processed_at: datetime, ttl_days: int | None, key_attribute: str = KEY_ATTRIBUTE
) -> dict[str, Any]:
    """The body's top-level fields unchanged, plus the key, the metadata map and the TTL."""
    _check_reserved_fields(message, key_attribute)
    ours: dict[str, Any] = {key_attribute: message.key, METADATA_ATTRIBUTE: _metadata(message, processed_at)}
    if ttl_days is not None:
        ours[TTL_ATTRIBUTE] = int((processed_at + timedelta(days=ttl_days)).timestamp())
    checker = _Checker(limit=MAX_ITEM_BYTES)
    try:
        # The consumer's own attributes first: the body's fields then have what is left.
        checker.attributes(ours)
        # A body field named like the key attribute holds the key itself (checked above): the key's
        # string replaces it, so a long integer there is not a number DynamoDB must hold.
        item = checker.attributes(message.fields, skip=key_attribute)
    except _Refused as refused:
        raise refused.invalid() from None
    item.update(ours)
    return item


def item_size(item: Mapping[str, Any]) -> int:
    """Bytes as DynamoDB counts them: names and values, 3 bytes per list or map, 1 per element."""
    checker = _Checker(limit=sys.maxsize)
    try:
        checker.attributes(item)
    except _Refused as refused:
        raise refused.invalid() from None
    return checker.size


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


class _Refused(Exception):
    """A value DynamoDB would refuse; the path to it is collected on the way out, only then."""

    def __init__(self, reason: str, what: str, *, where: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.what = what
        self.where = where
        self.steps: list[tuple[Mapping[str, Any] | list[Any], object]] = []  # innermost first

    def invalid(self) -> InvalidMessageError:
        if not self.where:
            return InvalidMessageError(self.reason, self.what)
        path, innermost_name = "$", None
        for container, key in reversed(self.steps):
            if isinstance(container, list):
                path += f"[{key}]"
            else:
                path += f".#{_position(container, key)}"
                innermost_name = key
        details = f"{self.what} at {path} (depth {len(self.steps)}"
        if isinstance(innermost_name, str):
            details += f"; field name {name_digest(innermost_name)}"
        return InvalidMessageError(self.reason, details + ")")


def _position(fields: Mapping[str, Any], name: object) -> int:
    return next(index for index, candidate in enumerate(fields) if candidate == name)


class _Checker:
    """Each value as it will be stored, checked against DynamoDB's rules; the item's size so far."""

    def __init__(self, limit: int) -> None:
        self.size = 0
        self._limit = limit

    def attributes(self, fields: Mapping[str, Any], skip: str | None = None) -> dict[str, Any]:
        """Top-level attributes: their names and values, with no per-element byte."""
        stored: dict[str, Any] = {}
        name = None
        try:
            for name, value in fields.items():
                if name == skip:
                    continue
                self.size += _name_size(name)
                stored[name] = self._value(value, 1)
                self._check_size()
        except _Refused as refused:
            refused.steps.append((fields, name))
            raise
        return stored

    def _value(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            self.size += _utf8_size(value)
            return value
        if kind is Decimal:
            return self._number(value)
        if kind is dict:
            return self._map(value, depth)
        if kind is list:
            return self._list(value, depth)
        if value is None or kind is bool:
            self.size += 1
            return value
        if kind is int:
            self._number(Decimal(value))
            return value
        raise TypeError(f"unexpected {kind.__name__} in a DynamoDB item")

    def _map(self, fields: dict[str, Any], depth: int) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            raise _Refused("too_deep", f"a map nested deeper than DynamoDB's {MAX_DEPTH} levels")
        self.size += 3 + len(fields)
        self._check_size()
        stored: dict[str, Any] = {}
        name = None
        try:
            for name, inner in fields.items():
                self.size += _name_size(name)
                stored[name] = self._value(inner, depth + 1)
                self._check_size()
        except _Refused as refused:
            refused.steps.append((fields, name))
            raise
        return stored

    def _list(self, values: list[Any], depth: int) -> list[Any]:
        if depth > MAX_DEPTH:
            raise _Refused("too_deep", f"a list nested deeper than DynamoDB's {MAX_DEPTH} levels")
        self.size += 3 + len(values)
        self._check_size()
        stored: list[Any] = []
        index = 0
        try:
            for index, inner in enumerate(values):  # noqa: B007 - the except clause reads it
                stored.append(self._value(inner, depth + 1))
                self._check_size()
        except _Refused as refused:
            refused.steps.append((values, index))
            raise
        return stored

    def _check_size(self) -> None:
        if self.size > self._limit:
            raise _Refused(
                "item_too_large",
                f"the item would be {self.size} bytes or more; DynamoDB's limit is {self._limit}",
                where=False,
            )

    def _number(self, number: Decimal) -> Decimal:
        sign, digits, exponent = number.as_tuple()
        assert isinstance(exponent, int)  # finite: JSON has no NaN or Infinity, and they are refused earlier
        count = significant = len(digits)
        if digits[-1] == 0:
            if number.is_zero():
                # 0E-200 is zero, but boto3 cannot send its exponent: store the plain zero DynamoDB keeps anyway.
                self.size += 2
                return _ZERO
            significant = len(bytes(digits).rstrip(b"\0"))
        if significant > MAX_SIGNIFICANT_DIGITS:
            raise _Refused(
                "number_out_of_range",
                f"a number of {significant} significant digits (DynamoDB keeps {MAX_SIGNIFICANT_DIGITS})",
            )
        adjusted = exponent + count - 1
        if not MIN_ADJUSTED_EXPONENT <= adjusted <= MAX_ADJUSTED_EXPONENT:
            raise _Refused("number_out_of_range", "a number outside DynamoDB's range 1E-130 to 1E+126")
        self.size += (significant + 1) // 2 + 1 + sign
        if count <= MAX_SIGNIFICANT_DIGITS and adjusted >= _BOTO3_MIN_ADJUSTED_EXPONENT:
            return number
        # Stored as written when boto3 can send that exactly; else without its trailing zeros (the same
        # value, as DynamoDB keeps it anyway); else (38 digits at the bottom of the range) never.
        trimmed = Decimal((sign, digits[:significant], exponent + count - significant))
        for candidate in (number, trimmed):
            if _sendable(candidate):
                return candidate
        raise _Refused("number_out_of_range", "a number boto3 cannot send to DynamoDB exactly")


def _name_size(name: str) -> int:
    size = _utf8_size(name)
    if not size:
        raise _Refused("invalid_attribute_name", "an empty field name")
    if size > MAX_NAME_BYTES:
        raise _Refused("invalid_attribute_name", f"a field name of {size} bytes (DynamoDB's limit is {MAX_NAME_BYTES})")
    return size


def _sendable(number: Decimal) -> bool:
    """What boto3's serializer accepts: it refuses to round (its context traps Inexact and Rounded)."""
    try:
        DYNAMODB_CONTEXT.create_decimal(number)
    except DecimalException:
        return False
    return True


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Refused("invalid_unicode", "a string holding a lone surrogate, which is not valid UTF-8") from None
