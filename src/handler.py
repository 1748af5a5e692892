"""Lambda entry point (SAM ``Handler: handler.lambda_handler``, ``CodeUri: src/``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from consumer.bootstrap import batch_consumer
from consumer.telemetry import log_invocation, metrics


@log_invocation
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, list[dict[str, str]]]:
    return batch_consumer().process(event, context)
