"""What ``make e2e`` says about a run, from what was sent and what the emulator holds afterwards.

Pure functions: the table's items, the DLQ's messages, the queue's depth and the function's log
lines (read back from CloudWatch Logs) go in, and each statement comes out true or false, with
what contradicts it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from consumer.config import Config
from consumer.message import body_sha256
from consumer.telemetry import METRIC_NAMES
from local.capture import HandlerOutput
from local.producer import CONFLICTING, DUPLICATE, INVALID, VALID, Outgoing, count_kinds
from local.report import DlqMessage, unaccounted

PLATFORM_PREFIXES = ("START RequestId:", "END RequestId:", "REPORT RequestId:")


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    problems: tuple[str, ...] = ()


@dataclass
class LogView:
    """The function's CloudWatch Logs, one invocation (log stream) after another."""

    invocations: list[list[str]] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [line for invocation in self.invocations for line in invocation]

    def output(self) -> HandlerOutput:
        output = HandlerOutput()
        for line in self.lines:
            output.write(line + "\n")
        return output

    def metric_blobs(self) -> int:
        """EMF blobs with the consumer's per-invocation metrics: each invocation ends with one."""
        parsed = (_json_object(line) for line in self.lines)
        return sum(1 for line in parsed if line is not None and "_aws" in line and "MessagesDeleted" in line)

    def steps(self) -> list[dict[str, Any]]:
        """The consumer's JSON log lines (those with an ``action``), in order."""
        parsed = (_json_object(line) for line in self.lines)
        return [line for line in parsed if line is not None and "action" in line]

    def foreign(self) -> list[str]:
        """Lines that are neither platform lines, nor JSON log lines, nor EMF: tracebacks, prints."""
        return [
            line
            for line in self.lines
            if line.strip() and not line.startswith(PLATFORM_PREFIXES) and _json_object(line) is None
        ]


