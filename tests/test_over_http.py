"""The consumer against moto's server over real HTTP, reached through AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.emulator import running_emulator
from local.lambda_runtime import sqs_event
from local.template_resources import Deployed, deploy_local
from tests.conftest import REGION, Invoker, failures


@pytest.fixture
def http_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Deployed, Any, Any]]:
    """Given the template's resources on an emulator listening on loopback."""
    with running_emulator() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        deployed = deploy_local(sqs, dynamodb, stack_name="http", region=REGION)
        for name, value in deployed.environment.items():
            monkeypatch.setenv(name, value)
        yield deployed, sqs, dynamodb


def test_the_consumer_works_over_http_through_aws_endpoint_url(
    http_stack: tuple[Deployed, Any, Any], invoke: Invoker
) -> None:
    deployed, sqs, dynamodb = http_stack
    # Given an order and an invalid body sent over HTTP
    sqs.send_message(
        QueueUrl=deployed.queue_url,
        MessageBody=json.dumps({"message_id": "http-1", "amount": 1.25}),
        MessageGroupId="g1",
        MessageDeduplicationId="d1",
    )
    sqs.send_message(QueueUrl=deployed.queue_url, MessageBody="nope", MessageGroupId="g2", MessageDeduplicationId="d2")
    received = sqs.receive_message(
        QueueUrl=deployed.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    event = sqs_event(received["Messages"], deployed.queue_arn, REGION)

    # When the handler runs with clients built from the environment
    response, out = invoke(event)

    # Then the order is in the table with its exact amount, the invalid body in the DLQ, the queue empty
    assert failures(response) == []
    item = dynamodb.get_item(TableName=deployed.table_name, Key={"message_id": {"S": "http-1"}})["Item"]
    assert item["amount"] == {"N": "1.25"}
    dlq = sqs.receive_message(QueueUrl=deployed.dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert [message["Body"] for message in dlq] == ["nope"]
    counts = sqs.get_queue_attributes(QueueUrl=deployed.queue_url, AttributeNames=["All"])["Attributes"]
    assert counts["ApproximateNumberOfMessages"] == counts["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert out.metrics()["MessagesDeleted"] == 2
