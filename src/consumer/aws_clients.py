"""How the consumer's boto3 clients behave on the wire when time is plentiful.

These are ceilings: near the invocation's deadline ``time_budget.CallBudget`` cuts each
attempt's read timeout and the number of attempts so that every call ends before it.
"""

from __future__ import annotations

from botocore.config import Config as BotocoreConfig

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
MAX_ATTEMPTS = 3


def client_config(max_concurrency: int) -> BotocoreConfig:
    return BotocoreConfig(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        max_pool_connections=max(max_concurrency, 10),
        tcp_keepalive=True,
        # botocore would walk every value of a 400 KB item again (about 5 us each: 0.4 s for 100,000
        # list elements) to check what dynamodb_item already checked; AWS validates the request anyway.
        parameter_validation=False,
    )