def _json_object(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def check_run(
    sent: Sequence[Outgoing],
    items: Mapping[str, Mapping[str, Any]],
    dlq: Sequence[DlqMessage],
    queue_left: int,
    logs: LogView,
    config: Config,
) -> list[Check]:
    """Each statement ``make e2e`` makes about the run, true or not, with what contradicts it."""
    return [
        _accounted(sent, items, dlq, config),
        _table(sent, items),
        _dead_letters(sent, dlq),
        Check(queue_left == 0, "the queue is empty", () if queue_left == 0 else (f"{queue_left} messages left",)),
        _order(sent, items, logs),
        _received_once(sent, logs),
        _log_shape(logs),
        _metrics(sent, logs),
    ]


def _accounted(
    sent: Sequence[Outgoing], items: Mapping[str, Mapping[str, Any]], dlq: Sequence[DlqMessage], config: Config
) -> Check:
    missing = unaccounted(sent, items, dlq, config)
    return Check(
        not missing,
        f"all {len(sent)} messages accounted for: in the table, in the DLQ, or a duplicate of a stored key",
        tuple(f"unaccounted: SQS message {message_id}" for message_id in missing),
    )


def _table(sent: Sequence[Outgoing], items: Mapping[str, Mapping[str, Any]]) -> Check:
    valid = [message for message in sent if message.kind == VALID]
    problems: list[str] = []
    for message in valid:
        item = items.get(str(message.key))
        meta = (item or {}).get("_meta", {})
        if item is None:
            problems.append(f"no item for {message.key} (SQS message {message.sqs_message_id})")
        elif meta.get("sqs_message_id") != message.sqs_message_id:
            problems.append(f"{message.key} written from {meta.get('sqs_message_id')}, not its first copy")
        elif meta.get("body_sha256") != body_sha256(message.body):
            problems.append(f"{message.key}: stored body hash differs from the body sent")
    extra = len(items) - len(valid)
    if extra:
        problems.append(f"{len(items)} items for {len(valid)} valid messages")
    return Check(
        not problems,
        f"the table holds exactly the {len(valid)} valid messages, each from its first copy "
        "(duplicates and conflicting duplicates skipped)",
        tuple(problems),
    )


def _dead_letters(sent: Sequence[Outgoing], dlq: Sequence[DlqMessage]) -> Check:
    invalid = [message for message in sent if message.kind == INVALID]
    by_original = {message.original_id: message for message in dlq}
    problems: list[str] = []
    for message in invalid:
        dead = by_original.get(message.sqs_message_id)
        if dead is None:
            problems.append(f"invalid body {message.body[:40]!r} not in the DLQ")
        elif dead.body != message.body:
            problems.append(f"DLQ copy of {message.sqs_message_id} differs from the body sent")
        elif dead.reason != message.expected_reason:
            problems.append(f"{message.sqs_message_id}: reason {dead.reason!r}, expected {message.expected_reason!r}")
    if len(dlq) != len(invalid):
        problems.append(f"{len(dlq)} messages in the DLQ for {len(invalid)} invalid bodies")
    return Check(
        not problems,
        f"the DLQ holds exactly the {len(invalid)} invalid bodies, byte-identical, each with its reason",
        tuple(problems),
    )


def _order(sent: Sequence[Outgoing], items: Mapping[str, Mapping[str, Any]], logs: LogView) -> Check:
    """Per group, in the order sent: rising SQS sequence numbers, processing times and save log lines."""
    valid = sorted((message for message in sent if message.kind == VALID), key=lambda message: message.sent_index)
    by_group: dict[str, list[Outgoing]] = defaultdict(list)
    for message in valid:
        by_group[message.group].append(message)
    problems: list[str] = []
    for group, messages in sorted(by_group.items()):
        metas = [items.get(str(message.key), {}).get("_meta", {}) for message in messages]
        sequences = [int(meta.get("sequence_number", -1)) for meta in metas]
        if sequences != sorted(sequences) or len(set(sequences)) != len(sequences):
            problems.append(f"{group}: SQS sequence numbers not rising in the order sent")
        processed = [str(meta.get("processed_at", "")) for meta in metas]
        if processed != sorted(processed):
            problems.append(f"{group}: processed_at not rising in the order sent")
    position = {message.sqs_message_id: message for message in valid}
    saved: dict[str, list[int]] = defaultdict(list)
    for step in logs.steps():
        if step.get("action") == "message_outcome" and step.get("details", {}).get("outcome") == "saved":
            found = position.get(str(step.get("details", {}).get("sqs_message_id")))
            if found is not None:
                saved[found.group].append(found.sent_index)
    for group, indexes in sorted(saved.items()):
        if indexes != sorted(indexes):
            problems.append(f"{group}: saved outcome lines not in the order sent")
    return Check(
        not problems,
        f"per-group order kept in {len(by_group)} groups: sequence numbers, processed_at and the "
        "function's saved outcome lines follow the order sent",
        tuple(problems),
    )


def _received_once(sent: Sequence[Outgoing], logs: LogView) -> Check:
    received = Counter(
        str(step.get("details", {}).get("sqs_message_id"))
        for step in logs.steps()
        if step.get("action") == "message_outcome"
    )
    problems = [
        f"SQS message {message.sqs_message_id} has {received[message.sqs_message_id]} outcome lines"
        for message in sent
        if received[message.sqs_message_id] != 1
    ]
    return Check(
        not problems,
        f"the function logged one outcome line for each of the {len(sent)} messages (no redelivery)",
        tuple(problems),
    )


def _log_shape(logs: LogView) -> Check:
    steps = logs.steps()
    shapeless = [step for step in steps if not {"trace_id", "action", "status", "details"} <= step.keys()]
    foreign = logs.foreign()
    problems = [f"not JSON: {line[:100]!r}" for line in foreign[:10]]
    problems += [f"log line without trace_id/action/status/details: {step}" for step in shapeless[:10]]
    return Check(
        not foreign and not shapeless,
        f"{len(logs.lines)} log lines read back from CloudWatch Logs: every line of the function's is JSON "
        "(trace_id, action, status, details) or EMF",
        tuple(problems),
    )


def expected_metrics(sent: Sequence[Outgoing]) -> dict[str, int]:
    kinds = count_kinds(sent)
    duplicates = kinds[DUPLICATE] + kinds[CONFLICTING]
    expected = dict.fromkeys(METRIC_NAMES, 0)
    expected.update(
        MessagesSaved=kinds[VALID],
        DuplicateMessages=duplicates,
        ConflictingDuplicates=kinds[CONFLICTING],
        InvalidMessages=kinds[INVALID],
        MessagesQuarantined=kinds[INVALID],
        MessagesDeleted=len(sent),
    )
    return expected


def _metrics(sent: Sequence[Outgoing], logs: LogView) -> Check:
    metrics = logs.output().metrics
    expected = expected_metrics(sent)
    problems = [
        f"{name} {metrics.get(name, 0):g}, expected {value}"
        for name, value in expected.items()
        if metrics.get(name, 0) != value
    ]
    return Check(
        not problems,
        "EMF metrics read back from the logs match: " + ", ".join(f"{name} {n}" for name, n in expected.items()),
        tuple(problems),
    )
