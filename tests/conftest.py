"""Shared fixtures: a moto stack shaped by template.yaml, and a handler run whose stdout is parsed."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.logging import logger as powertools_logger
from aws_lambda_powertools.metrics.provider import cold_start
from moto import mock_aws

import handler
from consumer import bootstrap, telemetry
from local.capture import emf_metrics
from local.emulator import one_request_at_a_time_in_process
from local.lambda_runtime import LocalContext, sqs_event
from local.report import scan_table
from local.template_resources import Deployed, deploy_local

REGION = "us-east-1"
STACK_NAME = "sqs-fifo-consumer"
EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
CONFIG_VARIABLES = (
    "DYNAMO_TABLE",
    "DYNAMO_KEY_ATTRIBUTE",
    "REGION",
    "DLQ_URL",
    "IDEMPOTENCY_KEY_JMESPATH",
    "MAX_CONCURRENCY",
    "RECORD_TTL_DAYS",
    "LOG_MESSAGE_BODY",
    "PAYLOAD_BUCKET",
    "POINTER_BUCKETS",
    "MAX_PAYLOAD_BYTES",
    "AWS_ENDPOINT_URL",
)


class _CurrentStdout(io.TextIOBase):
    """Powertools' Logger keeps the stream it saw at import; this one follows pytest's capture."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


telemetry.logger.registered_handler.setStream(_CurrentStdout())  # type: ignore[attr-defined]


@pytest.fixture(autouse=True, scope="session")
def emulator_applies_requests_atomically() -> Iterator[None]:
    """moto is not thread-safe and the consumer calls it from several threads: one request at a time.

    Without this, concurrent deletes on one queue can bring deleted messages back in moto (real SQS
    applies each request atomically), and any verdict on the emulator's state would be a coin toss.
    """
    with one_request_at_a_time_in_process():
        yield


@pytest.fixture(autouse=True)
def fresh_container(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test is a new Lambda container with no AWS account behind it."""
    for name in CONFIG_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    bootstrap.reset()
    telemetry.metrics.clear_metrics()
    cold_start.is_cold_start = True
    powertools_logger.is_cold_start = True
    telemetry.container.cold_start = True
    # Every step's line, as POWERTOOLS_LOG_LEVEL=DEBUG prints them: most tests follow a record step by step.
    # Tests of what INFO shows (one line per record) set the level themselves.
    level = telemetry.logger.log_level
    telemetry.logger.setLevel("DEBUG")
    yield
    telemetry.logger.setLevel(level)
    bootstrap.reset()
    telemetry.metrics.clear_metrics()


@dataclass
class Output:
    """What one invocation printed: JSON log lines and EMF blobs."""

    logs: list[dict[str, Any]] = field(default_factory=list)
    emf: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Metric values of the invocation's EMF blobs, by name."""
        values: dict[str, float] = {}
        for blob in self.emf:
            values.update(emf_metrics(blob))
        return values

    def steps(self, action: str, trace_id: str | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in self.logs
            if line.get("action") == action and (trace_id is None or line.get("trace_id") == trace_id)
        ]


def parse_stdout(text: str) -> Output:
    output = Output()
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        parsed = json.loads(line)
        (output.emf if "_aws" in parsed else output.logs).append(parsed)
    return output


@dataclass
class Stack:
    """The template's queue, DLQ, table and payload bucket on moto, with the helpers a test needs."""

    deployed: Deployed
    sqs: Any
    dynamodb: Any
    s3: Any

    def send(
        self,
        body: str | Mapping[str, Any],
        group: str = "group-a",
        dedup: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> str:
        text = body if isinstance(body, str) else json.dumps(body)
        answer = self.sqs.send_message(
            QueueUrl=self.deployed.queue_url,
            MessageBody=text,
            MessageGroupId=group,
            MessageDeduplicationId=dedup or str(uuid.uuid4()),
            MessageAttributes=dict(attributes or {}),
        )
        return str(answer["MessageId"])

    def receive_event(self, expected: int) -> dict[str, Any]:
        """Receive messages the way the event source mapping does, as a Lambda event."""
        messages: list[dict[str, Any]] = []
        for _ in range(5):
            answer = self.sqs.receive_message(
                QueueUrl=self.deployed.queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages.extend(answer.get("Messages", []))
            if len(messages) >= expected:
                break
        assert len(messages) == expected, f"received {len(messages)} messages, expected {expected}"
        return sqs_event(messages, self.deployed.queue_arn, REGION)

    def items(self) -> dict[str, dict[str, Any]]:
        return scan_table(self.dynamodb, self.deployed.table_name, self.deployed.environment["DYNAMO_KEY_ATTRIBUTE"])

    def dlq_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.deployed.dlq_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                VisibilityTimeout=300,
            )
            if not answer.get("Messages"):
                return messages
            messages.extend(answer["Messages"])

    def messages_in_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.deployed.queue_url, AttributeNames=["All"])
        counts = attributes["Attributes"]
        return int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Given the deployed stack (from template.yaml) and the function's environment from it."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        deployed = deploy_local(sqs, dynamodb, stack_name=STACK_NAME, region=REGION, s3=s3)
        for name, value in deployed.environment.items():
            monkeypatch.setenv(name, value)
        yield Stack(deployed, sqs, dynamodb, s3)


class Invoker:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(self, event: object, timeout_seconds: float = 60.0) -> tuple[dict[str, Any], Output]:
        """When Lambda invokes the handler; returns its answer and what it printed."""
        self._capsys.readouterr()
        response = handler.lambda_handler(event, LocalContext(timeout_seconds=timeout_seconds))
        return response, parse_stdout(self._capsys.readouterr().out)

    def raising(self, event: object) -> tuple[BaseException, Output]:
        """When the handler raises: the exception and what was printed before it."""
        self._capsys.readouterr()
        with pytest.raises(Exception) as caught:  # noqa: PT011 - each test asserts the message
            handler.lambda_handler(event, LocalContext())
        return caught.value, parse_stdout(self._capsys.readouterr().out)


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Invoker:
    return Invoker(capsys)


def failures(response: Mapping[str, Any]) -> list[str]:
    return [entry["itemIdentifier"] for entry in response["batchItemFailures"]]


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
    return event


def assert_quarantined(
    stack: Stack, event: dict[str, Any], response: dict[str, Any], out: Output, body: str, reason: str
) -> dict[str, Any]:
    """Then the record is in the DLQ byte-identical with the reason, and nowhere else; returns the DLQ copy."""
    record = event["Records"][0]
    assert failures(response) == []
    dlq = stack.dlq_messages()
    assert len(dlq) == 1
    assert dlq[0]["Body"] == body
    attributes = {name: value["StringValue"] for name, value in dlq[0]["MessageAttributes"].items()}
    assert attributes["quarantine_reason"] == reason
    assert attributes["quarantine_details"].strip() not in ("", "-")
    assert attributes["source_queue_arn"] == record["eventSourceARN"]
    assert attributes["original_message_id"] == record["messageId"]
    assert attributes["approximate_receive_count"] == record["attributes"]["ApproximateReceiveCount"]
    assert dlq[0]["MessageAttributes"]["approximate_receive_count"]["DataType"] == "Number"
    assert stack.items() == {}
    assert out.metrics()["InvalidMessages"] == 1
    assert out.metrics()["MessagesQuarantined"] == 1
    assert out.metrics()["MessagesSaved"] == 0
    assert out.metrics()["MessagesDeleted"] == 1
    parsed = out.steps("message_parse", record["messageId"])
    assert [(line["status"], line["details"]["reason"]) for line in parsed] == [("error", reason)]
    quarantined = out.steps("message_quarantined", record["messageId"])
    assert [line["status"] for line in quarantined] == ["success"]
    copy: dict[str, Any] = dlq[0]
    return copy


def handle_one(stack: Stack, invoke: Invoker, body: str) -> tuple[dict[str, Any], dict[str, Any], Output]:
    """When one message with this body is sent and handled: (event, response, output)."""
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    response, out = invoke(event)
    return event, response, out


def standard_queue_event(stack: Stack, count: int) -> dict[str, Any]:
    """Given ``count`` messages on a standard queue (batches over ten are allowed there), received as one event."""
    url = stack.sqs.create_queue(QueueName="standard-orders")["QueueUrl"]
    arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for index in range(count):
        stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"message_id": f"std-{index}"}))
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        answer = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
        messages.extend(answer.get("Messages", []))
    return sqs_event(messages, arn)
