"""Rule 9: no invocation outlives its deadline, whatever the function's timeout and however slow AWS answers.

Slow answers are made at botocore's boundary (tests/faults.py ``WireFaults.slow``): an answer slower than
the attempt's read timeout never arrives, as a socket would make it. Wall time is measured only against
the deadline Lambda would enforce: that is the behaviour under test, not a speed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from consumer import bootstrap
from consumer.aws_clients import MAX_ATTEMPTS
from consumer.time_budget import Deadline
from tests.conftest import Invoker, Output, Stack, failures, standard_queue_event
from tests.faults import WireFaults

SLOW = (1.5, 3.0)  # seconds per attempt
GROUPS = {"A": ["a0", "a1"], "B": ["b0", "b1"]}
TEMPLATE_DEFAULT_TIMEOUT = 60


def _timed(invoke: Invoker, event: dict[str, Any], timeout: float) -> tuple[dict[str, Any], Output, float]:
    started = time.monotonic()
    response, out = invoke(event, timeout_seconds=timeout)
    return response, out, time.monotonic() - started


def _prefix_of(keys: list[str], chosen: set[str]) -> bool:
    """True when ``chosen`` holds the first n keys of ``keys``, for some n: no gaps in group order."""
    return chosen == set(keys[: len(chosen)])


@pytest.mark.parametrize("timeout", [3, 8, 15, TEMPLATE_DEFAULT_TIMEOUT])
def test_under_slow_answers_every_record_is_stored_or_reported_in_group_order_before_the_deadline(
    stack: Stack, invoke: Invoker, timeout: int
) -> None:
    # Given two groups of two, and every DynamoDB and SQS attempt answering in 1.5 s to 3 s
    for group, keys in GROUPS.items():
        for key in keys:
            stack.send({"message_id": key}, group=group)
    event = stack.receive_event(4)
    by_key = {json.loads(record["body"])["message_id"]: record["messageId"] for record in event["Records"]}
    aws = bootstrap.clients()
    dynamodb = WireFaults(aws.dynamodb).slow("PutItem", SLOW)
    WireFaults(aws.sqs).slow("GetQueueUrl", SLOW).slow("DeleteMessageBatch", SLOW)

    # When the handler runs under this function timeout
    response, out, elapsed = _timed(invoke, event, timeout)

    # Then it returned before Lambda's deadline
    assert elapsed < timeout
    # And no record is lost: one not reported for a retry is in the table
    reported = {key for key, message_id in by_key.items() if message_id in failures(response)}
    stored = set(stack.items())
    assert set(by_key) - reported <= stored
    # And each group kept its order: what is stored and what is done are the first records of the group
    for keys in GROUPS.values():
        assert _prefix_of(keys, stored & set(keys)), (keys, stored)
        assert _prefix_of(keys, set(keys) - reported), (keys, reported)
    # And the consumer made progress: each group's first write was attempted
    assert dynamodb.sent["PutItem"] >= len(GROUPS)
    # And each reported record has a log line that says why
    unfinished = {line["trace_id"] for line in out.steps("dynamodb_save") if line["status"] in ("warning", "error")}
    held_back = {line["details"]["sqs_message_id"] for line in out.steps("message_skipped")}
    for key in reported:
        assert key in unfinished or by_key[key] in held_back, key


@pytest.mark.parametrize(("timeout", "attempts"), [(3, 1), (TEMPLATE_DEFAULT_TIMEOUT, MAX_ATTEMPTS)])
def test_retries_stop_where_the_next_one_could_outlive_the_deadline(
    stack: Stack, invoke: Invoker, timeout: int, attempts: int
) -> None:
    # Given DynamoDB throttles every attempt (boto3 backs off up to 1 s, then 2 s, before retrying)
    stack.send({"message_id": "throttled"}, group="g1")
    event = stack.receive_event(1)
    dynamodb = WireFaults(bootstrap.clients().dynamodb).error("PutItem", "ThrottlingException")

    # When the handler runs under this function timeout
    response, out, elapsed = _timed(invoke, event, timeout)

    # Then boto3 retried only while a backoff and one more attempt still fitted, and the record is reported
    assert dynamodb.sent["PutItem"] == attempts
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["DynamoDBSaveError"] == 1
    assert elapsed < timeout


def test_dlq_discovery_stops_between_calls_when_the_next_cannot_fit(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an invalid message, no DLQ_URL (the DLQ is found with three lookups), SQS answering in 1.2 s,
    # and a 3 s function timeout
    monkeypatch.delenv("DLQ_URL")
    stack.send("not json", group="g1")
    event = stack.receive_event(1)
    sqs = WireFaults(bootstrap.clients().sqs).slow("GetQueueUrl", (1.2, 1.2))

    # When the handler runs
    response, out, elapsed = _timed(invoke, event, 3)

    # Then the first lookup was made, the second was not sent, and the record goes back to SQS, said so
    assert sqs.sent["GetQueueUrl"] == 1
    assert sqs.sent["GetQueueAttributes"] == sqs.sent["SendMessage"] == 0
    assert failures(response) == [event["Records"][0]["messageId"]]
    [line] = out.steps("message_quarantined")
    assert (line["status"], line["details"]["error_type"]) == ("warning", "OutOfTime")
    assert "was not sent" in line["details"]["send_error"]
    assert stack.dlq_messages() == []
    assert elapsed < 3

    # When SQS delivers it again to an invocation with time enough
    stack.sqs.change_message_visibility(
        QueueUrl=stack.deployed.queue_url, ReceiptHandle=event["Records"][0]["receiptHandle"], VisibilityTimeout=0
    )
    response, _ = invoke(stack.receive_event(1))

    # Then it is quarantined
    assert failures(response) == []
    assert [message["Body"] for message in stack.dlq_messages()] == ["not json"]


def test_more_delete_rounds_than_workers_stop_at_the_deadline(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 40 records of a standard queue (four DeleteMessageBatch calls), one worker, deletes answering
    # in 2 s to 3 s, and an 8 s function timeout
    monkeypatch.setenv("MAX_CONCURRENCY", "1")
    event = standard_queue_event(stack, 40)
    sqs = WireFaults(bootstrap.clients().sqs).slow("DeleteMessageBatch", (2.0, 3.0))

    # When the handler runs
    response, out, elapsed = _timed(invoke, event, 8)

    # Then every record is stored and none reported, and the invocation ended before its deadline
    assert failures(response) == []
    assert len(stack.items()) == 40
    assert elapsed < 8
    # And the deletes that could not fit were not sent: each record has one delete line, those say Lambda deletes it
    assert 1 <= sqs.sent["DeleteMessageBatch"] < 4
    lines = out.steps("sqs_delete_message")
    assert len(lines) == 40
    left = [line for line in lines if line["status"] == "warning"]
    assert left
    assert all("Lambda deletes it" in line["details"]["skipped"] for line in left)


def test_a_timeout_too_short_for_any_call_is_said_once_per_container_and_counted(stack: Stack, invoke: Invoker) -> None:
    # Given a 2 s function timeout: less than the reserve and one attempt (a connect and a 0.5 s read) need
    stack.send({"message_id": "short-1"}, group="g1")
    stack.send({"message_id": "short-2"}, group="g2")
    event = stack.receive_event(2)
    dynamodb, sqs = WireFaults(bootstrap.clients().dynamodb), WireFaults(bootstrap.clients().sqs)

    # When two invocations of one container run with it
    first, first_out = invoke(event, timeout_seconds=2)
    second, second_out = invoke(event, timeout_seconds=2)

    # Then no AWS call was sent, and every record was reported each time
    assert sum(dynamodb.sent.values()) == sum(sqs.sent.values()) == 0
    ids = [record["messageId"] for record in event["Records"]]
    assert failures(first) == failures(second) == ids
    # And the first invocation said why at ERROR, with the timeout, the minimum and what to change
    [said] = first_out.steps("time_budget")
    assert (said["level"], said["status"]) == ("ERROR", "error")
    assert said["details"]["minimum_timeout_seconds"] == 3
    assert said["details"]["remaining_ms_at_start"] <= 2000
    assert "FunctionTimeout" in said["details"]["hint"]
    assert second_out.steps("time_budget") == []
    # And each invocation counted it
    assert first_out.metrics()["FunctionTimeoutTooShort"] == 1
    assert second_out.metrics()["FunctionTimeoutTooShort"] == 1
    assert second_out.metrics()["BatchItemFailures"] == 2


def test_a_timeout_with_room_for_calls_counts_nothing_too_short(stack: Stack, invoke: Invoker) -> None:
    # Given a 3 s function timeout, the shortest the template allows
    stack.send({"message_id": "quick"}, group="g1")

    # When a message is handled
    response, out = invoke(stack.receive_event(1), timeout_seconds=3)

    # Then it is stored and deleted, and nothing says the timeout is too short
    assert failures(response) == []
    assert "quick" in stack.items()
    assert out.metrics()["FunctionTimeoutTooShort"] == 0
    assert out.metrics()["MessagesDeleted"] == 1
    assert out.steps("time_budget") == []


@contextlib.contextmanager
def _server_that_never_answers() -> Iterator[tuple[str, list[socket.socket]]]:
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        server.close()
        for connection in accepted:
            connection.close()


def test_a_call_to_a_server_that_never_answers_gives_up_before_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the consumer's clients pointed at a real socket that accepts and never answers
    with _server_that_never_answers() as (url, accepted):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        clients = bootstrap.clients()
        # And 1.6 s left before the deadline: less than the client's own 2 s read timeout
        deadline = Deadline(time.monotonic() + 1.6)

        # When a PutItem is made
        with clients.budget.until(deadline), pytest.raises(ReadTimeoutError):
            clients.dynamodb.put_item(TableName="t", Item={"k": {"S": "v"}})

        # Then its read timeout was cut to what was left, and no retry was started: it ended before the deadline
        assert time.monotonic() < deadline.at
        assert len(accepted) == 1
