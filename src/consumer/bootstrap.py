"""The composition root: configuration, clients and adapters, built once per container."""

from __future__ import annotations

from functools import lru_cache

import boto3

from consumer.aws_clients import client_config
from consumer.batch_consumer import BatchConsumer
from consumer.config import Config
from consumer.message_store import MessageStore
from consumer.queue_gateway import QueueGateway


@lru_cache(maxsize=1)
def batch_consumer() -> BatchConsumer:
    """Built on the first invocation, so a bad setting fails it with an error naming the variable."""
    config = Config.from_env()
    session = boto3.session.Session(region_name=config.region)
    wire = client_config(config.max_concurrency)
    store = MessageStore(session.client("dynamodb", config=wire), config.table_name)
    queues = QueueGateway(session.client("sqs", config=wire), dlq_url=config.dlq_url)
    return BatchConsumer(config, store, queues)
