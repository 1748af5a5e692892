"""One invocation: every record ends saved, duplicate, quarantined, or reported for a retry.

Records of distinct ordering units (FIFO message groups; single records of a
standard queue) run concurrently; records of one unit run strictly in order,
and the first that fails holds back the rest of its unit. Metrics are added
from this thread only: Powertools' metric store is not thread-safe.
"""

from __future__ import annotations

import enum
import sys
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from consumer import telemetry
from consumer.config import Config
from consumer.exceptions import (
    InvalidEventError,
    InvalidMessageError,
    OutOfTime,
    QueueLookupError,
    RecordFailure,
    StoreConfigurationError,
)
from consumer.extended_client import S3Pointer, pointer_of
from consumer.large_messages import BodyUpload, LargeMessages
from consumer.message import KEY_FROM_BODY, body_sha256, parse_message
from consumer.message_store import MessageStore, SaveOutcome
from consumer.queue_gateway import MAX_DELETE_BATCH, DeleteResult, QueueGateway
from consumer.sqs_event import SqsRecord, parse_event
from consumer.telemetry import ERROR, INFO, SUCCESS, WARNING, log_outcome, log_step
from consumer.time_budget import (
    MIN_ATTEMPT_SECONDS,
    MIN_FUNCTION_TIMEOUT_SECONDS,
    RESERVE_SECONDS,
    CallBudget,
    Deadline,
)


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
    # Why it is not saved: a quarantine reason, what held it back, or the error that failed it.
    note: str | None = None
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
    # What became of each handled record's delete, by id() of its record.
    by_record: dict[int, str] = field(default_factory=dict)


# The outcome line's status, whose level follows it: only the happy paths are INFO.
_OUTCOME_STATUS = {
    Outcome.SAVED: SUCCESS,
    Outcome.DUPLICATE: INFO,
    Outcome.CONFLICTING_DUPLICATE: WARNING,
    Outcome.QUARANTINED: WARNING,
    Outcome.FAILED: ERROR,
    Outcome.NOT_ATTEMPTED: WARNING,
}
_OUTCOME_NAME = {**{outcome: outcome.value for outcome in Outcome}, Outcome.NOT_ATTEMPTED: "held_back"}


_MIN_ATTEMPT_MS = int(MIN_ATTEMPT_SECONDS * 1000)
_LEFT_TO_LAMBDA = "Lambda deletes it (not reported as failed)"


