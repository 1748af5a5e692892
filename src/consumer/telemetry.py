"""Powertools Logger and Metrics, and the one shape every log line has."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from consumer.config import metrics_namespace, service_name

logger = Logger(service=service_name())
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
    PAYLOADS_OFFLOADED,
    POINTERS_READ,
    S3_PAYLOAD_ERROR,
)

INFO = "info"
SUCCESS = "success"
WARNING = "warning"
ERROR = "error"

_EMITTERS: dict[str, Callable[..., None]] = {
    INFO: logger.info,
    SUCCESS: logger.info,
    WARNING: logger.warning,
    ERROR: logger.error,
}


def log_step(trace_id: str, action: str, status: str, details: Mapping[str, Any]) -> None:
    """One JSON line for one step of one record (or of one queue, for URL lookups)."""
    _EMITTERS[status](
        f"{action}: {status}",
        extra={"trace_id": trace_id, "action": action, "status": status, "details": dict(details)},
    )
