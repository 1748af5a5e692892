"""The producer side of the message contract, and a demo workload that exercises every path.

A message the consumer expects is a JSON object::

    {"message_id": "<uuid>", "timestamp": "<ISO 8601>", "source": "...", "type": "...",
     "dlq_retry": 0, "payload": {"transaction": {...}}}

sent to the FIFO queue with a ``MessageGroupId`` and a ``MessageDeduplicationId``.
A *duplicate* reuses a ``message_id`` with a new deduplication id (SQS cannot drop it,
the consumer must); an *invalid* body can never be stored and must reach the DLQ.
A *large* body carries an attachment that makes its item too large for DynamoDB (the
consumer writes it to S3); a *pointer* is what the SQS Extended Client sends: the body put
in S3 by the producer, and a JSON pointer to it with the ``ExtendedPayloadSize`` attribute.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

VALID = "valid"
DUPLICATE = "duplicate"
CONFLICTING = "conflicting_duplicate"
INVALID = "invalid"
LARGE = "large"
POINTER = "pointer"
FROM_FILE = "from_file"
# Kinds whose message must end as exactly one item.
STORED_KINDS = (VALID, LARGE, POINTER)
MAX_SEND_BATCH = 10
# SendMessageBatch takes at most 1 MiB for all its entries together.
MAX_SEND_BATCH_BYTES = 1024 * 1024
# Large bodies: over DynamoDB's 400 KB item, under SQS's 1 MiB message.
LARGE_BODY_BYTES = (450_000, 1_000_000)
POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"

SOURCE = "local-producer"
TYPE = "transaction.created"


@dataclass(frozen=True)
class S3Payload:
    """An Extended Client payload: put in the producer's bucket before its pointer is sent (unless ``text`` is None)."""

    bucket: str
    key: str
    text: str | None


@dataclass(frozen=True)
class Outgoing:
    """One message to send, and what the producer knows it should become."""

    body: str
    group: str
    dedup_id: str
    kind: str
    key: str | None = None
    expected_reason: str | None = None
    sqs_message_id: str = ""
    sent_index: int = -1
    payload: S3Payload | None = None
    attributes: Mapping[str, Any] | None = None

    @property
    def message_body(self) -> str:
        """The body the consumer stores: the pointer's payload, or the body itself."""
        return (self.payload.text or "") if self.payload is not None else self.body


def contract_body(group: str, sequence: int, rng: random.Random, *, message_id: str | None = None) -> dict[str, Any]:
    """A body that follows the consumer's message contract."""
    base = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(30 * 86400))
    return {
        "message_id": message_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "timestamp": base.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "source": SOURCE,
        "type": TYPE,
        "dlq_retry": 0,
        "payload": {
            "transaction": {
                "account": group,
                "sequence": sequence,
                # Written as a JSON number with two decimals: the consumer stores it exactly.
                "amount": float(f"{rng.randrange(1, 100_000) / 100:.2f}"),
                "currency": rng.choice(["EUR", "USD", "GBP"]),
            }
        },
    }


def _invalid_bodies(token: str) -> list[tuple[str, str]]:
    """Bodies that can never be stored, each unique through ``token``, with the reason expected."""
    return [
        (f"not json {token}", "invalid_json"),
        (json.dumps([token, 1, 2]), "not_an_object"),
        (json.dumps({"message_id": "", "note": token}), "invalid_key"),
        (json.dumps({"message_id": token, "_meta": "forged"}), "reserved_attribute"),
        (f'{{"message_id": "{token}", "message_id": "{token}-again"}}', "invalid_json"),
    ]


def large_body(group: str, sequence: int, rng: random.Random) -> dict[str, Any]:
    """A contract body with a scanned attachment: its item would pass DynamoDB's 400 KB."""
    body = contract_body(group, sequence, rng)
    body["attachment"] = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=rng.randint(*LARGE_BODY_BYTES)))
    return body


