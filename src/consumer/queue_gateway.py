"""SQS adapter: queue URLs, batched deletes, and forwarding to the dead-letter queue."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from consumer.exceptions import QuarantineError, QueueLookupError
from consumer.sqs_event import SqsRecord

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

MAX_DELETE_BATCH = 10
MAX_MESSAGE_ATTRIBUTES = 10
MAX_DETAILS_CHARS = 1024
# What SQS answers a message over its size limit (body and attributes together) with.
TOO_LARGE = "InvalidParameterValue"

# Message attributes set on every quarantined message.
ATTR_REASON = "quarantine_reason"
ATTR_DETAILS = "quarantine_details"
ATTR_SOURCE_ARN = "source_queue_arn"
ATTR_ORIGINAL_ID = "original_message_id"
ATTR_RECEIVE_COUNT = "approximate_receive_count"
_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
_DENIED = {"AccessDenied", "AccessDeniedException"}
_OUR_ATTRIBUTES = frozenset({ATTR_REASON, ATTR_DETAILS, ATTR_SOURCE_ARN, ATTR_ORIGINAL_ID, ATTR_RECEIVE_COUNT})


@dataclass(frozen=True)
class DeleteResult:
    deleted: tuple[SqsRecord, ...]
    failed: tuple[tuple[SqsRecord, str], ...]


@dataclass(frozen=True)
class Quarantined:
    dlq_url: str
    dlq_message_id: str
    carried_attributes: tuple[str, ...]
    dropped_attributes: tuple[str, ...]
    reason_only: bool = False
    # SQS refused even the reason: the body filled its 1 MiB, so it went alone and the reason is in the log.
    body_only: bool = False


class QueueGateway:
    def __init__(self, client: SQSClient, dlq_url: str | None = None) -> None:
        self._client = client
        self._configured_dlq_url = dlq_url
        self._queue_urls: dict[str, str] = {}
        self._dlq_urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def cached_queue_url(self, queue_arn: str) -> str | None:
        with self._lock:
            return self._queue_urls.get(queue_arn)

    def queue_url(self, queue_arn: str) -> str:
        """GetQueueUrl once per container per queue ARN."""
        with self._lock:
            cached = self._queue_urls.get(queue_arn)
        if cached is not None:
            return cached
        url = self._lookup_url(queue_arn)
        with self._lock:
            self._queue_urls[queue_arn] = url
        return url

    def dead_letter_url(self, queue_arn: str) -> str:
        """DLQ_URL if set, else the source queue's RedrivePolicy target, read once per container."""
        if self._configured_dlq_url:
            return self._configured_dlq_url
        with self._lock:
            cached = self._dlq_urls.get(queue_arn)
        if cached is not None:
            return cached
        try:
            source_url = self.queue_url(queue_arn)
            attributes = self._client.get_queue_attributes(QueueUrl=source_url, AttributeNames=["RedrivePolicy"])
            policy = json.loads(attributes.get("Attributes", {}).get("RedrivePolicy", "{}"))
            target_arn = policy.get("deadLetterTargetArn")
            if not target_arn:
                raise QuarantineError(f"{queue_arn} has no RedrivePolicy and DLQ_URL is not set: no dead-letter queue")
            url = self.queue_url(target_arn)
        except QueueLookupError as error:
            raise QuarantineError(str(error)) from error
        except (ClientError, BotoCoreError, ValueError) as error:
            raise QuarantineError(f"could not read the RedrivePolicy of {queue_arn}: {error}") from error
        with self._lock:
            self._dlq_urls[queue_arn] = url
        return url

    def quarantine(self, record: SqsRecord, reason: str, details: str) -> Quarantined:
        """Send the body byte-identical to the DLQ, with the reason as message attributes."""
        dlq_url = self.dead_letter_url(record.event_source_arn)
        ours: dict[str, MessageAttributeValueTypeDef] = {
            ATTR_REASON: _string(reason),
            ATTR_DETAILS: _string(_sqs_text(details)[:MAX_DETAILS_CHARS] or "-"),
            ATTR_SOURCE_ARN: _string(record.event_source_arn),
            ATTR_ORIGINAL_ID: _string(record.message_id),
            ATTR_RECEIVE_COUNT: {"DataType": "Number", "StringValue": str(record.receive_count)},
        }
        carried, dropped = _original_attributes(record.message_attributes, room=MAX_MESSAGE_ATTRIBUTES - len(ours))
        request: dict[str, Any] = {"QueueUrl": dlq_url, "MessageBody": record.body}
        if dlq_url.endswith(".fifo"):
            # The original messageId as deduplication id: a retried forward is not a second copy.
            request["MessageGroupId"] = record.group_id or record.message_id
            request["MessageDeduplicationId"] = record.message_id
        try:
            answer = self._client.send_message(**request, MessageAttributes={**carried, **ours})
            return Quarantined(dlq_url, answer.get("MessageId", ""), tuple(sorted(carried)), dropped)
        except ClientError as error:
            # SQS answered, so nothing was sent: unless the queue itself is wrong, try once more below, lighter.
            self._raise_if_misconfigured(error, dlq_url, record.event_source_arn)
        except BotoCoreError as error:
            raise QuarantineError(f"sending to the dead-letter queue failed: {error}") from error
        # Attributes count towards SQS's size limit, and a producer's own may be refused here:
        # the message itself matters more than its annotations, so send it with the reason only.
        minimal = {name: ours[name] for name in (ATTR_REASON, ATTR_ORIGINAL_ID)}
        not_carried = tuple(sorted({*carried, *dropped}))
        try:
            answer = self._client.send_message(**request, MessageAttributes=minimal)
            return Quarantined(dlq_url, answer.get("MessageId", ""), (), not_carried, reason_only=True)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != TOO_LARGE:
                raise QuarantineError(f"sending to the dead-letter queue failed: {error}") from error
        except BotoCoreError as error:
            raise QuarantineError(f"sending to the dead-letter queue failed: {error}") from error
        # A body within a few bytes of 1 MiB leaves no room for any attribute. Left to SQS's redrive instead,
        # it would hold its group for maxReceiveCount deliveries, and SQS would move the records behind it too.
        try:
            answer = self._client.send_message(**request)
        except (ClientError, BotoCoreError) as error:
            raise QuarantineError(f"sending to the dead-letter queue failed: {error}") from error
        return Quarantined(dlq_url, answer.get("MessageId", ""), (), not_carried, reason_only=True, body_only=True)

    def _raise_if_misconfigured(self, error: ClientError, dlq_url: str, source_arn: str) -> None:
        """A DLQ that does not exist or may not be written: name the setting that points at it."""
        code = error.response.get("Error", {}).get("Code", "")
        if self._configured_dlq_url:
            origin = f"DLQ_URL={dlq_url}"
            fix = "set DLQ_URL to an existing queue, or unset it to use the source queue's RedrivePolicy"
        else:
            origin = f"the dead-letter queue {dlq_url} (the RedrivePolicy of {source_arn}; DLQ_URL is not set)"
            fix = "fix the source queue's RedrivePolicy, or set DLQ_URL"
        if code in _MISSING_QUEUE:
            raise QuarantineError(f"{origin} does not exist ({code}): {fix}") from error
        if code in _DENIED or code.startswith("KMS."):
            raise QuarantineError(
                f"the function's role may not sqs:SendMessage to {origin} ({code}): grant it "
                f"(and kms:GenerateDataKey for an encrypted queue), or {fix}"
            ) from error

    def delete(self, queue_url: str, records: Sequence[SqsRecord]) -> DeleteResult:
        """One DeleteMessageBatch call for up to 10 records."""
        if len(records) > MAX_DELETE_BATCH:
            raise ValueError(f"DeleteMessageBatch takes at most {MAX_DELETE_BATCH} entries, got {len(records)}")
        entries = [{"Id": str(index), "ReceiptHandle": record.receipt_handle} for index, record in enumerate(records)]
        try:
            answer = self._client.delete_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
        except (ClientError, BotoCoreError) as error:
            return DeleteResult(deleted=(), failed=tuple((record, str(error)) for record in records))
        deleted = tuple(records[int(entry["Id"])] for entry in answer.get("Successful", []))
        failed = tuple(
            (records[int(entry["Id"])], f"{entry.get('Code', '')}: {entry.get('Message', '')}")
            for entry in answer.get("Failed", [])
        )
        return DeleteResult(deleted=deleted, failed=failed)

    def _lookup_url(self, queue_arn: str) -> str:
        parts = queue_arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise QueueLookupError(f"{queue_arn!r} is not an SQS queue ARN")
        account, name = parts[4], parts[5]
        try:
            return self._client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        except (ClientError, BotoCoreError) as error:
            raise QueueLookupError(f"GetQueueUrl for {queue_arn} failed: {error}") from error


