"""One invocation: every record ends saved, duplicate, quarantined, or reported for a retry.

Records of distinct ordering units (FIFO message groups; single records of a
standard queue) run concurrently; records of one unit run strictly in order,
and the first that fails holds back the rest of its unit. Metrics are added
from this thread only: Powertools' metric store is not thread-safe.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from consumer import telemetry
from consumer.aws_clients import DELETE_BUDGET_MS, SAFETY_MARGIN_MS
from consumer.config import Config
from consumer.exceptions import (
    InvalidEventError,
    InvalidMessageError,
    QueueLookupError,
    RecordFailure,
    StoreConfigurationError,
)
from consumer.extended_client import S3Pointer, pointer_of
from consumer.large_messages import BodyUpload, LargeMessages
from consumer.message import KEY_FROM_BODY, body_sha256, parse_message
from consumer.message_store import MessageStore, SaveOutcome
from consumer.queue_gateway import MAX_DELETE_BATCH, QueueGateway
from consumer.sqs_event import SqsRecord, parse_event
from consumer.telemetry import ERROR, INFO, SUCCESS, WARNING, log_step


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


class Outcome(enum.Enum):
    SAVED = "saved"
    DUPLICATE = "duplicate"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"


_HANDLED = {Outcome.SAVED, Outcome.DUPLICATE, Outcome.CONFLICTING_DUPLICATE, Outcome.QUARANTINED}
_FROM_SAVE = {
    SaveOutcome.SAVED: Outcome.SAVED,
    SaveOutcome.SAVED_BY_LOST_ATTEMPT: Outcome.SAVED,
    SaveOutcome.DUPLICATE: Outcome.DUPLICATE,
    SaveOutcome.CONFLICTING_DUPLICATE: Outcome.CONFLICTING_DUPLICATE,
}


@dataclass(frozen=True)
class Prepared:
    """A record after steps 1-3: an item to write, or the reason it never can be."""

    record: SqsRecord
    trace_id: str
    body_sha256: str
    item: dict[str, Any] | None = None
    invalid: InvalidMessageError | None = None
    failure: str | None = None
    key_fallback: bool = False
    # An SQS Extended Client pointer: its payload is read when the record's turn comes.
    pointer: S3Pointer | None = None
    pointer_read: bool = False
    # The body, written to S3 before the item that names it.
    upload: BodyUpload | None = None
    failure_metric: str | None = None


@dataclass(frozen=True)
class RecordResult:
    record: SqsRecord
    trace_id: str
    outcome: Outcome
    error_metric: str | None = None
    invalid: bool = False
    key_fallback: bool = False
    pointer_read: bool = False
    offloaded: bool = False

    @property
    def handled(self) -> bool:
        return self.outcome in _HANDLED


@dataclass(frozen=True)
class DeleteSummary:
    deleted: int = 0
    failed: int = 0
    lookup_failures: int = 0


class BatchConsumer:
    def __init__(
        self,
        config: Config,
        store: MessageStore,
        queues: QueueGateway,
        large: LargeMessages,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._store = store
        self._queues = queues
        self._large = large
        self._clock = clock

    def process(self, event: object, context: LambdaContextLike) -> dict[str, list[dict[str, str]]]:
        try:
            records = parse_event(event)
        except InvalidEventError as error:
            log_step("event", "event_parse", ERROR, {"error": str(error), "hint": "nothing was processed or deleted"})
            raise
        units = _ordering_units(records)
        workers = max(1, min(self._config.max_concurrency, len(units)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="group") as pool:
            # Each unit parses its own records: one group's write is on the wire while others still parse.
            by_unit = list(pool.map(lambda unit: self._run_unit(unit, context), units))
            order = {id(record): index for index, record in enumerate(records)}
            results = sorted((result for unit in by_unit for result in unit), key=lambda r: order[id(r.record)])
            deletes = self._delete_handled([result for result in results if result.handled], pool, context)
        failures = [{"itemIdentifier": result.record.message_id} for result in results if not result.handled]
        _add_metrics(results, deletes, len(failures))
        return {"batchItemFailures": failures}

    def _prepare(self, record: SqsRecord) -> Prepared:
        received: dict[str, Any] = {
            "sqs_message_id": record.message_id,
            "message_group_id": record.group_id,
            "receive_count": record.receive_count,
            "body_bytes": len(record.body.encode("utf-8", "surrogatepass")),
        }
        if self._config.log_message_body:
            received["body"] = record.body
        log_step(record.message_id, "message_received", INFO, received)
        return self._parse(record)

    def _parse(self, record: SqsRecord, pointer: S3Pointer | None = None) -> Prepared:
        """Steps 2-3 on the body, or (``pointer`` given) on the payload ``record`` now carries as its body."""
        try:
            if pointer is None and (found := pointer_of(record)) is not None:
                return Prepared(record, record.message_id, body_sha256(record.body), pointer=found)
            message = parse_message(record, self._config.idempotency_key)
            item, upload = self._large.item(message, self._clock(), pointer)
        except InvalidMessageError as invalid:
            digest = body_sha256(record.body)
            details = {"reason": invalid.reason, "error": invalid.details, "body_sha256": digest}
            log_step(record.message_id, "message_parse", ERROR, details)
            return Prepared(record, record.message_id, digest, invalid=invalid)
        except Exception as error:  # noqa: BLE001 - a bug here must fail one record, not the batch
            _log_unexpected(record.message_id, "message_parse")
            failure = f"{type(error).__name__}: {error}"
            return Prepared(record, record.message_id, body_sha256(record.body), failure=failure)
        log_step(
            message.key,
            "message_parse",
            SUCCESS,
            {"sqs_message_id": record.message_id, "key_source": message.key_source},
        )
        fallback = message.key_source != KEY_FROM_BODY
        if fallback:
            # A path that finds nothing changes what "duplicate" means: say so for every record.
            details = {
                "sqs_message_id": record.message_id,
                "key_source": message.key_source,
                "hint": f"IDEMPOTENCY_KEY_JMESPATH={self._config.idempotency_key_path!r} found nothing in the body",
            }
            log_step(message.key, "idempotency_key_fallback", WARNING, details)
        # The message already carries its body's hash: no second pass over a body of up to 1 MiB.
        return Prepared(record, message.key, message.body_sha256, item=item, upload=upload, key_fallback=fallback)

    def _run_unit(self, unit: Sequence[SqsRecord], context: LambdaContextLike) -> list[RecordResult]:
        results: list[RecordResult] = []
        for position, record in enumerate(unit):
            remaining = context.get_remaining_time_in_millis()
            if remaining < SAFETY_MARGIN_MS:
                reason = f"{remaining} ms left, below the {SAFETY_MARGIN_MS} ms safety margin"
                return results + self._held_back(unit[position:], reason)
            result = self._handle(self._prepare(record))
            results.append(result)
            if not result.handled:
                reason = f"an earlier record of its message group ({record.message_id}) failed"
                return results + self._held_back(unit[position + 1 :], reason)
        return results

    def _held_back(self, records: Sequence[SqsRecord], reason: str) -> list[RecordResult]:
        """Not attempted; still parsed, so that its log lines carry the key like every other record's."""
        results: list[RecordResult] = []
        for record in records:
            prepared = self._prepare(record)
            details = {"sqs_message_id": record.message_id, "reason": reason}
            log_step(prepared.trace_id, "message_skipped", WARNING, details)
            results.append(RecordResult(record, prepared.trace_id, Outcome.NOT_ATTEMPTED))
        return results

    def _handle(self, prepared: Prepared) -> RecordResult:
        record, trace_id = prepared.record, prepared.trace_id
        try:
            if prepared.pointer is not None:
                read = self._read_pointer(prepared)
                return replace(self._handle(read), pointer_read=read.pointer_read)
            if prepared.failure is not None:
                return RecordResult(record, trace_id, Outcome.FAILED, error_metric=prepared.failure_metric)
            if prepared.invalid is not None:
                return self._quarantine(prepared, prepared.invalid)
            assert prepared.item is not None
            return self._save(prepared, prepared.item)
        except Exception:  # noqa: BLE001 - a bug here must fail one record, not the batch
            _log_unexpected(trace_id, "message_handle")
            return RecordResult(record, trace_id, Outcome.FAILED)

    def _read_pointer(self, prepared: Prepared) -> Prepared:
        """The payload a pointer names, read now (never for a held-back record) and parsed as its body;
        the record itself stays the pointer, which is what a quarantine forwards."""
        assert prepared.pointer is not None
        try:
            payload = self._large.read(prepared.record, prepared.pointer)
        except InvalidMessageError as invalid:
            return replace(prepared, pointer=None, invalid=invalid)
        except RecordFailure as failure:
            return replace(prepared, pointer=None, failure=str(failure), failure_metric=failure.metric)
        return replace(self._parse(payload, prepared.pointer), record=prepared.record, pointer_read=True)

    def _save(self, prepared: Prepared, item: dict[str, Any]) -> RecordResult:
        record, trace_id = prepared.record, prepared.trace_id
        if prepared.upload is not None:
            try:  # S3 first: an item never points at nothing
                self._large.write(prepared.upload, trace_id, record.message_id)
            except RecordFailure as failure:
                return RecordResult(record, trace_id, Outcome.FAILED, error_metric=failure.metric)
        details: dict[str, Any] = {"table": self._store.table_name, "sqs_message_id": record.message_id}
        try:
            saved = self._store.save(item, prepared.body_sha256)
        except RecordFailure as failure:
            details.update(error_type=type(failure).__name__, error=str(failure))
            if isinstance(failure, StoreConfigurationError):
                details["hint"] = "the table or the configuration is wrong, not the message; it is not quarantined"
            log_step(trace_id, "dynamodb_save", ERROR, details)
            return RecordResult(record, trace_id, Outcome.FAILED, error_metric=failure.metric)
        outcome = _FROM_SAVE[saved]
        if saved is SaveOutcome.SAVED_BY_LOST_ATTEMPT:
            details["result"] = "an attempt whose answer was lost wrote it; the retry found it"
        if outcome is Outcome.SAVED:
            log_step(trace_id, "dynamodb_save", SUCCESS, details)
        else:
            conflicting = outcome is Outcome.CONFLICTING_DUPLICATE
            log_step(trace_id, "dynamodb_save", INFO, {**details, "result": "key exists: condition failed"})
            skipped = {**details, "reason": "duplicate", "conflicting": conflicting}
            if conflicting:
                skipped["hint"] = "the stored body differs from this one; the first write was kept"
            log_step(trace_id, "message_skipped", WARNING if conflicting else INFO, skipped)
        return RecordResult(
            record,
            trace_id,
            outcome,
            key_fallback=prepared.key_fallback,
            offloaded=prepared.upload is not None and outcome is Outcome.SAVED,
        )

    def _quarantine(self, prepared: Prepared, invalid: InvalidMessageError) -> RecordResult:
        record, trace_id = prepared.record, prepared.trace_id
        details: dict[str, Any] = {
            "reason": invalid.reason,
            "error": invalid.details,
            "body_sha256": prepared.body_sha256,
            "message_group_id": record.group_id,
        }
        try:
            quarantined = self._queues.quarantine(record, invalid.reason, invalid.details)
        except RecordFailure as failure:
            log_step(
                trace_id,
                "message_quarantined",
                ERROR,
                {**details, "error_type": type(failure).__name__, "send_error": str(failure)},
            )
            return RecordResult(record, trace_id, Outcome.FAILED, invalid=True)
        details.update(dlq_url=quarantined.dlq_url, dlq_message_id=quarantined.dlq_message_id)
        if quarantined.dropped_attributes:
            details["attributes_not_carried"] = list(quarantined.dropped_attributes)
        if quarantined.reason_only:
            details["sent_with"] = "the reason only: SQS refused the message with all its attributes"
        log_step(trace_id, "message_quarantined", SUCCESS, details)
        return RecordResult(record, trace_id, Outcome.QUARANTINED, invalid=True)

    def _delete_handled(
        self, handled: Sequence[RecordResult], pool: ThreadPoolExecutor, context: LambdaContextLike
    ) -> DeleteSummary:
        remaining = context.get_remaining_time_in_millis()
        if handled and remaining < DELETE_BUDGET_MS:
            reason = f"{remaining} ms left, below the {DELETE_BUDGET_MS} ms a delete may take; Lambda deletes it"
            for result in handled:
                details = {"sqs_message_id": result.record.message_id, "skipped": reason}
                log_step(result.trace_id, "sqs_delete_message", WARNING, details)
            return DeleteSummary()
        by_queue: dict[str, list[RecordResult]] = defaultdict(list)
        for result in handled:
            by_queue[result.record.event_source_arn].append(result)
        chunks: list[tuple[str, list[RecordResult]]] = []
        lookup_failures = 0
        for queue_arn, results in by_queue.items():
            cached = self._queues.cached_queue_url(queue_arn)
            try:
                url = cached or self._queues.queue_url(queue_arn)
            except QueueLookupError as error:
                lookup_failures += 1
                log_step(
                    queue_arn,
                    "sqs_get_url",
                    ERROR,
                    {"queue_arn": queue_arn, "error": str(error), "not_deleted": len(results)},
                )
                continue
            if cached is None:
                log_step(queue_arn, "sqs_get_url", SUCCESS, {"queue_arn": queue_arn, "queue_url": url})
            chunks.extend((url, results[i : i + MAX_DELETE_BATCH]) for i in range(0, len(results), MAX_DELETE_BATCH))
        deleted = failed = 0
        for chunk_results, answer in zip(
            (results for _, results in chunks),
            pool.map(lambda chunk: self._queues.delete(chunk[0], [r.record for r in chunk[1]]), chunks),
            strict=True,
        ):
            trace = {id(result.record): result.trace_id for result in chunk_results}
            for record in answer.deleted:
                log_step(trace[id(record)], "sqs_delete_message", SUCCESS, {"sqs_message_id": record.message_id})
            for record, reason in answer.failed:
                log_step(
                    trace[id(record)],
                    "sqs_delete_message",
                    ERROR,
                    {"sqs_message_id": record.message_id, "error": reason},
                )
            deleted += len(answer.deleted)
            failed += len(answer.failed)
        return DeleteSummary(deleted=deleted, failed=failed, lookup_failures=lookup_failures)