def pointer_to(bucket: str, key: str, size: int) -> tuple[str, dict[str, Any]]:
    """What the Extended Client sends for a payload it put at s3://bucket/key: the body and its attributes."""
    body = json.dumps([POINTER_CLASS, {"s3BucketName": bucket, "s3Key": key}])
    return body, {"ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(size)}}


def demo_workload(
    messages: int,
    groups: int,
    duplicates: int,
    invalid: int,
    *,
    seed: int = 7,
    conflicting_every: int = 5,
    large: int = 0,
    pointers: int = 0,
    pointer_bucket: str | None = None,
) -> list[Outgoing]:
    """``messages`` valid bodies over ``groups`` groups, then duplicates and invalid bodies mixed in.

    Every ``conflicting_every``-th duplicate changes the body under the same ``message_id``.
    Duplicates and invalid bodies are inserted after their original, in the same group.
    ``large`` bodies too large for an item, and ``pointers`` Extended Client messages whose payloads
    go to ``pointer_bucket`` (every fifth payload large, the third of every ten pointers naming an object never
    written: quarantined as payload_missing), are inserted in their groups' order.
    """
    if pointers and pointer_bucket is None:
        raise ValueError("pointers need a bucket for their payloads")
    if groups < 1:
        raise ValueError("--groups must be at least 1")
    rng = random.Random(seed)
    names = [f"account-{index:03d}" for index in range(groups)]
    sequences = dict.fromkeys(names, 0)
    plan: list[Outgoing] = []
    for index in range(messages):
        group = names[index % groups]
        sequences[group] += 1
        body = contract_body(group, sequences[group], rng)
        plan.append(Outgoing(json.dumps(body), group, _dedup(rng), VALID, key=body["message_id"]))
    originals = list(plan)
    for number in range(duplicates if originals else 0):
        original = rng.choice(originals)
        position = plan.index(original) + 1 + rng.randrange(0, 5)
        kind, text = DUPLICATE, original.body
        if conflicting_every and number % conflicting_every == conflicting_every - 1:
            changed = json.loads(original.body)
            changed["payload"]["transaction"]["amount"] = 0.01
            kind, text = CONFLICTING, json.dumps(changed)
        plan.insert(min(position, len(plan)), Outgoing(text, original.group, _dedup(rng), kind, key=original.key))
    for number in range(invalid):
        token = f"invalid-{number:05d}-{rng.getrandbits(32):08x}"
        bad, reason = _invalid_bodies(token)[number % 5]
        group = names[rng.randrange(groups)]
        plan.insert(rng.randrange(len(plan) + 1), Outgoing(bad, group, _dedup(rng), INVALID, expected_reason=reason))
    # Appended in order, so each group's sequence numbers still rise in the order sent.
    for _ in range(large):
        group = names[rng.randrange(groups)]
        sequences[group] += 1
        body = large_body(group, sequences[group], rng)
        plan.append(Outgoing(json.dumps(body), group, _dedup(rng), LARGE, key=body["message_id"]))
    for number in range(pointers):
        assert pointer_bucket is not None
        group = names[rng.randrange(groups)]
        sequences[group] += 1
        body = (large_body if number % 5 == 4 else contract_body)(group, sequences[group], rng)
        text = json.dumps(body)
        s3_key = f"payloads/{_dedup(rng)}"
        pointer, attributes = pointer_to(pointer_bucket, s3_key, len(text.encode()))
        if number % 10 == 2:
            payload = S3Payload(pointer_bucket, s3_key, None)
            outgoing = Outgoing(pointer, group, _dedup(rng), INVALID, expected_reason="payload_missing")
        else:
            payload = S3Payload(pointer_bucket, s3_key, text)
            outgoing = Outgoing(pointer, group, _dedup(rng), POINTER, key=body["message_id"])
        plan.append(replace(outgoing, payload=payload, attributes=attributes))
    return plan


def file_workload(path: Path, groups: int, *, seed: int = 7) -> list[Outgoing]:
    """Bodies from a file: a Lambda SQS event (``Records[].body``), a JSON array, or one body per line."""
    rng = random.Random(seed)
    text = path.read_text(encoding="utf-8")
    entries: list[tuple[str, str | None]]
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("Records"), list):
        entries = [
            (str(record["body"]), (record.get("attributes") or {}).get("MessageGroupId"))
            for record in document["Records"]
        ]
    elif isinstance(document, list):
        entries = [(item if isinstance(item, str) else json.dumps(item), None) for item in document]
    else:
        entries = [(line, None) for line in text.splitlines() if line.strip()]
    return [
        Outgoing(body, group or f"account-{index % max(groups, 1):03d}", _dedup(rng), FROM_FILE)
        for index, (body, group) in enumerate(entries)
    ]


