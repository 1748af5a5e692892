"""The composition root: configuration, clients and adapters, built once per container."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import boto3

from consumer.aws_clients import client_config
from consumer.batch_consumer import BatchConsumer
from consumer.config import Config
from consumer.large_messages import LargeMessages
from consumer.message_store import MessageStore
from consumer.payload_store import PayloadStore
from consumer.queue_gateway import QueueGateway
from consumer.telemetry import WARNING, log_step

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Clients:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    # Only when PAYLOAD_BUCKET or POINTER_BUCKETS is set: S3's client costs cold-start time.
    s3: S3Client | None = None


@lru_cache(maxsize=1)
def settings() -> Config:
    """Read on the first invocation, so a bad setting fails it with an error naming the variable."""
    return Config.from_env()


@lru_cache(maxsize=1)
def clients() -> Clients:
    config = settings()
    session = boto3.session.Session(region_name=config.region)
    wire = client_config(config.max_concurrency)
    s3 = session.client("s3", config=wire) if config.payload_bucket or config.pointer_buckets else None
    return Clients(dynamodb=session.client("dynamodb", config=wire), sqs=session.client("sqs", config=wire), s3=s3)


@lru_cache(maxsize=1)
def batch_consumer() -> BatchConsumer:
    """Raises ConfigurationError, naming the setting, when the table does not fit the configuration."""
    config = settings()
    aws = clients()
    store = MessageStore(aws.dynamodb, config.table_name, config.key_attribute)
    unchecked = store.check_key_schema()
    if unchecked is not None:
        log_step("configuration", "dynamodb_describe_table", WARNING, {"error": unchecked})
    queues = QueueGateway(aws.sqs, dlq_url=config.dlq_url)
    large = LargeMessages(PayloadStore(aws.s3) if aws.s3 is not None else None, config)
    return BatchConsumer(config, store, queues, large)


def reset() -> None:
    """Forget everything built, as a new container would (tests and local runs)."""
    batch_consumer.cache_clear()
    clients.cache_clear()
    settings.cache_clear()
