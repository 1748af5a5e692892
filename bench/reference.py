"""The sequential design, for comparison only: never shipped, never deployed.

Per record, one after the other: GetItem (is the key known?), a conditional PutItem,
DeleteMessage, and one PutMetricData per metric. No batching, no concurrency.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

METRICS_PER_RECORD = ("outcome", "MessagesDeleted")  # the outcome is MessagesSaved or DuplicateMessages


class SequentialConsumer:
    def __init__(self, dynamodb: Any, sqs: Any, cloudwatch: Any, table_name: str, namespace: str) -> None:
        self._dynamodb = dynamodb
        self._sqs = sqs
        self._cloudwatch = cloudwatch
        self._table_name = table_name
        self._namespace = namespace
        self._serializer = TypeSerializer()
        self._queue_urls: dict[str, str] = {}

    def process(self, event: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        failures: list[dict[str, str]] = []
        for record in event["Records"]:
            try:
                self._handle(record)
            except (ClientError, ValueError, KeyError):
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    def _handle(self, record: dict[str, Any]) -> None:
        body = json.loads(record["body"], parse_float=Decimal, parse_int=Decimal)
        key = str(body.get("message_id") or record["messageId"])
        known = self._dynamodb.get_item(TableName=self._table_name, Key={"message_id": {"S": key}}, ConsistentRead=True)
        outcome = "DuplicateMessages"
        if "Item" not in known:
            item = {name: self._serializer.serialize(value) for name, value in body.items()}
            item["message_id"] = {"S": key}
            try:
                self._dynamodb.put_item(
                    TableName=self._table_name,
                    Item=item,
                    ConditionExpression="attribute_not_exists(message_id)",
                )
                outcome = "MessagesSaved"
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
        self._sqs.delete_message(
            QueueUrl=self._queue_url(record["eventSourceARN"]), ReceiptHandle=record["receiptHandle"]
        )
        for name in (outcome, "MessagesDeleted"):
            self._cloudwatch.put_metric_data(
                Namespace=self._namespace, MetricData=[{"MetricName": name, "Value": 1, "Unit": "Count"}]
            )

    def _queue_url(self, queue_arn: str) -> str:
        if queue_arn not in self._queue_urls:
            _, _, _, _, account, name = queue_arn.split(":")
            answer = self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)
            self._queue_urls[queue_arn] = str(answer["QueueUrl"])
        return self._queue_urls[queue_arn]