def _log_unexpected(trace_id: str, action: str) -> None:
    """A bug, with its traceback; the record is reported as failed and retried."""
    extra = {"trace_id": trace_id, "action": action, "status": ERROR, "details": {"error": "unexpected exception"}}
    telemetry.logger.exception(f"{action}: {ERROR}", extra=extra)


def _ordering_units(records: Iterable[SqsRecord]) -> list[list[SqsRecord]]:
    units: dict[str, list[SqsRecord]] = {}
    for record in records:
        units.setdefault(record.ordering_key, []).append(record)
    return list(units.values())


def _add_metrics(results: Sequence[RecordResult], deletes: DeleteSummary, failures: int) -> None:
    outcomes = Counter(result.outcome for result in results)
    errors = Counter(result.error_metric for result in results if result.error_metric)
    counts = {
        telemetry.MESSAGES_SAVED: outcomes[Outcome.SAVED],
        telemetry.DUPLICATE_MESSAGES: outcomes[Outcome.DUPLICATE] + outcomes[Outcome.CONFLICTING_DUPLICATE],
        telemetry.CONFLICTING_DUPLICATES: outcomes[Outcome.CONFLICTING_DUPLICATE],
        telemetry.INVALID_MESSAGES: sum(1 for result in results if result.invalid),
        telemetry.MESSAGES_QUARANTINED: outcomes[Outcome.QUARANTINED],
        telemetry.MESSAGES_DELETED: deletes.deleted,
        telemetry.BATCH_ITEM_FAILURES: failures,
        telemetry.DYNAMODB_CHECK_ERROR: errors[telemetry.DYNAMODB_CHECK_ERROR],
        telemetry.DYNAMODB_SAVE_ERROR: errors[telemetry.DYNAMODB_SAVE_ERROR],
        telemetry.SQS_GET_URL_ERROR: deletes.lookup_failures,
        telemetry.SQS_DELETE_ERROR: deletes.failed,
        telemetry.IDEMPOTENCY_KEY_FALLBACKS: sum(1 for result in results if result.key_fallback),
        telemetry.PAYLOADS_OFFLOADED: sum(1 for result in results if result.offloaded),
        telemetry.POINTERS_READ: sum(1 for result in results if result.pointer_read),
        telemetry.S3_PAYLOAD_ERROR: errors[telemetry.S3_PAYLOAD_ERROR],
    }
    for name, value in counts.items():
        telemetry.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
