"""How the consumer's boto3 clients behave on the wire, and the time budget that follows."""

from __future__ import annotations

from botocore.config import Config as BotocoreConfig

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
MAX_ATTEMPTS = 3
# botocore's standard mode waits up to 2**(attempt-1) seconds (random) before each retry.
_WORST_BACKOFF_SECONDS = sum(2.0**retry for retry in range(MAX_ATTEMPTS - 1))

WORST_CALL_SECONDS = MAX_ATTEMPTS * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + _WORST_BACKOFF_SECONDS
# A record is started only if its slowest possible write, and one delete attempt after it,
# still end before Lambda's deadline.
SAFETY_MARGIN_MS = int(1000 * (WORST_CALL_SECONDS + CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS))
# The consumer's own deletes (a queue URL lookup, then the batches at once) are skipped below this:
# handled records are not reported as failures, so Lambda deletes them after the invocation anyway.
DELETE_BUDGET_MS = int(1000 * 2 * WORST_CALL_SECONDS)


def client_config(max_concurrency: int) -> BotocoreConfig:
    return BotocoreConfig(
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        max_pool_connections=max(max_concurrency, 10),
        tcp_keepalive=True,
    )
