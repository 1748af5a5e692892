"""Dollars per million messages: the one calculation behind every cost figure in the docs (docs/cost.md).

``make bench`` feeds it what it measured (calls per message, milliseconds per invocation, log
bytes per message) and writes the tables to docs/results/cost.md. The prices and assumptions
are stated here once and printed with every table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# List prices, us-east-1, as published on the AWS pricing pages in 2025 (DynamoDB on-demand after its
# 2024-11-01 cut), free tiers ignored; not re-checked from the machine that ran the bench (no internet).
# Re-check https://aws.amazon.com/{sqs,dynamodb,cloudwatch,lambda}/pricing/ before quoting.
PRICES_AS_OF = "2025-06"
PRICE_SQS_FIFO_REQUEST = 0.50 / 1e6  # per 64 KB chunk of a request; a batch of 10 is one request
PRICE_DYNAMODB_WRITE_UNIT = 0.625 / 1e6  # on-demand; a PutItem up to 1 KB, conditional failures too
PRICE_DYNAMODB_READ_UNIT = 0.125 / 1e6  # on-demand; a strongly consistent GetItem up to 4 KB
PRICE_CLOUDWATCH_REQUEST = 0.01 / 1000  # PutMetricData, per request
PRICE_LOGS_INGESTED_GB = 0.50  # CloudWatch Logs (standard): JSON log lines and EMF blobs
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # arm64 (template.yaml: Architectures [arm64])
PRICE_LAMBDA_REQUEST = 0.20 / 1e6
PRICE_CUSTOM_METRIC_MONTH = 0.30
PRICE_ALARM_MONTH = 0.10
PRICE_DASHBOARD_MONTH = 3.00  # the first 3 dashboards of an account are free
PRICE_DYNAMODB_STORAGE_GB_MONTH = 0.25
PRICE_DYNAMODB_PITR_GB_MONTH = 0.20
PRICE_LOGS_STORAGE_GB_MONTH = 0.03
PRICE_S3_PUT = 0.005 / 1000  # S3 Standard, PUT/COPY/POST/LIST per request
PRICE_S3_GET = 0.0004 / 1000  # S3 Standard, GET per request
PRICE_S3_GB_MONTH = 0.023  # S3 Standard storage, first 50 TB, per GB-month

SQS_OPERATIONS = {"DeleteMessageBatch", "DeleteMessage", "GetQueueUrl", "GetQueueAttributes", "SendMessage"}
DYNAMODB_WRITES = {"PutItem"}
DYNAMODB_READS = {"GetItem"}
CLOUDWATCH_REQUESTS = {"PutMetricData"}

ASSUMPTIONS = (
    f"us-east-1 list prices as of {PRICES_AS_OF}, free tiers ignored (constants in `bench/cost.py`): "
    "SQS FIFO $0.50 per million requests (a batch of 10 is one request); DynamoDB on-demand $0.625 per million "
    "write units and $0.125 per million read units; CloudWatch `PutMetricData` $0.01 per 1,000; CloudWatch Logs "
    "ingestion $0.50 per GB; Lambda arm64 $0.0000133334 per GB-second and $0.20 per million invocations.",
    "Messages under 1 KB: one SQS request chunk, one DynamoDB write unit (a duplicate's failed conditional "
    "write costs the same).",
    "Every message also costs, whatever the function does: the producer's `SendMessage`, and per invocation "
    "one `ReceiveMessage` and one `DeleteMessageBatch` by the event source mapping. Not counted: its empty "
    "long polls while the queue is idle.",
    "Lambda duration is the bench's measured time per invocation (in one process on the machine above, with "
    "10 ms added to every AWS call); Lambda bills every invocation, so 1 message per invocation (sparse "
    "traffic) is the worst case.",
    "Logs: the consumer's measured bytes per message at INFO (JSON lines and EMF blobs); the reference logs nothing.",
)


@dataclass(frozen=True)
class Usage:
    """What one design does, per message, as measured by the bench."""

    calls_per_message: Mapping[str, float]  # the function's own AWS calls
    messages_per_invocation: int
    ms_per_invocation: float
    log_bytes_per_message: float


def pipeline_requests(messages_per_invocation: int) -> float:
    """SQS requests per message outside the function: send, then the mapping's receive and delete."""
    return 1 + 2 / messages_per_invocation