# Characters SQS accepts in a message; a field name quoted in the details may hold others.
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _sqs_text(text: str) -> str:
    return _NOT_SQS_TEXT.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _string(value: str) -> MessageAttributeValueTypeDef:
    return {"DataType": "String", "StringValue": value}


def _original_attributes(
    attributes: Mapping[str, Any], room: int
) -> tuple[dict[str, MessageAttributeValueTypeDef], tuple[str, ...]]:
    """The record's own message attributes, in the event's shape, back in SendMessage's shape."""
    carried: dict[str, MessageAttributeValueTypeDef] = {}
    dropped: list[str] = []
    for name in sorted(attributes):
        value = attributes[name]
        converted = _send_shape(value) if isinstance(value, Mapping) else None
        if converted is None or len(carried) >= room or name in _OUR_ATTRIBUTES:
            dropped.append(name)
        else:
            carried[name] = converted
    return carried, tuple(dropped)


def _send_shape(value: Mapping[str, Any]) -> MessageAttributeValueTypeDef | None:
    data_type = value.get("dataType")
    if not isinstance(data_type, str):
        return None
    if value.get("stringValue") is not None:
        return {"DataType": data_type, "StringValue": str(value["stringValue"])}
    if value.get("binaryValue") is not None:
        try:
            return {"DataType": data_type, "BinaryValue": base64.b64decode(value["binaryValue"], validate=True)}
        except ValueError:
            return None
    return None
