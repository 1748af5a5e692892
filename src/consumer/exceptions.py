"""Errors the consumer raises or turns into record outcomes."""

from __future__ import annotations


class ConfigurationError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


class InvalidEventError(ValueError):
    """The Lambda event is not an SQS event; nothing was processed or deleted."""


class InvalidMessageError(ValueError):
    """A message can never be stored: it goes to the dead-letter queue with this reason."""

    def __init__(self, reason: str, details: str) -> None:
        super().__init__(f"{reason}: {details}")
        self.reason = reason
        self.details = details


class RecordFailure(Exception):
    """A record could not be handled now; SQS must deliver it again."""

    metric: str | None = None


class DynamoDBSaveError(RecordFailure):
    """DynamoDB answered the write with an error after boto3's retries."""

    metric = "DynamoDBSaveError"


class DynamoDBCheckError(RecordFailure):
    """The write's outcome is unknown (timeout or lost connection); redelivery settles it."""

    metric = "DynamoDBCheckError"


class StoreConfigurationError(DynamoDBSaveError):
    """DynamoDB refused the request itself (table or configuration is wrong, not the message)."""


class OutOfTime(RecordFailure):
    """An AWS call was not sent: it could not end before the invocation's deadline."""


class PayloadStoreError(RecordFailure):
    """S3 refused, or did not answer, a body's write or a pointer's read after retries."""

    metric = "S3PayloadError"


class QuarantineError(RecordFailure):
    """An invalid message could not be sent to the dead-letter queue."""


class QueueLookupError(Exception):
    """GetQueueUrl failed: the queue's records cannot be deleted by the consumer."""
