"""Rule 8: handled records are deleted in batches of ten; delete trouble never fails a stored record."""

from __future__ import annotations

from consumer import bootstrap
from tests.conftest import Invoker, Stack, failures, load_event, standard_queue_event
from tests.faults import WireFaults, refuse


def test_handled_records_are_deleted_ten_per_call(stack: Stack, invoke: Invoker) -> None:
    # Given a standard-queue batch of 25 (standard queues allow batches over ten)
    event = standard_queue_event(stack, 25)
    sqs = WireFaults(bootstrap.clients().sqs)

    # When it is handled
    response, out = invoke(event)

    # Then three DeleteMessageBatch calls removed all 25, and each deletion has its own log line
    assert failures(response) == []
    assert sqs.sent["DeleteMessageBatch"] == 3
    assert out.metrics()["MessagesDeleted"] == 25
    assert len(out.steps("sqs_delete_message")) == 25
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.sqs.get_queue_url(QueueName="standard-orders")["QueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_entries_the_delete_refuses_are_counted_but_the_records_succeed(stack: Stack, invoke: Invoker) -> None:
    # Given a sample event whose receipt handles SQS does not know
    event = load_event("fifo-several-groups.json")

    # When it is handled
    response, out = invoke(event)

    # Then the writes count: nothing is reported failed, each failed entry is counted and logged
    assert failures(response) == []
    assert len(stack.items()) == 5
    assert out.metrics()["SQSDeleteError"] == 5
    assert out.metrics()["MessagesDeleted"] == 0
    assert {line["status"] for line in out.steps("sqs_delete_message")} == {"error"}


def test_a_failed_delete_call_leaves_the_records_successful(stack: Stack, invoke: Invoker) -> None:
    # Given DeleteMessageBatch itself fails
    stack.send({"message_id": "d1"}, group="g1")
    stack.send({"message_id": "d2"}, group="g2")
    event = stack.receive_event(2)
    refuse(bootstrap.clients().sqs, "DeleteMessageBatch", "InternalError", status=500)

    # When the batch is handled
    response, out = invoke(event)

    # Then the messages are stored and not reported as failures (a redelivery would be a duplicate)
    assert failures(response) == []
    assert sorted(stack.items()) == ["d1", "d2"]
    assert out.metrics()["SQSDeleteError"] == 2
    assert out.metrics()["MessagesDeleted"] == 0


def test_the_queue_url_is_looked_up_once_per_container_and_a_failed_lookup_fails_no_record(
    stack: Stack, invoke: Invoker
) -> None:
    # Given GetQueueUrl fails for the first invocation
    stack.send({"message_id": "u1"}, group="g1")
    event = stack.receive_event(1)
    sqs = WireFaults(bootstrap.clients().sqs).error("GetQueueUrl", "AccessDenied", status=403, times=1)

    # When the first batch is handled
    response, out = invoke(event)

    # Then the record still succeeds, nothing is deleted, and the lookup failure is counted and logged
    assert failures(response) == []
    assert "u1" in stack.items()
    assert out.metrics()["SQSGetURLError"] == 1
    assert out.steps("sqs_get_url")[0]["status"] == "error"
    assert sqs.sent["DeleteMessageBatch"] == 0

    # When two more batches arrive in the same container
    for key in ["u2", "u3"]:
        stack.send({"message_id": key}, group="g2")
        invoke(stack.receive_event(1))

    # Then the URL was looked up once more, and then taken from the container's cache
    assert sqs.sent["GetQueueUrl"] == 2
    assert sqs.sent["DeleteMessageBatch"] == 2
