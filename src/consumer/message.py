"""An SQS record's body becomes a ``Message``: exact JSON, an idempotency key, a hash.

Anything that can never be stored raises ``InvalidMessageError`` with a stable
reason code; the record then goes to the dead-letter queue unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import jmespath
from jmespath import functions as jmespath_functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from consumer.exceptions import InvalidMessageError
from consumer.sqs_event import SqsRecord

# DynamoDB's limit for a partition key value.
MAX_KEY_BYTES = 2048

KEY_FROM_BODY = "body"
KEY_FROM_DEDUPLICATION_ID = "MessageDeduplicationId"
KEY_FROM_MESSAGE_ID = "messageId"


@dataclass(frozen=True)
class Message:
    record: SqsRecord
    key: str
    key_source: str
    fields: Mapping[str, Any]
    body_sha256: str


def body_sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


def parse_message(record: SqsRecord, key_path: ParsedResult) -> Message:
    fields = _parse_json_object(record.body)
    key, source = _idempotency_key(record, fields, key_path)
    return Message(record=record, key=key, key_source=source, fields=fields, body_sha256=body_sha256(record.body))


def _parse_json_object(body: str) -> dict[str, Any]:
    try:
        # Decimal for every number keeps it exactly as written: no float round trip.
        value = json.loads(
            body,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_fields,
        )
    except RecursionError:
        raise InvalidMessageError("too_deep", "JSON nesting is deeper than the parser allows") from None
    except ValueError as error:
        raise InvalidMessageError("invalid_json", str(error)) from None
    if not isinstance(value, dict):
        raise InvalidMessageError("not_an_object", f"the JSON body is {_json_type(value)}, not an object")
    return value


def _reject_constant(name: str) -> Decimal:
    raise ValueError(f"{name} is not a JSON number")


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for name in names if names.count(name) > 1)
        # An ambiguous body must not be half-stored: which value would win is a parser detail.
        raise ValueError(f"field {twice!r} appears more than once in one object")
    return fields


_F = TypeVar("_F", bound=Callable[..., Any])


def _any_one_argument(function: _F) -> _F:
    """The signature jmespath's own to_string, to_number and type have."""
    jmespath_functions.signature({"types": []})(function)
    return function


class _ExactNumberFunctions(jmespath_functions.Functions):  # type: ignore[misc]
    """JMESPath's functions, with the body's numbers (``Decimal``, kept exact) as JMESPath numbers.

    Out of the box jmespath knows only int and float: ``to_string`` of a Decimal gives its JSON
    string (quotes included), and ``sum``, ``max``, ``abs`` or ``sort`` refuse it as an unknown type.
    """

    def _get_allowed_pytypes(self, types: list[str]) -> tuple[list[str], list[tuple[str, ...]]]:
        allowed, subtypes = super()._get_allowed_pytypes(types)
        allowed = [*allowed, "Decimal"] if "float" in allowed else allowed
        subtypes = [(*subtype, "Decimal") if "float" in subtype else subtype for subtype in subtypes]
        return allowed, subtypes

    def _convert_to_jmespath_type(self, pyobject: str) -> str:
        return "number" if pyobject == "Decimal" else str(super()._convert_to_jmespath_type(pyobject))

    @_any_one_argument
    def _func_to_string(self, arg: Any) -> str:
        return arg if isinstance(arg, str) else _json_text(arg)

    @_any_one_argument
    def _func_to_number(self, arg: Any) -> Any:
        if isinstance(arg, Decimal):
            return arg
        if isinstance(arg, str):
            return Decimal(arg.strip()) if _NUMBER_TEXT.fullmatch(arg.strip()) else None
        return super()._func_to_number(arg)

    @_any_one_argument
    def _func_type(self, arg: Any) -> str:
        return "number" if isinstance(arg, Decimal) else str(super()._func_type(arg))


_SEARCH_OPTIONS = jmespath.Options(custom_functions=_ExactNumberFunctions())
# A decimal number, leading zeros allowed (as jmespath's own int()/float() take them); no NaN or Infinity.
_NUMBER_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _json_text(value: Any) -> str:
    """Compact JSON, numbers as written (``json.dumps`` knows no Decimal)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(inner) for inner in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(name)}:{_json_text(inner)}" for name, inner in value.items()) + "}"
    return json.dumps(value)


def _idempotency_key(record: SqsRecord, fields: dict[str, Any], key_path: ParsedResult) -> tuple[str, str]:
    try:
        value = key_path.search(fields, options=_SEARCH_OPTIONS)
    except JMESPathError as error:
        raise InvalidMessageError("invalid_key", f"idempotency key expression failed: {error}") from None
    if value is None:
        if record.deduplication_id:
            return record.deduplication_id, KEY_FROM_DEDUPLICATION_ID
        return record.message_id, KEY_FROM_MESSAGE_ID
    return _key_text(value), KEY_FROM_BODY


def _key_text(value: object) -> str:
    if isinstance(value, str):
        key = value
    elif isinstance(value, Decimal) and value.is_finite() and value.as_tuple().exponent == 0:
        key = str(value)  # the integer as written, whatever its digit count: the key is stored as a string
    elif isinstance(value, int) and not isinstance(value, bool):
        key = str(value)  # from a function such as length()
    else:
        raise InvalidMessageError(
            "invalid_key", f"the idempotency key is {_json_type(value)}: use a string or an integer"
        )
    if not key:
        raise InvalidMessageError("invalid_key", "the idempotency key is an empty string")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidMessageError("invalid_key", "the idempotency key is not valid Unicode") from None
    if size > MAX_KEY_BYTES:
        raise InvalidMessageError("invalid_key", f"the idempotency key is {size} bytes; the limit is {MAX_KEY_BYTES}")
    return key


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Decimal):
        return "a number" if value.as_tuple().exponent != 0 else "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