def per_million(usage: Usage, memory_mb: int) -> dict[str, float]:
    """Dollars per million messages, by service, and their total."""

    def calls(operations: set[str]) -> float:
        return sum(count for operation, count in usage.calls_per_message.items() if operation in operations)

    invocations = 1 / usage.messages_per_invocation
    gb_seconds = invocations * usage.ms_per_invocation / 1000 * memory_mb / 1024
    cost = {
        "sqs": (calls(SQS_OPERATIONS) + pipeline_requests(usage.messages_per_invocation)) * PRICE_SQS_FIFO_REQUEST,
        "dynamodb": calls(DYNAMODB_WRITES) * PRICE_DYNAMODB_WRITE_UNIT
        + calls(DYNAMODB_READS) * PRICE_DYNAMODB_READ_UNIT,
        "cloudwatch": calls(CLOUDWATCH_REQUESTS) * PRICE_CLOUDWATCH_REQUEST,
        "logs": usage.log_bytes_per_message / 1e9 * PRICE_LOGS_INGESTED_GB,
        "lambda": gb_seconds * PRICE_LAMBDA_GB_SECOND + invocations * PRICE_LAMBDA_REQUEST,
    }
    cost = {name: value * 1e6 for name, value in cost.items()}
    cost["total"] = sum(cost.values())
    return cost


def monthly(metrics: int, alarms: int, conditional_alarms: int = 0) -> list[tuple[str, str, str]]:
    """(resource, price, this stack) for what is billed by the month, not by the message.

    ``conditional_alarms``: alarms the template creates only for some parameter values.
    """
    optional = (
        f" (up to {alarms + conditional_alarms}: ${(alarms + conditional_alarms) * PRICE_ALARM_MONTH:.2f}, "
        "with the parameters that add the others)"
        if conditional_alarms
        else ""
    )
    return [
        (
            "custom metrics (EMF)",
            f"${PRICE_CUSTOM_METRIC_MONTH:.2f} per metric",
            f"{metrics} metrics: ${metrics * PRICE_CUSTOM_METRIC_MONTH:.2f}",
        ),
        (
            "alarms",
            f"${PRICE_ALARM_MONTH:.2f} per alarm",
            f"{alarms} alarms: ${alarms * PRICE_ALARM_MONTH:.2f}{optional}",
        ),
        (
            "dashboard",
            f"${PRICE_DASHBOARD_MONTH:.2f} (first 3 per account free)",
            f"$0 to ${PRICE_DASHBOARD_MONTH:.2f}",
        ),
        ("DynamoDB storage", f"${PRICE_DYNAMODB_STORAGE_GB_MONTH:.2f} per GB", "what the table keeps"),
        ("DynamoDB point-in-time recovery", f"${PRICE_DYNAMODB_PITR_GB_MONTH:.2f} per GB", "what the table keeps"),
        (
            "CloudWatch Logs storage",
            f"${PRICE_LOGS_STORAGE_GB_MONTH:.2f} per GB (compressed)",
            "bounded by `LogRetentionDays`",
        ),
        ("SNS e-mail (alarms)", "first 1,000 e-mails free", "$0"),
        ("KMS", "none", "SSE-SQS and DynamoDB's AWS managed key need no customer key: $0"),
    ]


def large_messages(figures: Mapping[str, Any]) -> dict[str, float]:
    """Per million large messages (docs/large-messages.md): S3 requests, the item's write units, a month of storage."""
    calls = figures["calls_per_message"]
    requests = calls.get("PutObject", 0) * PRICE_S3_PUT + calls.get("GetObject", 0) * PRICE_S3_GET
    stored_gb = figures["body_mb"] / 1024 * calls.get("PutObject", 0)
    return {
        "s3_requests": requests * 1e6,
        "dynamodb": figures["write_units_per_message"] * PRICE_DYNAMODB_WRITE_UNIT * 1e6,
        "s3_storage_month": stored_gb * PRICE_S3_GB_MONTH * 1e6,
    }
