"""Lambda's SQS event source mapping, played locally: receive, invoke, delete, retry, redrive.

What it does, as the mapping does for a FIFO queue:

- receives up to the template's ``BatchSize`` messages with all system and message attributes;
  SQS itself (and moto) hands out no message of a group while another of it is in flight,
  so at most one batch per message group is ever being handled;
- turns them into a Lambda SQS event and invokes ``handler.lambda_handler`` in-process,
  with a context whose deadline is the template's function timeout;
- honours ``ReportBatchItemFailures``: deletes every message not listed (the consumer has
  usually deleted them already), and leaves the listed ones to become visible again;
- on an exception, deletes nothing: the whole batch becomes visible again;
- redrive: SQS moves a message to the DLQ when it is received after ``maxReceiveCount``
  receives. moto applies the RedrivePolicy on receive as SQS does, so the poller only counts it.

One difference, on purpose: a failed message comes back within seconds, not after the queue's
visibility timeout (360 s from template.yaml). As in Lambda, no message is visible again while
its invocation runs: it is received hidden for the function's timeout. When the invocation
ends, the messages it failed (all of them, if it raised) are made visible again after the
poller's own ``visibility_timeout`` (2 s by default) with ``ChangeMessageVisibilityBatch``;
the others are deleted. The order of events is Lambda's, only shorter: several pollers at once
(local/pollers.py) never handle one message, or one message group, at the same time.
One poller runs one invocation at a time: Powertools' metric store is process-wide.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from local.lambda_runtime import LocalContext, sqs_event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any]]
DEFAULT_VISIBILITY_TIMEOUT = 2
# What the poller receives with: longer than any invocation, so moto's own timer never runs out first.
HOLD_SECONDS = 3600


@dataclass
class PollerStats:
    received: int = 0
    invocations: int = 0
    invocation_errors: int = 0
    item_failures: int = 0
    esm_deleted: int = 0
    esm_delete_failures: int = 0
    redelivered: int = 0
    errors: list[str] = field(default_factory=list)

    @classmethod
    def merged(cls, all_stats: Iterable[PollerStats]) -> PollerStats:
        """The sums of several pollers' counts, and all their errors."""
        total = cls()
        for stats in all_stats:
            for counter in fields(cls):
                if counter.name != "errors":
                    setattr(total, counter.name, getattr(total, counter.name) + getattr(stats, counter.name))
            total.errors.extend(stats.errors)
        return total


@dataclass
class Poller:
    sqs: SQSClient
    queue_url: str
    queue_arn: str
    handler: Handler
    region: str = "us-east-1"
    batch_size: int = 10
    function_timeout: float = 60.0
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT
    idle_sleep: float = 0.1
    stats: PollerStats = field(default_factory=PollerStats)
    # Receipt handles of messages not deleted, and when they become visible again.
    _returning: list[tuple[float, list[str]]] = field(default_factory=list, init=False, repr=False)

    def poll_once(self) -> int:
        """One receive and, if anything came, one invocation. Returns the number of records."""
        self._release_due()
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            # Hidden while the invocation may run; failures are made visible sooner once it is over.
            VisibilityTimeout=max(math.ceil(self.function_timeout), self.visibility_timeout),
            WaitTimeSeconds=0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        self.stats.received += len(messages)
        self.stats.redelivered += sum(
            1 for message in messages if int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) > 1
        )
        self._invoke(messages)
        return len(messages)

    def _invoke(self, messages: Sequence[Mapping[str, Any]]) -> None:
        event = sqs_event(messages, self.queue_arn, self.region)
        self.stats.invocations += 1
        try:
            response = self.handler(event, LocalContext(timeout_seconds=self.function_timeout))
        except Exception as error:  # noqa: BLE001 - Lambda's answer to any exception: the whole batch again
            self.stats.invocation_errors += 1
            self.stats.errors.append(f"{type(error).__name__}: {error}")
            self._release(messages)
            return
        failed = {str(entry["itemIdentifier"]) for entry in response.get("batchItemFailures", [])}
        self.stats.item_failures += len(failed)
        done = [message for message in messages if message["MessageId"] not in failed]
        self._delete(done)
        self._release([message for message in messages if message["MessageId"] in failed])

    def _release(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Visible again ``visibility_timeout`` seconds from now. Entries the consumer deleted fail: that is fine."""
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.visibility_timeout}
                for i, m in enumerate(chunk)
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - they come back after the function timeout instead
                self.stats.errors.append(f"ChangeMessageVisibilityBatch: {error}")

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The messages it could not delete."""
        left: list[Mapping[str, Any]] = []
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            try:
                answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
            except Exception as error:  # noqa: BLE001 - the messages come back and are seen as duplicates
                self.stats.esm_delete_failures += len(chunk)
                self.stats.errors.append(f"DeleteMessageBatch: {error}")
                left.extend(chunk)
                continue
            self.stats.esm_deleted += len(answer.get("Successful", []))
            self.stats.esm_delete_failures += len(answer.get("Failed", []))
            left.extend(chunk[int(entry["Id"])] for entry in answer.get("Failed", []))
        return left

    def _return_later(self, messages: Sequence[Mapping[str, Any]]) -> None:
        if messages:
            due = time.monotonic() + self.visibility_timeout
            self._returning.append((due, [str(message["ReceiptHandle"]) for message in messages]))

    def _release_due(self) -> None:
        """Messages whose visibility timeout is over become visible again, all of a group at once."""
        now = time.monotonic()
        due = [handles for when, handles in self._returning if when <= now]
        self._returning = [(when, handles) for when, handles in self._returning if when > now]
        for handles in due:
            for start in range(0, len(handles), 10):
                entries = [
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + 10])
                ]
                # A message the consumer deleted after all is no longer there: its entry fails, as it should.
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]

    def queue_depth(self) -> int:
        """Messages visible, in flight, or delayed."""
        names: list[Any] = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        answer = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=names)
        attributes: dict[Any, str] = dict(answer["Attributes"])
        return sum(int(attributes.get(name, "0")) for name in names)

    def drain(
        self,
        *,
        deadline_seconds: float = 3600.0,
        progress: Callable[[PollerStats, int], None] | None = None,
        progress_every: float = 1.0,
        feed: Callable[[int], bool] | None = None,
        until_empty: bool = True,
    ) -> bool:
        """Poll until the producer is done and the queue is empty (or forever if not ``until_empty``).

        ``feed(depth)`` is called before each receive and returns True while it has more to send.
        Returns True if the queue emptied.
        """
        started = time.monotonic()
        last_report = started
        feeding = feed is not None
        while time.monotonic() - started < deadline_seconds:
            depth = self.queue_depth() if feeding or progress is not None else -1
            if feed is not None and feeding:
                feeding = feed(depth)
            handled = self.poll_once()
            now = time.monotonic()
            if progress is not None and now - last_report >= progress_every:
                progress(self.stats, depth)
                last_report = now
            if handled or feeding:
                continue
            if until_empty and self.queue_depth() == 0:
                return True
            time.sleep(self.idle_sleep)
        return until_empty and self.queue_depth() == 0