class BatchConsumer:
    def __init__(
        self,
        config: Config,
        store: MessageStore,
        queues: QueueGateway,
        budget: CallBudget,
        large: LargeMessages,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._store = store
        self._queues = queues
        self._budget = budget
        self._large = large
        self._clock = clock
        self._reported_short_timeout = False

    def process(self, event: object, context: LambdaContextLike) -> dict[str, list[dict[str, str]]]:
        remaining_ms = context.get_remaining_time_in_millis()
        deadline = Deadline.from_remaining_ms(remaining_ms)
        try:
            records = parse_event(event)
        except InvalidEventError as error:
            log_step("event", "event_parse", ERROR, {"error": str(error), "hint": "nothing was processed or deleted"})
            raise
        too_short = not deadline.allows_attempt()
        if too_short:
            self._report_short_timeout(remaining_ms)
        units = _ordering_units(records)
        workers = max(1, min(self._config.max_concurrency, len(units)))
        with self._budget.until(deadline), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="group") as pool:
            # Raises ConfigurationError, naming the setting, for a table that does not fit the configuration.
            unchecked = self._store.check_key_schema_once()
            if unchecked is not None:
                log_step("configuration", "dynamodb_describe_table", WARNING, {"error": unchecked})
            # Each unit parses its own records: one group's write is on the wire while others still parse.
            by_unit = list(pool.map(lambda unit: self._run_unit(unit, deadline), units))
            order = {id(record): index for index, record in enumerate(records)}
            results = sorted((result for unit in by_unit for result in unit), key=lambda r: order[id(r.record)])
            deletes = self._delete_handled([result for result in results if result.handled], pool)
        _log_outcomes(results, deletes)
        failures = [{"itemIdentifier": result.record.message_id} for result in results if not result.handled]
        _add_metrics(results, deletes, len(failures), too_short)
        return {"batchItemFailures": failures}

    def _report_short_timeout(self, remaining_ms: int) -> None:
        """Once per container: every invocation of this function is too short for any AWS call."""
        if self._reported_short_timeout:
            return
        self._reported_short_timeout = True
        needed_ms = int((RESERVE_SECONDS + MIN_ATTEMPT_SECONDS) * 1000)
        details = {
            "remaining_ms_at_start": remaining_ms,
            "needed_ms": needed_ms,
            "minimum_timeout_seconds": MIN_FUNCTION_TIMEOUT_SECONDS,
            "error": f"the invocation started with {remaining_ms} ms; one AWS call attempt and the reserve need"
            f" {needed_ms} ms: no record can be handled",
            "hint": f"set the function's timeout to {MIN_FUNCTION_TIMEOUT_SECONDS} s or more (FunctionTimeout in"
            " template.yaml); until then every record is reported as failed and SQS moves it to the DLQ after"
            " maxReceiveCount deliveries",
        }
        log_step("function", "time_budget", ERROR, details)

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
            self._log_unexpected(record.message_id, "message_parse")
            return Prepared(record, record.message_id, body_sha256(record.body), failure=type(error).__name__)
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

    def _run_unit(self, unit: Sequence[SqsRecord], deadline: Deadline) -> list[RecordResult]:
        results: list[RecordResult] = []
        for position, record in enumerate(unit):
            if not deadline.allows_attempt():
                reason = (
                    f"{deadline.remaining_ms()} ms left before the deadline; one AWS call attempt needs"
                    f" {_MIN_ATTEMPT_MS} ms"
                )
                return results + _held_back(unit[position:], reason)
            result = self._handle(self._prepare(record))
            results.append(result)
            if not result.handled:
                reason = f"an earlier record of its message group ({record.message_id}) failed"
                return results + _held_back(unit[position + 1 :], reason)
        return results

    def _handle(self, prepared: Prepared) -> RecordResult:
        record, trace_id = prepared.record, prepared.trace_id
        try:
            if prepared.pointer is not None:
                read = self._read_pointer(prepared)
                return replace(self._handle(read), pointer_read=read.pointer_read)
            if prepared.failure is not None:
                return RecordResult(
                    record, trace_id, Outcome.FAILED, error_metric=prepared.failure_metric, note=prepared.failure
                )
            if prepared.invalid is not None:
                return self._quarantine(prepared, prepared.invalid)
            assert prepared.item is not None
            return self._save(prepared, prepared.item)
        except Exception:  # noqa: BLE001 - a bug here must fail one record, not the batch
            self._log_unexpected(trace_id, "message_handle")
            return RecordResult(record, trace_id, Outcome.FAILED, note="unexpected exception")

    def _read_pointer(self, prepared: Prepared) -> Prepared:
        """The payload a pointer names, read now (never for a held-back record) and parsed as its body;
        the record itself stays the pointer, which is what a quarantine forwards."""
        assert prepared.pointer is not None
        try:
            payload = self._large.read(prepared.record, prepared.pointer)
        except InvalidMessageError as invalid:
            return replace(prepared, pointer=None, invalid=invalid)
        except RecordFailure as failure:
            return replace(prepared, pointer=None, failure=type(failure).__name__, failure_metric=failure.metric)
        return replace(self._parse(payload, prepared.pointer), record=prepared.record, pointer_read=True)

    def _save(self, prepared: Prepared, item: dict[str, Any]) -> RecordResult:
        record, trace_id = prepared.record, prepared.trace_id
        if prepared.upload is not None:
            try:  # S3 first: an item never points at nothing
                self._large.write(prepared.upload, trace_id, record.message_id)
            except RecordFailure as failure:
                return RecordResult(
                    record, trace_id, Outcome.FAILED, error_metric=failure.metric, note=type(failure).__name__
                )
        details: dict[str, Any] = {"table": self._store.table_name, "sqs_message_id": record.message_id}
        try:
            saved = self._store.save(item, prepared.body_sha256)
        except RecordFailure as failure:
            details.update(error_type=type(failure).__name__, error=str(failure))
            if isinstance(failure, StoreConfigurationError):
                details["hint"] = "the table or the configuration is wrong, not the message; it is not quarantined"
            log_step(trace_id, "dynamodb_save", WARNING if isinstance(failure, OutOfTime) else ERROR, details)
            return RecordResult(
                record, trace_id, Outcome.FAILED, error_metric=failure.metric, note=type(failure).__name__
            )
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
                WARNING if isinstance(failure, OutOfTime) else ERROR,
                {**details, "error_type": type(failure).__name__, "send_error": str(failure)},
            )
            return RecordResult(record, trace_id, Outcome.FAILED, invalid=True, note=type(failure).__name__)
        details.update(dlq_url=quarantined.dlq_url, dlq_message_id=quarantined.dlq_message_id)
        if quarantined.dropped_attributes:
            details["attributes_not_carried"] = list(quarantined.dropped_attributes)
        if quarantined.body_only:
            details["sent_with"] = "the body only: SQS refused it even with the reason (no room left in its 1 MiB)"
        elif quarantined.reason_only:
            details["sent_with"] = "the reason only: SQS refused the message with all its attributes"
        # In the DLQ without some of its annotations: an operator must find this line at INFO.
        log_step(trace_id, "message_quarantined", WARNING if "sent_with" in details else SUCCESS, details)
        return RecordResult(record, trace_id, Outcome.QUARANTINED, invalid=True, note=invalid.reason)

    def _delete_handled(self, handled: Sequence[RecordResult], pool: ThreadPoolExecutor) -> DeleteSummary:
        """Each call is sent only if it can end before the deadline; what is not sent, Lambda deletes."""
        by_queue: dict[str, list[RecordResult]] = defaultdict(list)
        for result in handled:
            by_queue[result.record.event_source_arn].append(result)
        chunks: list[tuple[str, list[RecordResult]]] = []
        lookup_failures = 0
        fate: dict[int, str] = {}
        for queue_arn, results in by_queue.items():
            cached = self._queues.cached_queue_url(queue_arn)
            try:
                url = cached or self._queues.queue_url(queue_arn)
            except OutOfTime as late:
                _left_to_lambda(results, str(late), fate)
                continue
            except QueueLookupError as error:
                lookup_failures += 1
                fate.update((id(result.record), "lookup_failed") for result in results)
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
            (results for _, results in chunks), pool.map(self._delete_chunk, chunks), strict=True
        ):
            if isinstance(answer, OutOfTime):
                _left_to_lambda(chunk_results, str(answer), fate)
                continue
            trace = {id(result.record): result.trace_id for result in chunk_results}
            fate.update((id(record), "deleted") for record in answer.deleted)
            fate.update((id(record), "delete_failed") for record, _ in answer.failed)
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
        return DeleteSummary(deleted=deleted, failed=failed, lookup_failures=lookup_failures, by_record=fate)

    def _delete_chunk(self, chunk: tuple[str, list[RecordResult]]) -> DeleteResult | OutOfTime:
        url, results = chunk
        try:
            return self._queues.delete(url, [result.record for result in results])
        except OutOfTime as late:
            return late

    def _log_unexpected(self, trace_id: str, action: str) -> None:
        """A bug: the record is reported as failed and retried.

        The exception's message may quote the body, so unless LOG_MESSAGE_BODY is true only its
        type and the frames of its traceback are logged.
        """
        details: dict[str, Any] = {"error": "unexpected exception"}
        extra = {"trace_id": trace_id, "action": action, "status": ERROR, "details": details}
        if self._config.log_message_body:
            telemetry.logger.exception(f"{action}: {ERROR}", extra=extra)
            return
        error = sys.exc_info()[1]
        if error is not None:
            details["error_type"] = type(error).__name__
            details["traceback"] = "".join(traceback.format_tb(error.__traceback__))
        telemetry.logger.error(f"{action}: {ERROR}", extra=extra)