def send_all(sqs: SQSClient, queue_url: str, plan: Sequence[Outgoing], s3: S3Client | None = None) -> list[Outgoing]:
    """SendMessageBatch, 10 at a time (1 MiB at most), in plan order; returns the plan with SQS message ids."""
    sent: list[Outgoing] = []
    for chunk in batches(plan):
        sent.extend(send_batch(sqs, queue_url, chunk, len(sent), s3))
    return sent


def batches(plan: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
    """The plan in order, cut where SendMessageBatch's 10 entries or 1 MiB would be passed."""
    chunk: list[Outgoing] = []
    size = 0
    for item in plan:
        weight = len(item.body.encode()) + sum(len(json.dumps(value)) for value in (item.attributes or {}).values())
        if chunk and (len(chunk) == MAX_SEND_BATCH or size + weight > MAX_SEND_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += weight
    if chunk:
        yield chunk


class Feeder:
    """Sends the plan while the poller drains, keeping at most about ``window`` messages queued.

    A producer and the event source mapping run at once in production too; and moto's
    queue attributes cost time in proportion to the messages queued.
    """

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        plan: Sequence[Outgoing],
        window: int = 50,
        s3: S3Client | None = None,
    ) -> None:
        self._sqs = sqs
        self._s3 = s3
        self._queue_url = queue_url
        self._pending = list(batches(plan))
        self._window = window
        self.sent: list[Outgoing] = []

    def feed(self, depth: int) -> bool:
        """Send batches until the window is full; True while some of the plan is unsent."""
        while self._pending and depth < self._window:
            chunk = self._pending.pop(0)
            self.sent.extend(send_batch(self._sqs, self._queue_url, chunk, len(self.sent), self._s3))
            depth += len(chunk)
        return bool(self._pending)


def send_batch(
    sqs: SQSClient, queue_url: str, items: Sequence[Outgoing], first_index: int, s3: S3Client | None = None
) -> list[Outgoing]:
    """One SendMessageBatch, in order; returns the items with their SQS message ids.

    Payloads of pointers are put in S3 first, as the Extended Client does. A refused entry
    is sent again on its own with the same deduplication id, so a retry never makes a second
    copy; the batch's later entries of its group may overtake it.
    """
    chunk = list(items)
    for item in chunk:
        if item.payload is not None and item.payload.text is not None:
            if s3 is None:
                raise ValueError("a pointer's payload needs an S3 client")
            s3.put_object(Bucket=item.payload.bucket, Key=item.payload.key, Body=item.payload.text.encode())
    entries = [{"Id": str(i), **_send_fields(item)} for i, item in enumerate(chunk)]
    answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
    ids = {int(entry["Id"]): entry["MessageId"] for entry in answer.get("Successful", [])}
    for entry in answer.get("Failed", []):
        item = chunk[int(entry["Id"])]
        retried = sqs.send_message(QueueUrl=queue_url, **_send_fields(item))
        ids[int(entry["Id"])] = retried["MessageId"]
    return [replace(item, sqs_message_id=ids[i], sent_index=first_index + i) for i, item in enumerate(chunk)]


def _send_fields(item: Outgoing) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "MessageBody": item.body,
        "MessageGroupId": item.group,
        "MessageDeduplicationId": item.dedup_id,
    }
    if item.attributes:
        fields["MessageAttributes"] = dict(item.attributes)
    return fields


def count_kinds(plan: Iterable[Outgoing]) -> dict[str, int]:
    counts = dict.fromkeys((VALID, LARGE, POINTER, DUPLICATE, CONFLICTING, INVALID, FROM_FILE), 0)
    for item in plan:
        counts[item.kind] += 1
    return counts


def _dedup(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex
