"""A moto stack from template.yaml, and both implementations wired to it with a fixed latency."""

from __future__ import annotations

import contextlib
import io
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"
NAMESPACE = "SqsFifoConsumerBench"

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)


class CountingSink(io.TextIOBase):
    """Where the consumer's log lines and EMF blobs go: counted (CloudWatch Logs bills bytes), not kept."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text.encode("utf-8", "surrogatepass"))
        return len(text)


@dataclass
class Stack:
    sqs: Any
    dynamodb: Any
    cloudwatch: Any
    s3: Any
    queue_url: str
    queue_arn: str
    table_name: str
    environment: dict[str, str]

    def event(self, bodies: list[str], groups: int, attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send the bodies over `groups` message groups, and receive them as a Lambda event."""
        from local.lambda_runtime import sqs_event

        for index, body in enumerate(bodies):
            self.sqs.send_message(
                QueueUrl=self.queue_url,
                MessageBody=body,
                MessageGroupId=f"g{index % groups}",
                MessageDeduplicationId=str(uuid.uuid4()),
                MessageAttributes=dict(attributes or {}),
            )
        messages: list[dict[str, Any]] = []
        for _ in range(10):
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages.extend(answer.get("Messages", []))
            if len(messages) >= len(bodies):
                break
        if len(messages) != len(bodies):
            raise RuntimeError(f"received {len(messages)} of {len(bodies)} messages")
        return sqs_event(messages, self.queue_arn, REGION)


@contextlib.contextmanager
def moto_stack(pointer_buckets: Sequence[str] = ()) -> Iterator[Stack]:
    """The template's stack, its payload bucket included; ``pointer_buckets`` become POINTER_BUCKETS."""
    import boto3
    from moto import mock_aws

    from local.template_resources import deploy_local

    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        deployed = deploy_local(sqs, dynamodb, stack_name=f"bench-{uuid.uuid4().hex[:6]}", region=REGION, s3=s3)
        environment = {**deployed.environment, "IDEMPOTENCY_KEY_JMESPATH": "message_id", "MAX_CONCURRENCY": "10"}
        environment.pop("RECORD_TTL_DAYS", None)
        if pointer_buckets:
            environment["POINTER_BUCKETS"] = ",".join(pointer_buckets)
        os.environ.update(environment)
        yield Stack(
            sqs, dynamodb, cloudwatch, s3, deployed.queue_url, deployed.queue_arn, deployed.table_name, environment
        )


class Consumer:
    """The shipped handler, in this process, its clients behind the wire."""

    name = "consumer"

    def __init__(self, wire: Any) -> None:
        import handler
        from consumer import bootstrap, telemetry

        self._handler = handler
        self.sink = CountingSink()
        telemetry.logger.registered_handler.setStream(self.sink)  # type: ignore[attr-defined]
        bootstrap.reset()
        aws = bootstrap.clients()
        wire.attach(aws.dynamodb, aws.sqs)

    def process(self, event: dict[str, Any]) -> dict[str, Any]:
        from local.lambda_runtime import LocalContext

        with contextlib.redirect_stdout(self.sink):  # EMF blobs are printed
            answer: dict[str, Any] = self._handler.lambda_handler(event, LocalContext())
        return answer


class Reference:
    """The sequential design of bench/reference.py, with its own clients behind the same wire."""

    name = "reference"

    def __init__(self, wire: Any, table_name: str) -> None:
        import boto3

        from bench.reference import SequentialConsumer

        session = boto3.session.Session(region_name=REGION)
        dynamodb, sqs, cloudwatch = (session.client(service) for service in ("dynamodb", "sqs", "cloudwatch"))
        wire.attach(dynamodb, sqs, cloudwatch)
        self._impl = SequentialConsumer(dynamodb, sqs, cloudwatch, table_name=table_name, namespace=NAMESPACE)

    def process(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._impl.process(event)
