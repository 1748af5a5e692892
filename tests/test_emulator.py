"""The emulators behave as SQS does under concurrent calls, so verdicts on their state are not a coin toss.

The local run's emulator also gives a FIFO group back in order once several of its messages
come back at once (moto 5.2.5 alone hands out the last of them first).

moto 5.2.5 rebuilds a queue's message list on every delete: two deletes at once can each start
from the same old list, and one brings back what the other deleted. Switching threads as often
as CPython allows makes that race likely: without the emulators' lock, 13 and 18 of 30 trials of
ten delete batches at once brought messages back (measured on moto 5.2.5), so eight trials catch it.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.core import utils as moto_utils
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sqs import models as sqs_models

from local.emulator import running_emulator
from tests.conftest import REGION, Stack

TRIALS = 8
MESSAGES = 100


@pytest.fixture
def threads_switch_constantly() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _left_after_concurrent_deletes(sqs: Any, trial: int) -> int:
    """Receive MESSAGES messages, delete them in batches of ten, all at once; count what is left."""
    url = sqs.create_queue(QueueName=f"race-{trial}")["QueueUrl"]
    for index in range(MESSAGES):
        sqs.send_message(QueueUrl=url, MessageBody=str(index))
    handles: list[str] = []
    while len(handles) < MESSAGES:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        handles.extend(message["ReceiptHandle"] for message in answer.get("Messages", []))
    acknowledged: list[int] = []

    def delete(chunk: list[str]) -> None:
        entries = [{"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(chunk)]
        acknowledged.append(len(sqs.delete_message_batch(QueueUrl=url, Entries=entries)["Successful"]))

    threads = [threading.Thread(target=delete, args=(handles[i : i + 10],)) for i in range(0, MESSAGES, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(acknowledged) == MESSAGES
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(counts["ApproximateNumberOfMessages"]) + int(counts["ApproximateNumberOfMessagesNotVisible"])


@pytest.mark.usefixtures("threads_switch_constantly")
def test_concurrent_deletes_all_stick_in_the_in_process_emulator(stack: Stack) -> None:
    # Given the test suite's in-process emulator and threads that switch constantly
    # When ten delete batches for one queue run at once, eight times
    left = [_left_after_concurrent_deletes(stack.sqs, trial) for trial in range(TRIALS)]

    # Then every acknowledged delete stuck, as in SQS
    assert left == [0] * TRIALS


@pytest.mark.usefixtures("threads_switch_constantly")
def test_concurrent_deletes_all_stick_in_the_local_run_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the emulator `make run` and the soak use, reached over HTTP
    with running_emulator() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        sqs = boto3.client("sqs", region_name=REGION)

        # When ten delete batches for one queue run at once, eight times
        left = [_left_after_concurrent_deletes(sqs, trial) for trial in range(TRIALS)]

    # Then every acknowledged delete stuck, as in SQS
    assert left == [0] * TRIALS


def test_a_fifo_group_whose_messages_come_back_together_is_redelivered_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the emulator `make run` and the soak use, and a FIFO group of five messages
    with running_emulator() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        sqs = boto3.client("sqs", region_name=REGION)
        attributes: dict[Any, str] = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        url = sqs.create_queue(QueueName="group.fifo", Attributes=attributes)["QueueUrl"]
        for index in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{index}", MessageGroupId="g")

        # When the first three are received, left unprocessed, and all come back at once
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=1)["Messages"]
        time.sleep(1.5)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]

    # Then the group is handed out again from its first message, in order, as SQS does
    assert [message["Body"] for message in first] == ["m0", "m1", "m2"]
    assert [message["Body"] for message in again] == ["m0", "m1", "m2", "m3", "m4"]


def test_a_fifo_group_whose_messages_come_back_while_a_receive_runs_is_redelivered_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the emulator `make run` and the soak use, and a FIFO group of five messages all in flight
    with running_emulator() as endpoint:
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        attributes: dict[Any, str] = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        handed_out: list[list[str]] = []
        for late_by in range(60):
            name = f"late-{late_by}.fifo"
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            for index in range(5):
                sqs.send_message(QueueUrl=url, MessageBody=f"m{index}", MessageGroupId="g")
            sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, VisibilityTimeout=30)
            messages = sqs_models.sqs_backends[DEFAULT_ACCOUNT_ID][REGION].queues[name]._messages

            # When the first four are visible again, the last comes back `late_by` ms into the next receive
            # (moto's clock moving on by a millisecond each time it is read), then the last is visible too
            start = datetime.now(UTC).replace(tzinfo=None)
            ticks = itertools.count()
            monkeypatch.setattr(moto_utils, "utcnow", lambda start=start, ticks=ticks: start + _ms(next(ticks)))
            start_ms = moto_utils.unix_time_millis(start)
            for message in messages[:4]:
                message.visible_at = start_ms - 10
            messages[4].visible_at = start_ms + late_by
            first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
            monkeypatch.undo()
            messages[4].visible_at = start_ms - 10
            then = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
            handed_out.append([m["Body"] for answer in (first, then) for m in answer.get("Messages", [])])

    # Then the group is handed out once, whole and in order, whichever moment the last one came back at
    # (moto alone handed out m4 first, and alone, for several of these moments)
    assert handed_out == [["m0", "m1", "m2", "m3", "m4"]] * 60


def test_a_long_poll_hands_out_a_message_that_comes_back_while_it_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the emulator `make run` and the soak use, and a FIFO message received with a one-second visibility
    with running_emulator() as endpoint:
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        attributes: dict[Any, str] = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        url = sqs.create_queue(QueueName="long-poll.fifo", Attributes=attributes)["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="m0", MessageGroupId="g")
        sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)

        # When a long poll of up to five seconds starts while it is still in flight
        answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5, VisibilityTimeout=30)

    # Then the poll sees it come back, as SQS's would (a clock stopped for the whole poll would not)
    assert [message["Body"] for message in answer.get("Messages", [])] == ["m0"]


def _ms(count: int) -> timedelta:
    return timedelta(milliseconds=count)
