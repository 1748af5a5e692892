"""The invocation's deadline, and the part of it each AWS call may use.

Lambda stops an invocation at its deadline and the whole batch comes back, so no call may
outlive it. ``CallBudget`` puts two botocore event hooks on each client:

- ``request-created`` (before every attempt): the attempt is not sent unless it fits, its
  connect timeout and the shortest read timeout worth waiting for (``OutOfTime``); its read
  timeout is what is left after the connect timeout, up to the client's own. botocore reads
  a per-request ``read_timeout`` from the request context (botocore PR #3770, 1.44).
- ``needs-retry`` (after every failed attempt): a retry happens only if the longest backoff
  botocore may sleep and one more attempt still fit; otherwise the last answer stands.

So the slowest call ends before the deadline, whatever the function's timeout, and what is
left unfinished goes back to Lambda (reported as failed, or deleted by the event source mapping).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from consumer.aws_clients import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS
from consumer.exceptions import OutOfTime

# Kept after the last AWS call for the rest of the invocation: logging the outcomes, returning
# the answer, Powertools' metric flush.
RESERVE_SECONDS = 0.5
# A shorter read timeout would mostly time out calls that were about to succeed.
MIN_READ_TIMEOUT_SECONDS = 0.5
MIN_ATTEMPT_SECONDS = CONNECT_TIMEOUT_SECONDS + MIN_READ_TIMEOUT_SECONDS
# Lambda's timeouts are whole seconds: the shortest one that leaves room for one attempt.
MIN_FUNCTION_TIMEOUT_SECONDS = math.floor(RESERVE_SECONDS + MIN_ATTEMPT_SECONDS) + 1

# botocore's standard retry mode sleeps up to min(2 ** (attempt - 1), 20) s before a retry
# (throttling; other errors far less), and up to 5 s more when the answer asks for it.
_MAX_BACKOFF_SECONDS = 20.0
_RETRY_AFTER_HEADER = "x-amz-retry-after"
_RETRY_AFTER_MAX_EXTRA_SECONDS = 5.0


@dataclass(frozen=True)
class Deadline:
    """When the consumer's last AWS call must have ended: Lambda's deadline less the reserve."""

    at: float  # on the time.monotonic() clock

    @classmethod
    def from_remaining_ms(cls, remaining_ms: int) -> Deadline:
        return cls(time.monotonic() + remaining_ms / 1000 - RESERVE_SECONDS)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def remaining_ms(self) -> int:
        return max(0, int(self.remaining() * 1000))

    def allows_attempt(self) -> bool:
        return self.remaining() >= MIN_ATTEMPT_SECONDS


class CallBudget:
    """Fits every call of the clients it is attached to into the current invocation's deadline.

    One invocation runs at a time in a Lambda container: the deadline is set for the whole
    invocation (every worker thread's calls share it) and cleared after. Without one (tooling
    outside an invocation), the clients' own settings apply unchanged.
    """

    def __init__(self) -> None:
        self._deadline: Deadline | None = None

    def attach(self, client: Any) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        # On the service's own event names: botocore calls the most specific handlers first,
        # and its retry handler sits on needs-retry.<service>.
        events.register_first(f"request-created.{service}", self._fit_attempt)
        events.register_first(f"needs-retry.{service}", self._fit_retry)

    @contextmanager
    def until(self, deadline: Deadline) -> Iterator[Deadline]:
        self._deadline = deadline
        try:
            yield deadline
        finally:
            self._deadline = None

    def _fit_attempt(self, request: Any, operation_name: str = "", **_: Any) -> None:
        deadline = self._deadline
        if deadline is None:
            return
        left = deadline.remaining()
        if left < MIN_ATTEMPT_SECONDS:
            raise OutOfTime(
                f"{operation_name or 'the call'} was not sent: {max(0, int(left * 1000))} ms left before the"
                f" deadline, one attempt needs {int(MIN_ATTEMPT_SECONDS * 1000)} ms"
            )
        request.context["read_timeout"] = min(READ_TIMEOUT_SECONDS, left - CONNECT_TIMEOUT_SECONDS)

    def _fit_retry(self, attempts: int, response: Any = None, **_: Any) -> bool | None:
        deadline = self._deadline
        if deadline is None:
            return None
        if deadline.remaining() < _longest_backoff(attempts, response) + MIN_ATTEMPT_SECONDS:
            return False  # botocore: no retry, the last answer or error stands
        return None  # botocore's retry handler decides


def _longest_backoff(attempts: int, response: Any) -> float:
    longest = min(2.0 ** (attempts - 1), _MAX_BACKOFF_SECONDS)
    headers = getattr(response[0], "headers", None) if response else None
    asked = headers.get(_RETRY_AFTER_HEADER) if headers is not None else None
    try:
        asked_seconds = int(asked) / 1000 if asked is not None else 0.0
    except ValueError:
        asked_seconds = 0.0
    return max(longest, min(asked_seconds, longest + _RETRY_AFTER_MAX_EXTRA_SECONDS))
