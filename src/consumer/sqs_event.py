"""The edge: a Lambda SQS event becomes a tuple of frozen ``SqsRecord`` values.

The whole event is checked before anything is processed, so an event that is
not an SQS event raises ``InvalidEventError`` and nothing is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consumer.exceptions import InvalidEventError


@dataclass(frozen=True)
class SqsRecord:
    message_id: str
    receipt_handle: str
    body: str
    event_source_arn: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    message_attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_fifo(self) -> bool:
        return self.event_source_arn.endswith(".fifo")

    @property
    def group_id(self) -> str | None:
        return self.attributes.get("MessageGroupId")

    @property
    def deduplication_id(self) -> str | None:
        return self.attributes.get("MessageDeduplicationId")

    @property
    def receive_count(self) -> int:
        return _int_or_zero(self.attributes.get("ApproximateReceiveCount"))

    @property
    def ordering_key(self) -> str:
        """Records sharing this key are processed in order; a failure holds back the rest.

        Only a FIFO queue promises order. A standard queue may carry a group id
        (fair queues), but its records stay independent.
        """
        if self.is_fifo and self.group_id is not None:
            return f"group:{self.group_id}"
        return f"record:{self.message_id}"


def parse_event(event: object) -> tuple[SqsRecord, ...]:
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"expected an SQS event (a JSON object), got {type(event).__name__}")
    records = event.get("Records")
    if not isinstance(records, list):
        raise InvalidEventError("expected an SQS event: 'Records' is missing or not a list")
    return tuple(_parse_record(index, record) for index, record in enumerate(records))


def _parse_record(index: int, record: object) -> SqsRecord:
    where = f"Records[{index}]"
    if not isinstance(record, Mapping):
        raise InvalidEventError(f"{where} is not an object")
    if record.get("eventSource") != "aws:sqs":
        raise InvalidEventError(f"{where}.eventSource is {record.get('eventSource')!r}, expected 'aws:sqs'")
    attributes = record.get("attributes", {})
    message_attributes = record.get("messageAttributes", {}) or {}
    if not isinstance(attributes, Mapping) or not isinstance(message_attributes, Mapping):
        raise InvalidEventError(f"{where}.attributes and .messageAttributes must be objects")
    return SqsRecord(
        message_id=_required_text(record, "messageId", where),
        receipt_handle=_required_text(record, "receiptHandle", where),
        body=_text(record, "body", where),
        event_source_arn=_required_text(record, "eventSourceARN", where),
        attributes={str(k): str(v) for k, v in attributes.items()},
        message_attributes=dict(message_attributes),
    )


def _text(record: Mapping[str, Any], name: str, where: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise InvalidEventError(f"{where}.{name} is missing or not a string")
    return value


def _required_text(record: Mapping[str, Any], name: str, where: str) -> str:
    value = _text(record, name, where)
    if not value:
        raise InvalidEventError(f"{where}.{name} is empty")
    return value


def _int_or_zero(raw: str | None) -> int:
    try:
        return int(raw) if raw is not None else 0
    except ValueError:
        return 0
