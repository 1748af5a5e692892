"""Rules 5, 6 and 9: failures go back to SQS, a failure holds back only its own group, time is respected."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from consumer import bootstrap
from consumer.aws_clients import MAX_ATTEMPTS
from local.lambda_runtime import sqs_event
from tests.conftest import Invoker, Stack, failures
from tests.faults import WireFaults, refuse


def _key_is(key: str) -> Any:
    return lambda request: request["Item"]["message_id"]["S"] == key


def _ids(event: dict[str, Any]) -> dict[str, str]:
    """SQS messageId by the body's message_id."""
    return {json.loads(record["body"])["message_id"]: record["messageId"] for record in event["Records"]}


def test_a_throttled_write_is_retried_by_boto3_then_reported_for_redelivery(stack: Stack, invoke: Invoker) -> None:
    # Given DynamoDB throttles every attempt
    stack.send({"message_id": "order-1"}, group="g1")
    event = stack.receive_event(1)
    dynamodb = WireFaults(bootstrap.clients().dynamodb).error("PutItem", "ThrottlingException")

    # When the message is handled
    response, out = invoke(event)

    # Then boto3 tried as often as configured, and the record is returned as a failure
    assert dynamodb.sent["PutItem"] == MAX_ATTEMPTS
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["DynamoDBSaveError"] == 1
    assert out.metrics()["BatchItemFailures"] == 1
    assert out.steps("dynamodb_save", "order-1")[0]["status"] == "error"
    # And nothing was written, deleted or quarantined: SQS will deliver it again
    assert stack.items() == {}
    assert stack.messages_in_queue() == 1
    assert stack.dlq_messages() == []


def test_a_passing_server_error_is_absorbed_by_boto3_retries(stack: Stack, invoke: Invoker) -> None:
    # Given DynamoDB answers one 500 and then recovers
    stack.send({"message_id": "order-1"}, group="g1")
    event = stack.receive_event(1)
    dynamodb = WireFaults(bootstrap.clients().dynamodb).error("PutItem", "InternalServerError", status=500, times=1)

    # When the message is handled
    response, out = invoke(event)

    # Then the retry stored it and nobody has to redeliver it
    assert dynamodb.sent["PutItem"] == 2
    assert failures(response) == []
    assert out.metrics()["MessagesSaved"] == 1
    assert "order-1" in stack.items()


def test_a_lost_answer_is_a_check_error_and_the_redelivery_settles_it_as_a_duplicate(
    stack: Stack, invoke: Invoker
) -> None:
    # Given a write that lands but whose answer is lost on every attempt
    stack.send({"message_id": "order-1"}, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.clients().dynamodb).lose_answer("PutItem", times=MAX_ATTEMPTS)

    # When the message is handled
    response, out = invoke(event)

    # Then the outcome is unknown to the consumer: the record is reported for redelivery
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["DynamoDBCheckError"] == 1
    assert "order-1" in stack.items()

    # When SQS delivers it again (visibility timeout over)
    stack.sqs.change_message_visibility(
        QueueUrl=stack.deployed.queue_url, ReceiptHandle=event["Records"][0]["receiptHandle"], VisibilityTimeout=0
    )
    response, out = invoke(stack.receive_event(1))

    # Then the conditional write settles it: a duplicate of the same body, deleted, stored once
    assert failures(response) == []
    assert out.metrics()["DuplicateMessages"] == 1
    assert out.metrics()["ConflictingDuplicates"] == 0
    assert list(stack.items()) == ["order-1"]
    assert stack.messages_in_queue() == 0


def test_a_connection_that_never_opens_is_a_check_error(stack: Stack, invoke: Invoker) -> None:
    # Given DynamoDB cannot be reached at all
    stack.send({"message_id": "order-1"}, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.clients().dynamodb).cut_connection("PutItem")

    # When the message is handled
    response, out = invoke(event)

    # Then it goes back to SQS, counted as a check error
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["DynamoDBCheckError"] == 1
    assert stack.messages_in_queue() == 1