def _held_back(records: Sequence[SqsRecord], reason: str) -> list[RecordResult]:
    """Not attempted, and not parsed either: the key is unknown, so the trace_id is the SQS messageId."""
    results: list[RecordResult] = []
    for record in records:
        details = {"sqs_message_id": record.message_id, "message_group_id": record.group_id, "reason": reason}
        log_step(record.message_id, "message_skipped", WARNING, details)
        results.append(RecordResult(record, record.message_id, Outcome.NOT_ATTEMPTED, note=reason))
    return results


def _left_to_lambda(results: Iterable[RecordResult], reason: str, fate: dict[int, str]) -> None:
    for result in results:
        fate[id(result.record)] = "left_to_lambda"
        details = {"sqs_message_id": result.record.message_id, "skipped": f"{reason}; {_LEFT_TO_LAMBDA}"}
        log_step(result.trace_id, "sqs_delete_message", WARNING, details)


def _log_outcomes(results: Sequence[RecordResult], deletes: DeleteSummary) -> None:
    """One line per record, in the batch's order: the only line of a record saved or skipped at INFO."""
    for result in results:
        record = result.record
        details: dict[str, Any] = {"outcome": _OUTCOME_NAME[result.outcome], "sqs_message_id": record.message_id}
        if record.group_id is not None:
            details["message_group_id"] = record.group_id
        if result.note is not None:
            details["error" if result.outcome is Outcome.FAILED else "reason"] = result.note
        if result.pointer_read:
            details["pointer_read"] = True
        if result.offloaded:
            details["offloaded"] = True
        if result.handled:
            details["delete"] = deletes.by_record.get(id(record), "not_sent")
        log_outcome(result.trace_id, _OUTCOME_STATUS[result.outcome], details)


def _ordering_units(records: Iterable[SqsRecord]) -> list[list[SqsRecord]]:
    units: dict[str, list[SqsRecord]] = {}
    for record in records:
        units.setdefault(record.ordering_key, []).append(record)
    return list(units.values())


def _add_metrics(results: Sequence[RecordResult], deletes: DeleteSummary, failures: int, too_short: bool) -> None:
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
        telemetry.FUNCTION_TIMEOUT_TOO_SHORT: int(too_short),
        telemetry.PAYLOADS_OFFLOADED: sum(1 for result in results if result.offloaded),
        telemetry.POINTERS_READ: sum(1 for result in results if result.pointer_read),
        telemetry.S3_PAYLOAD_ERROR: errors[telemetry.S3_PAYLOAD_ERROR],
    }
    for name, value in counts.items():
        telemetry.metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
