"""The composition root: configuration, clients and adapters, built once per container."""

from __future__ import annotations

import threading
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
from consumer.time_budget import CallBudget

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Clients:
    dynamodb: DynamoDBClient
    sqs: SQSClient
    budget: CallBudget


@lru_cache(maxsize=1)
def settings() -> Config:
    """Read on the first invocation, so a bad setting fails it with an error naming the variable."""
    return Config.from_env()


@lru_cache(maxsize=1)
def clients() -> Clients:
    config = settings()
    session = boto3.session.Session(region_name=config.region)
    wire = client_config(config.max_concurrency)
    dynamodb, sqs = session.client("dynamodb", config=wire), session.client("sqs", config=wire)
    # Every call of these clients ends before the invocation's deadline.
    budget = CallBudget()
    budget.attach(dynamodb)
    budget.attach(sqs)
    return Clients(dynamodb=dynamodb, sqs=sqs, budget=budget)


_s3_lock = threading.Lock()


def s3_client() -> S3Client:
    """Built on the first body too large for an item or the first pointer, not at cold start: most
    containers never need it, and S3's client takes tens of milliseconds to build. Group threads
    may ask at once, and a boto3 session must not build clients in two threads at once."""
    with _s3_lock:
        return _s3_client()


@lru_cache(maxsize=1)
def _s3_client() -> S3Client:
    config = settings()
    session = boto3.session.Session(region_name=config.region)
    s3 = session.client("s3", config=client_config(config.max_concurrency))
    # Its calls end before the invocation's deadline too.
    clients().budget.attach(s3)
    return s3


@lru_cache(maxsize=1)
def batch_consumer() -> BatchConsumer:
    config = settings()
    aws = clients()
    store = MessageStore(aws.dynamodb, config.table_name, config.key_attribute)
    queues = QueueGateway(aws.sqs, dlq_url=config.dlq_url)
    large = LargeMessages(lambda: PayloadStore(s3_client()), config)
    return BatchConsumer(config, store, queues, aws.budget, large)


def reset() -> None:
    """Forget everything built, as a new container would (tests and local runs)."""
    batch_consumer.cache_clear()
    _s3_client.cache_clear()
    clients.cache_clear()
    settings.cache_clear()
