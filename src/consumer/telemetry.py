"""Powertools Logger and Metrics, and the one shape every log line has."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

from consumer.config import metrics_namespace, service_name
from consumer.exceptions import ConfigurationError, InvalidEventError

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

# No `location`: it would always name log_step, on every line.
logger = Logger(service=service_name(), location=None)
metrics = Metrics(namespace=metrics_namespace(), service=service_name())

# Metric names are a contract: alarms and dashboards outside this repo use them.
MESSAGES_SAVED = "MessagesSaved"
DUPLICATE_MESSAGES = "DuplicateMessages"
CONFLICTING_DUPLICATES = "ConflictingDuplicates"
INVALID_MESSAGES = "InvalidMessages"
MESSAGES_QUARANTINED = "MessagesQuarantined"
MESSAGES_DELETED = "MessagesDeleted"
BATCH_ITEM_FAILURES = "BatchItemFailures"
DYNAMODB_CHECK_ERROR = "DynamoDBCheckError"
DYNAMODB_SAVE_ERROR = "DynamoDBSaveError"
SQS_GET_URL_ERROR = "SQSGetURLError"
SQS_DELETE_ERROR = "SQSDeleteError"
# Saved or duplicate records keyed by MessageDeduplicationId or messageId: the key path found nothing.
IDEMPOTENCY_KEY_FALLBACKS = "IdempotencyKeyFallbacks"
FUNCTION_TIMEOUT_TOO_SHORT = "FunctionTimeoutTooShort"
# Bodies saved with their whole body in S3 (PAYLOAD_BUCKET): their item would pass DynamoDB's 400 KB.
PAYLOADS_OFFLOADED = "PayloadsOffloaded"
# SQS Extended Client pointers whose payload was read from S3 (as UTF-8 text).
POINTERS_READ = "PointersRead"
# An S3 read or write failed after retries: the record is retried.
S3_PAYLOAD_ERROR = "S3PayloadError"
METRIC_NAMES = (
    MESSAGES_SAVED,
    DUPLICATE_MESSAGES,
    CONFLICTING_DUPLICATES,
    INVALID_MESSAGES,
    MESSAGES_QUARANTINED,
    MESSAGES_DELETED,
    BATCH_ITEM_FAILURES,
    DYNAMODB_CHECK_ERROR,
    DYNAMODB_SAVE_ERROR,
    SQS_GET_URL_ERROR,
    SQS_DELETE_ERROR,
    IDEMPOTENCY_KEY_FALLBACKS,
    FUNCTION_TIMEOUT_TOO_SHORT,
    PAYLOADS_OFFLOADED,
    POINTERS_READ,
    S3_PAYLOAD_ERROR,
)

INFO = "info"
SUCCESS = "success"
WARNING = "warning"
ERROR = "error"

# Per step of a record: DEBUG on the happy path (the record's outcome line says it at INFO);
# a warning or an error keeps its own line at its level.
_STEP_EMITTERS: dict[str, Callable[..., None]] = {
    INFO: logger.debug,
    SUCCESS: logger.debug,
    WARNING: logger.warning,
    ERROR: logger.error,
}
_LINE_EMITTERS: dict[str, Callable[..., None]] = {
    INFO: logger.info,
    SUCCESS: logger.info,
    WARNING: logger.warning,
    ERROR: logger.error,
}
OUTCOME_ACTION = "message_outcome"
INVOCATION_ACTION = "invocation"


def log_step(trace_id: str, action: str, status: str, details: Mapping[str, Any]) -> None:
    """One JSON line for one step of one record (or of one queue, for URL lookups)."""
    _emit(_STEP_EMITTERS, trace_id, action, status, details)


def log_outcome(trace_id: str, status: str, details: Mapping[str, Any]) -> None:
    """The one line a record leaves at INFO: where it ended, and why when it is not saved."""
    _emit(_LINE_EMITTERS, trace_id, OUTCOME_ACTION, status, details)


def _emit(
    emitters: Mapping[str, Callable[..., None]], trace_id: str, action: str, status: str, details: Mapping[str, Any]
) -> None:
    emitters[status](
        f"{action}: {status}",
        extra={"trace_id": trace_id, "action": action, "status": status, "details": dict(details)},
    )


class _Container:
    cold_start = True


container = _Container()


def log_invocation(handler: _Handler) -> _Handler:
    """The Lambda context once per invocation, on its own line; each other line carries only the request id.

    Powertools' ``inject_lambda_context`` puts the whole context (about 250 bytes) on every line,
    which is most of a record's log cost at scale.
    """

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        cold_start, container.cold_start = container.cold_start, False
        logger.clear_state()
        logger.append_keys(function_request_id=context.aws_request_id)
        details: dict[str, Any] = {
            "cold_start": cold_start,
            "function_name": context.function_name,
            "function_memory_size": context.memory_limit_in_mb,
            "function_arn": context.invoked_function_arn,
            "records": len(event.get("Records") or []) if isinstance(event, Mapping) else 0,
        }
        try:
            response = handler(event, context)
        except Exception as error:
            # Our own errors say what to change; any other's message might quote an event.
            details["error_type"] = type(error).__name__
            if isinstance(error, ConfigurationError | InvalidEventError):
                details["error"] = str(error)
            _emit(_LINE_EMITTERS, context.aws_request_id, INVOCATION_ACTION, ERROR, details)
            raise
        details["batch_item_failures"] = len(response.get("batchItemFailures", []))
        _emit(_LINE_EMITTERS, context.aws_request_id, INVOCATION_ACTION, SUCCESS, details)
        return response

    return wrapper  # type: ignore[return-value]
