"""An SQS record's body becomes a ``Message``: exact JSON, an idempotency key, a hash.

Anything that can never be stored raises ``InvalidMessageError`` with a stable
reason code; the record then goes to the dead-letter queue unchanged. Its details
go to the logs and to the dead-letter queue's ``quarantine_details``: they say which
rule was broken and where (a position, a depth, a digest of a field name), never a
name or a value from the body.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import jmespath
from jmespath import functions as jmespath_functions
from jmespath.exceptions import JMESPathError, JMESPathTypeError
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


def name_digest(name: str) -> str:
    """A field name as details may show it: the first 8 hex digits of its SHA-256, not the name."""
    return "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]


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
    except InvalidOperation:
        # Decimal refuses an exponent of 10**18 or more; JSON allows any.
        raise InvalidMessageError(
            "number_out_of_range", "a number's exponent is beyond what a decimal can hold (10**18 or more)"
        ) from None
    except json.JSONDecodeError as error:
        # The message proper ("Expecting ',' delimiter"), not anything after it that could quote the body.
        where = f"line {error.lineno} column {error.colno} (char {error.pos})"
        raise InvalidMessageError("invalid_json", f"{error.msg.split(':')[0]}: {where}") from None
    except ValueError as error:  # our own hooks', below: their texts quote nothing from the body
        raise InvalidMessageError("invalid_json", str(error)) from None
    if not isinstance(value, dict):
        raise InvalidMessageError("not_an_object", f"the JSON body is {_json_type(value)}, not an object")
    return value


def _reject_constant(name: str) -> Decimal:
    raise ValueError(f"{name} is not a JSON number")


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        # An ambiguous body must not be half-stored: which value would win is a parser detail.
        seen: set[str] = set()
        for position, (name, _) in enumerate(pairs):
            if name in seen:
                raise ValueError(
                    f"field #{position} of an object repeats an earlier field's name ({name_digest(name)})"
                )
            seen.add(name)
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
        raise InvalidMessageError(
            "invalid_key", f"idempotency key expression failed: {_jmespath_error(error)}"
        ) from None
    if value is None:
        if record.deduplication_id:
            return record.deduplication_id, KEY_FROM_DEDUPLICATION_ID
        return record.message_id, KEY_FROM_MESSAGE_ID
    return _key_text(value), KEY_FROM_BODY


def _jmespath_error(error: JMESPathError) -> str:
    """The error without the body value a type error quotes; other runtime errors quote the expression."""
    if isinstance(error, JMESPathTypeError):
        expected = " or ".join(error.expected_types)
        return f"{error.function_name}() takes {expected}, the body has {error.actual_type} there"
    return str(error)


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