@pytest.mark.parametrize("code", ["ValidationException", "ResourceNotFoundException"])
def test_a_refusal_of_the_request_itself_fails_the_record_and_never_quarantines_it(
    stack: Stack, invoke: Invoker, code: str
) -> None:
    # Given DynamoDB refuses the request (wrong table or configuration, not a bad message)
    stack.send({"message_id": "order-1"}, group="g1")
    event = stack.receive_event(1)
    refuse(bootstrap.clients().dynamodb, "PutItem", code)

    # When the message is handled
    response, out = invoke(event)

    # Then the record fails with an error log that says so, and the message is not sent to the DLQ
    assert failures(response) == [event["Records"][0]["messageId"]]
    [line] = out.steps("dynamodb_save", "order-1")
    assert line["status"] == "error"
    assert line["level"] == "ERROR"
    assert code in line["details"]["error"]
    assert "configuration" in line["details"]["hint"]
    assert out.metrics()["DynamoDBSaveError"] == 1
    assert stack.dlq_messages() == []
    assert stack.messages_in_queue() == 1


def test_a_failed_write_holds_back_the_rest_of_its_group_and_no_other(stack: Stack, invoke: Invoker) -> None:
    # Given group A with three messages, group B with two, and the second write of A failing
    for key, group in [("a1", "A"), ("b1", "B"), ("a2", "A"), ("a3", "A"), ("b2", "B")]:
        stack.send({"message_id": key}, group=group)
    event = stack.receive_event(5)
    ids = _ids(event)
    dynamodb = WireFaults(bootstrap.clients().dynamodb).error(
        "PutItem", "ThrottlingException", times=MAX_ATTEMPTS, when=_key_is("a2")
    )

    # When the batch is handled
    response, out = invoke(event)

    # Then a2 failed, a3 was not even attempted, and both are reported, in order
    assert failures(response) == [ids["a2"], ids["a3"]]
    assert sorted(stack.items()) == ["a1", "b1", "b2"]
    assert dynamodb.sent["PutItem"] == 3 + MAX_ATTEMPTS  # a1, b1, b2 once; a2 retried; a3 never
    [held] = out.steps("message_skipped", ids["a3"])  # not parsed: the key is unknown
    assert held["status"] == "warning"
    assert ids["a2"] in held["details"]["reason"]
    assert out.metrics()["BatchItemFailures"] == 2

    # When SQS delivers the held-back messages again
    response, _ = invoke(_redeliver(stack, event, [ids["a2"], ids["a3"]]))

    # Then they are stored, and the group is complete
    assert failures(response) == []
    assert sorted(stack.items()) == ["a1", "a2", "a3", "b1", "b2"]


def test_records_of_one_group_are_written_in_order_and_groups_run_at_once(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three groups of three, and a wire that holds each write until all three groups have one in flight
    monkeypatch.setenv("MAX_CONCURRENCY", "3")
    for index in range(3):
        for group in "ABC":
            stack.send({"message_id": f"{group}{index}"}, group=group)
    event = stack.receive_event(9)
    all_groups_in_flight = threading.Barrier(3, timeout=60)
    written: list[str] = []
    lock = threading.Lock()

    def rendezvous(request: Any, **_: Any) -> None:
        key = json.loads(request.body)["Item"]["message_id"]["S"]
        all_groups_in_flight.wait()
        with lock:
            written.append(key)

    WireFaults(bootstrap.clients().dynamodb)
    bootstrap.clients().dynamodb.meta.events.register_first("before-send.dynamodb.PutItem", rendezvous)

    # When the batch is handled
    response, _ = invoke(event)

    # Then no barrier broke (the groups ran at the same time), and each group was written in send order
    assert failures(response) == []
    assert len(stack.items()) == 9
    for group in "ABC":
        assert [key for key in written if key.startswith(group)] == [f"{group}0", f"{group}1", f"{group}2"]


def test_no_more_groups_run_at_once_than_max_concurrency(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given MAX_CONCURRENCY=2 and six groups, and a wire that holds each write until a second one
    # is in flight (or none can come): however slow the machine, two writes overlap if they may
    monkeypatch.setenv("MAX_CONCURRENCY", "2")
    groups = "ABCDEF"
    for group in groups:
        stack.send({"message_id": group}, group=group)
    event = stack.receive_event(6)
    in_flight = started = most = 0
    changed = threading.Condition()

    def track(**_: Any) -> None:
        nonlocal in_flight, started, most
        with changed:
            in_flight += 1
            started += 1
            most = max(most, in_flight)
            changed.notify_all()
            changed.wait_for(lambda: in_flight >= 2 or started == len(groups), timeout=60)
        with changed:
            in_flight -= 1
            changed.notify_all()

    WireFaults(bootstrap.clients().dynamodb)
    bootstrap.clients().dynamodb.meta.events.register_first("before-send.dynamodb.PutItem", track)

    # When the batch is handled
    response, _ = invoke(event)

    # Then all were stored, never more than two writes at a time
    assert failures(response) == []
    assert len(stack.items()) == 6
    assert most == 2


def test_a_standard_queue_failure_holds_back_nothing_else(stack: Stack, invoke: Invoker) -> None:
    # Given a standard queue whose messages share a group id (fair queue) and one failing write
    url = stack.sqs.create_queue(QueueName="standard-orders")["QueueUrl"]
    arn = stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for key in ["s1", "s2", "s3"]:
        stack.sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"message_id": key}), MessageGroupId="tenant")
    messages = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])
    event = sqs_event(messages["Messages"], arn)
    WireFaults(bootstrap.clients().dynamodb).error("PutItem", "ThrottlingException", when=_key_is("s1"))

    # When the batch is handled
    response, _ = invoke(event)

    # Then only the failing record is reported; order is not promised, so the others carry on
    assert failures(response) == [_ids(event)["s1"]]
    assert sorted(stack.items()) == ["s2", "s3"]


