"""The producer side of the message contract, and a demo workload that exercises every path.

A message the consumer expects is a JSON object::

    {"message_id": "<uuid>", "timestamp": "<ISO 8601>", "source": "...", "type": "...",
     "dlq_retry": 0, "payload": {"transaction": {...}}}

sent to the FIFO queue with a ``MessageGroupId`` and a ``MessageDeduplicationId``.
A *duplicate* reuses a ``message_id`` with a new deduplication id (SQS cannot drop it,
the consumer must); an *invalid* body can never be stored and must reach the DLQ.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

VALID = "valid"
DUPLICATE = "duplicate"
CONFLICTING = "conflicting_duplicate"
INVALID = "invalid"
FROM_FILE = "from_file"
MAX_SEND_BATCH = 10

SOURCE = "local-producer"
TYPE = "transaction.created"


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


def demo_workload(
    messages: int, groups: int, duplicates: int, invalid: int, *, seed: int = 7, conflicting_every: int = 5
) -> list[Outgoing]:
    """``messages`` valid bodies over ``groups`` groups, then duplicates and invalid bodies mixed in.

    Every ``conflicting_every``-th duplicate changes the body under the same ``message_id``.
    Duplicates and invalid bodies are inserted after their original, in the same group.
    """
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


def send_all(sqs: SQSClient, queue_url: str, plan: Sequence[Outgoing]) -> list[Outgoing]:
    """SendMessageBatch, 10 at a time, in plan order; returns the plan with SQS message ids."""
    sent: list[Outgoing] = []
    for start in range(0, len(plan), MAX_SEND_BATCH):
        sent.extend(send_batch(sqs, queue_url, plan[start : start + MAX_SEND_BATCH], start))
    return sent


class Feeder:
    """Sends the plan while the poller drains, keeping at most about ``window`` messages queued.

    A producer and the event source mapping run at once in production too; and moto's
    queue attributes cost time in proportion to the messages queued.
    """

    def __init__(self, sqs: SQSClient, queue_url: str, plan: Sequence[Outgoing], window: int = 50) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._pending = list(plan)
        self._window = window
        self.sent: list[Outgoing] = []

    def feed(self, depth: int) -> bool:
        """Send batches until the window is full; True while some of the plan is unsent."""
        while self._pending and depth < self._window:
            chunk, self._pending = self._pending[:MAX_SEND_BATCH], self._pending[MAX_SEND_BATCH:]
            self.sent.extend(send_batch(self._sqs, self._queue_url, chunk, len(self.sent)))
            depth += len(chunk)
        return bool(self._pending)


def send_batch(sqs: SQSClient, queue_url: str, items: Sequence[Outgoing], first_index: int) -> list[Outgoing]:
    """One SendMessageBatch, in order; returns the items with their SQS message ids.

    A refused entry is sent again on its own with the same deduplication id, so a retry
    never makes a second copy; the batch's later entries of its group may overtake it.
    """
    chunk = list(items)
    entries = [
        {"Id": str(i), "MessageBody": item.body, "MessageGroupId": item.group, "MessageDeduplicationId": item.dedup_id}
        for i, item in enumerate(chunk)
    ]
    answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
    ids = {int(entry["Id"]): entry["MessageId"] for entry in answer.get("Successful", [])}
    for entry in answer.get("Failed", []):
        item = chunk[int(entry["Id"])]
        retried = sqs.send_message(
            QueueUrl=queue_url, MessageBody=item.body, MessageGroupId=item.group, MessageDeduplicationId=item.dedup_id
        )
        ids[int(entry["Id"])] = retried["MessageId"]
    return [replace(item, sqs_message_id=ids[i], sent_index=first_index + i) for i, item in enumerate(chunk)]


def count_kinds(plan: Iterable[Outgoing]) -> dict[str, int]:
    counts = dict.fromkeys((VALID, DUPLICATE, CONFLICTING, INVALID, FROM_FILE), 0)
    for item in plan:
        counts[item.kind] += 1
    return counts


def _dedup(rng: random.Random) -> str:
    return uuid.UUID(int=rng.getrandbits(128), version=4).hex
