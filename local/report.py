"""The end of a local run: what was sent, what the handler said, what the table and DLQ hold.

Every sent message must be accounted for: its item is in the table (it was the first
write of its key), or it is in the DLQ, or it is a duplicate of a key that is in the
table. The idempotency key of a sent message is computed by the consumer's own parser.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from consumer.config import Config
from consumer.exceptions import InvalidMessageError
from consumer.message import parse_message
from consumer.queue_gateway import ATTR_DETAILS, ATTR_ORIGINAL_ID, ATTR_REASON
from consumer.sqs_event import SqsRecord
from consumer.telemetry import METRIC_NAMES
from local.poller import PollerStats
from local.producer import Outgoing, count_kinds

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

REDRIVEN = "redriven_by_sqs (maxReceiveCount reached)"


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    original_id: str
    body: str
    reason: str
    details: str


@dataclass
class Report:
    sent: int
    sent_by_kind: dict[str, int]
    saved: int
    duplicates: int
    conflicting_duplicates: int
    invalid: int
    quarantined: int
    redriven: int
    deleted_by_consumer: int
    deleted_by_poller: int
    batch_item_failures: int
    invocations: int
    invocation_errors: int
    redeliveries: int
    metrics: dict[str, float]
    dlq_by_reason: dict[str, int]
    dlq_examples: list[dict[str, str]]
    table_items: int
    queue_left: int
    unaccounted: int
    unaccounted_ids: list[str]
    seconds: float
    messages_per_second: float
    visibility_timeout: int
    endpoint: str
    # Bodies over DynamoDB's item limit written to the payload bucket, and Extended Client payloads read.
    offloaded: int = 0
    pointers_read: int = 0
    payload_objects: int = 0
    notes: list[str] = field(default_factory=list)
    # The function's settings as the run deployed them, each with its source.
    settings: dict[str, str] = field(default_factory=dict)
    # Pollers that drained the queue at once (each in its own process when more than one).
    pollers: int = 1
    invocations_by_poller: list[int] = field(default_factory=list)
    # The embedded emulator's requests, and the share of the run it spent answering them (wall, CPU).
    emulator_requests: int = 0
    emulator_busy_percent: float = 0.0
    emulator_cpu_percent: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    def to_text(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.sent_by_kind.items() if count)
        metrics = ", ".join(f"{name} {value:g}" for name, value in self.metrics.items())
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.dlq_by_reason.items())) or "empty"
        lines = [
            "== local run report ==",
            f"endpoint              {self.endpoint}",
            *(f"setting               {name}={value}" for name, value in self.settings.items()),
            f"sent                  {self.sent} ({kinds})",
            f"saved                 {self.saved} new items written",
            f"duplicates            {self.duplicates} skipped, of which conflicting {self.conflicting_duplicates}",
            f"invalid               {self.invalid} seen, {self.quarantined} quarantined to the DLQ with a reason",
            f"large                 {self.offloaded} bodies offloaded to S3 ({self.payload_objects} objects in the "
            f"payload bucket), {self.pointers_read} Extended Client pointers read",
            f"deleted               {self.deleted_by_consumer} by the consumer, {self.deleted_by_poller} by the poller",
            f"batch failures        {self.batch_item_failures} records reported, {self.invocation_errors} "
            f"invocations raised, {self.redeliveries} redeliveries "
            f"(visibility timeout {self.visibility_timeout} s)",
            f"invocations           {self.invocations}"
            + (
                f" by {self.pollers} poller processes ({' + '.join(map(str, self.invocations_by_poller))})"
                if self.pollers > 1
                else ""
            ),
            f"metrics (EMF)         {metrics}",
            f"dlq                   {reasons}",
        ]
        lines.extend(
            f"  dlq example         {example['reason']}: {example['details'][:70]!r} body={example['body'][:40]!r}"
            for example in self.dlq_examples
        )
        lines += [
            f"table                 {self.table_items} items",
            f"queue left            {self.queue_left} messages",
            f"time                  {self.seconds:.1f} s, {self.messages_per_second:.0f} messages/s",
            *(
                [
                    f"emulator              {self.emulator_requests} requests, answering them (one at a time) "
                    f"{self.emulator_busy_percent:.0f}% of the time, on a CPU {self.emulator_cpu_percent:.0f}%"
                ]
                if self.emulator_requests
                else []
            ),
            f"accounted             {'all' if not self.unaccounted else 'NOT ALL'}: "
            f"{self.unaccounted} unaccounted for" + (f" {self.unaccounted_ids[:5]}" if self.unaccounted else ""),
        ]
        lines.extend(f"note                  {note}" for note in self.notes)
        return "\n".join(lines)


def scan_table(dynamodb: DynamoDBClient, table: str, key_attribute: str = "message_id") -> dict[str, dict[str, Any]]:
    """Every item, by its key."""
    deserializer = TypeDeserializer()
    items: dict[str, dict[str, Any]] = {}
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**request)
        for raw in page.get("Items", []):
            item = {name: deserializer.deserialize(value) for name, value in raw.items()}
            items[str(item[key_attribute])] = item
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_dlq(sqs: SQSClient, dlq_url: str, *, consume: bool, visibility_timeout: int = 60) -> list[DlqMessage]:
    """The DLQ's messages. A FIFO queue shows no message of a group while another is in flight,
    so only ``consume=True`` (receive and delete: the embedded emulator, which stops next) reads
    all of them; without it, each group's first messages are read, then made visible again at once.
    """
    seen: dict[str, DlqMessage] = {}
    browsed: list[str] = []
    empty_answers = 0
    while empty_answers < 2:
        answer = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=visibility_timeout,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        empty_answers = 0 if messages else empty_answers + 1
        if consume and messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=dlq_url, Entries=entries)  # type: ignore[arg-type]
        elif messages:
            browsed.extend(message["ReceiptHandle"] for message in messages)
        for message in messages:
            attributes: dict[str, Any] = dict(message.get("MessageAttributes", {}))
            reason = attributes.get(ATTR_REASON, {}).get("StringValue") or REDRIVEN
            seen[message["MessageId"]] = DlqMessage(
                message_id=message["MessageId"],
                original_id=attributes.get(ATTR_ORIGINAL_ID, {}).get("StringValue") or message["MessageId"],
                body=message["Body"],
                reason=reason,
                details=attributes.get(ATTR_DETAILS, {}).get("StringValue", ""),
            )
    # Browsing must not hide the messages from the next reader (an operator's receive-message).
    for start in range(0, len(browsed), 10):
        visible = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(browsed[start : start + 10])
        ]
        sqs.change_message_visibility_batch(QueueUrl=dlq_url, Entries=visible)  # type: ignore[arg-type]
    return list(seen.values())


def read_payload_objects(s3: S3Client, bucket: str) -> dict[str, list[str]]:
    """Every object version in the payload bucket: key -> the SHA-256 of each version's bytes."""
    objects: dict[str, list[str]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"].read()
            objects.setdefault(version["Key"], []).append(hashlib.sha256(body).hexdigest())
    return objects


def idempotency_key(item: Outgoing, config: Config) -> str | None:
    """The key the consumer derives from this message (a pointer's: from its payload), or None if it is invalid."""
    record = SqsRecord(
        message_id=item.sqs_message_id,
        receipt_handle="-",
        body=item.message_body,
        event_source_arn="arn:aws:sqs:local:000000000000:queue.fifo",
        attributes={"MessageGroupId": item.group, "MessageDeduplicationId": item.dedup_id},
    )
    try:
        return parse_message(record, config.idempotency_key).key
    except InvalidMessageError:
        return None


def unaccounted(
    sent: Sequence[Outgoing],
    items: Mapping[str, Mapping[str, Any]],
    dlq: Sequence[DlqMessage],
    config: Config,
    quarantined: Iterable[str] = (),
) -> list[str]:
    """SQS ids of sent messages that are neither in the table, nor in the DLQ, nor duplicates of a stored key.

    ``quarantined``: ids the handler logged as sent to the DLQ, for when the DLQ could not be read whole.
    """
    written = {str(item.get("_meta", {}).get("sqs_message_id")) for item in items.values()}
    in_dlq = {message.original_id for message in dlq} | set(quarantined)
    missing: list[str] = []
    for message in sent:
        if message.sqs_message_id in written or message.sqs_message_id in in_dlq:
            continue
        key = idempotency_key(message, config)
        if key is None or key not in items:
            missing.append(message.sqs_message_id)
    return missing


def build_report(
    *,
    sent: Sequence[Outgoing],
    metrics: Mapping[str, float],
    stats: PollerStats,
    items: Mapping[str, Mapping[str, Any]],
    dlq: Sequence[DlqMessage],
    config: Config,
    queue_left: int,
    seconds: float,
    visibility_timeout: int,
    endpoint: str,
    quarantined: Iterable[str] = (),
    payload_objects: Mapping[str, Sequence[str]] | None = None,
) -> Report:
    sent_ids = {message.sqs_message_id for message in sent}
    ours = [item for item in items.values() if item.get("_meta", {}).get("sqs_message_id") in sent_ids]
    reasons = Counter(message.reason for message in dlq)
    examples: dict[str, DlqMessage] = {}
    for message in dlq:
        examples.setdefault(message.reason, message)
    missing = unaccounted(sent, items, dlq, config, quarantined)
    totals = {name: float(metrics.get(name, 0)) for name in METRIC_NAMES}
    return Report(
        sent=len(sent),
        sent_by_kind=count_kinds(sent),
        saved=len(ours),
        duplicates=int(totals["DuplicateMessages"]),
        conflicting_duplicates=int(totals["ConflictingDuplicates"]),
        invalid=int(totals["InvalidMessages"]),
        quarantined=int(totals["MessagesQuarantined"]),
        redriven=reasons.get(REDRIVEN, 0),
        deleted_by_consumer=int(totals["MessagesDeleted"]),
        deleted_by_poller=stats.esm_deleted,
        batch_item_failures=stats.item_failures,
        invocations=stats.invocations,
        invocation_errors=stats.invocation_errors,
        redeliveries=stats.redelivered,
        metrics=totals,
        dlq_by_reason=dict(reasons),
        dlq_examples=[
            {"reason": m.reason, "details": m.details, "body": m.body, "original_message_id": m.original_id}
            for m in examples.values()
        ],
        table_items=len(items),
        queue_left=queue_left,
        unaccounted=len(missing),
        unaccounted_ids=missing[:50],
        seconds=round(seconds, 3),
        messages_per_second=round(len(sent) / seconds, 1) if seconds > 0 else 0.0,
        visibility_timeout=visibility_timeout,
        endpoint=endpoint,
        offloaded=int(totals["PayloadsOffloaded"]),
        pointers_read=int(totals["PointersRead"]),
        payload_objects=len(payload_objects or {}),
    )