def test_a_record_is_not_started_when_one_attempt_no_longer_fits(stack: Stack, invoke: Invoker) -> None:
    # Given one group of three, writes that take 1.6 s each, and a 5 s function timeout (4.5 s for calls):
    # the second write starts with 2.9 s left, 1.4 s to spare for a slow machine; after it, at most 1.3 s
    # are left, and any delay only shortens that
    for key in ["t1", "t2", "t3"]:
        stack.send({"message_id": key}, group="g1")
    event = stack.receive_event(3)
    ids = _ids(event)
    dynamodb = WireFaults(bootstrap.clients().dynamodb).slow("PutItem", (1.6, 1.6))

    # When the handler runs
    started = time.monotonic()
    response, out = invoke(event, timeout_seconds=5)
    elapsed = time.monotonic() - started

    # Then two are stored; the third, with 1.3 s left at most (one attempt needs 1.5 s), is reported without a write
    assert failures(response) == [ids["t3"]]
    assert sorted(stack.items()) == ["t1", "t2"]
    assert dynamodb.sent["PutItem"] == 2
    [held] = out.steps("message_skipped", ids["t3"])
    assert "one AWS call attempt needs 1500 ms" in held["details"]["reason"]
    # And the invocation ended before Lambda's deadline
    assert elapsed < 5


def _redeliver(stack: Stack, event: dict[str, Any], message_ids: list[str]) -> dict[str, Any]:
    """What the event source mapping does with reported failures: they become visible again."""
    for record in event["Records"]:
        if record["messageId"] in message_ids:
            stack.sqs.change_message_visibility(
                QueueUrl=stack.deployed.queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )
    return stack.receive_event(len(message_ids))


def test_near_the_deadline_the_consumer_leaves_deletes_to_lambda(stack: Stack, invoke: Invoker) -> None:
    # Given a message whose write takes 1.2 s, under a 3 s function timeout (2.5 s for calls)
    stack.send({"message_id": "late"}, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.clients().dynamodb).slow("PutItem", (1.2, 1.2))
    sqs = WireFaults(bootstrap.clients().sqs)

    # When the handler runs
    started = time.monotonic()
    response, out = invoke(event, timeout_seconds=3)
    elapsed = time.monotonic() - started

    # Then the record succeeds (Lambda deletes it), and the consumer sends no call that could outlive the invocation
    assert failures(response) == []
    assert "late" in stack.items()
    assert sqs.sent["GetQueueUrl"] == sqs.sent["DeleteMessageBatch"] == 0
    [line] = out.steps("sqs_delete_message", "late")
    assert line["status"] == "warning"
    assert "Lambda deletes it" in line["details"]["skipped"]
    assert out.metrics()["MessagesDeleted"] == 0
    assert out.metrics()["SQSDeleteError"] == 0
    assert elapsed < 3
