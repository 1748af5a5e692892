"""Rule 7: a message that can never succeed goes to the DLQ byte-identical, with its reason; never dropped."""

from __future__ import annotations

import hashlib
import json

import pytest

from consumer import bootstrap
from local.capture import HandlerOutput
from tests.conftest import Invoker, Stack, failures
from tests.faults import WireFaults, refuse

BROKEN = '{"message_id": "order-9", "amount": 12.5,'  # cut off: not JSON


def test_an_invalid_message_is_forwarded_unchanged_with_its_reason(stack: Stack, invoke: Invoker) -> None:
    # Given a truncated body in group g7, with a message attribute of the producer's
    message_id = stack.send(BROKEN, group="g7", attributes={"tenant": {"DataType": "String", "StringValue": "acme"}})
    event = stack.receive_event(1)

    # When the consumer handles it
    response, out = invoke(event)

    # Then it is handled, not failed, and not stored
    assert failures(response) == []
    assert stack.items() == {}
    # And the DLQ holds the same bytes, in the same group, deduplicated by the original messageId
    [quarantined] = stack.dlq_messages()
    assert quarantined["Body"] == BROKEN
    assert quarantined["Attributes"]["MessageGroupId"] == "g7"
    assert quarantined["Attributes"]["MessageDeduplicationId"] == message_id
    attributes = {name: value["StringValue"] for name, value in quarantined["MessageAttributes"].items()}
    assert attributes["quarantine_reason"] == "invalid_json"
    assert "Expecting" in attributes["quarantine_details"]
    assert attributes["source_queue_arn"] == stack.deployed.queue_arn
    assert attributes["original_message_id"] == message_id
    assert attributes["approximate_receive_count"] == "1"
    assert attributes["tenant"] == "acme"
    # And it is gone from the source queue, counted and logged with reason, size and hash
    assert stack.messages_in_queue() == 0
    assert out.metrics()["InvalidMessages"] == 1
    assert out.metrics()["MessagesQuarantined"] == 1
    [parse] = out.steps("message_parse", message_id)
    assert parse["status"] == "error"
    assert parse["details"]["reason"] == "invalid_json"
    assert parse["details"]["body_sha256"] == hashlib.sha256(BROKEN.encode()).hexdigest()
    [received] = out.steps("message_received", message_id)
    assert received["details"]["body_bytes"] == len(BROKEN)
    assert out.steps("message_quarantined", message_id)[0]["status"] == "success"


def test_bodies_reach_the_logs_only_when_log_message_body_is_true(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret in an invalid and in a valid body
    stack.send('{"card": "4111-SECRET"', group="g1")
    stack.send({"message_id": "ok", "card": "4111-SECRET"}, group="g2")

    # When they are handled with the default settings
    _, out = invoke(stack.receive_event(2))

    # Then no log line carries the body
    assert "4111-SECRET" not in json.dumps(out.logs)

    # When LOG_MESSAGE_BODY=true in a new container
    monkeypatch.setenv("LOG_MESSAGE_BODY", "true")
    bootstrap.reset()
    stack.send('{"card": "4111-SECRET"', group="g3")
    _, out = invoke(stack.receive_event(1))

    # Then the received line carries it, for debugging
    [received] = out.steps("message_received")
    assert received["details"]["body"] == '{"card": "4111-SECRET"'


def test_without_dlq_url_the_dlq_comes_from_the_redrive_policy_read_once(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DLQ_URL is not set, and the queue's RedrivePolicy names the DLQ
    monkeypatch.delenv("DLQ_URL")
    sqs = WireFaults(bootstrap.clients().sqs)

    # When two invalid messages arrive in two invocations
    for body in ["not json", "[1, 2]"]:
        stack.send(body, group="g1")
        response, _ = invoke(stack.receive_event(1))
        assert failures(response) == []

    # Then both are in the DLQ, and the policy was read once for the container
    assert sorted(message["Body"] for message in stack.dlq_messages()) == ["[1, 2]", "not json"]
    assert sqs.sent["GetQueueAttributes"] == 1
    assert sqs.sent["GetQueueUrl"] == 2  # the queue, then the DLQ: each once


def test_with_no_dead_letter_queue_at_all_the_message_stays_for_sqs_redrive(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DLQ_URL unset and a source queue without a RedrivePolicy
    monkeypatch.delenv("DLQ_URL")
    stack.sqs.set_queue_attributes(QueueUrl=stack.deployed.queue_url, Attributes={"RedrivePolicy": ""})
    stack.send("not json", group="g1")
    event = stack.receive_event(1)

    # When it is handled
    response, out = invoke(event)

    # Then it is reported as failed (never dropped) and the log says why
    assert failures(response) == [event["Records"][0]["messageId"]]
    [line] = out.steps("message_quarantined")
    assert line["status"] == "error"
    assert "no dead-letter queue" in line["details"]["send_error"]
    assert stack.messages_in_queue() == 1


def test_a_failed_forward_fails_the_record_and_holds_back_its_group(stack: Stack, invoke: Invoker) -> None:
    # Given the DLQ refuses messages, and a valid message behind the invalid one in its group
    stack.send("not json", group="g1")
    stack.send({"message_id": "after"}, group="g1")
    stack.send({"message_id": "other-group"}, group="g2")
    event = stack.receive_event(3)
    refuse(bootstrap.clients().sqs, "SendMessage", "KmsAccessDenied")

    # When the batch is handled
    response, out = invoke(event)

    # Then the invalid one and the one behind it go back to SQS; the other group is stored
    assert failures(response) == [event["Records"][0]["messageId"], event["Records"][1]["messageId"]]
    assert list(stack.items()) == ["other-group"]
    assert out.metrics()["InvalidMessages"] == 1
    assert out.metrics()["MessagesQuarantined"] == 0
    assert stack.messages_in_queue() == 2


def test_local_runs_know_which_records_the_handler_gave_back_without_judging_them(
    stack: Stack, invoke: Invoker
) -> None:
    # Given an invalid message whose forward the DLQ refuses, a valid one behind it, and another group's
    stack.send("not json", group="g1")
    stack.send({"message_id": "after"}, group="g1")
    stack.send({"message_id": "other-group"}, group="g2")
    event = stack.receive_event(3)
    refuse(bootstrap.clients().sqs, "SendMessage", "KmsAccessDenied")

    # When the batch is handled and its log lines are read as `make run` and the soak read them
    _, out = invoke(event)
    read = HandlerOutput()
    read.write("".join(json.dumps(line) + "\n" for line in out.logs))

    # Then the two records given back to SQS are known as such (the soak excuses them if SQS redrives them)
    assert read.handed_back == {event["Records"][0]["messageId"], event["Records"][1]["messageId"]}


def test_a_forward_sqs_refuses_is_sent_again_with_the_reason_only(stack: Stack, invoke: Invoker) -> None:
    # Given a DLQ that refuses the first send (as SQS does when attributes push a message over its size)
    message_id = stack.send(BROKEN, group="g1", attributes={"tenant": {"DataType": "String", "StringValue": "x"}})
    event = stack.receive_event(1)
    sqs = WireFaults(bootstrap.clients().sqs).error("SendMessage", "InvalidParameterValue", times=1)

    # When it is handled
    response, out = invoke(event)

    # Then the message is in the DLQ unchanged, with its reason, and the log says what was left out
    assert failures(response) == []
    assert sqs.sent["SendMessage"] == 2
    [quarantined] = stack.dlq_messages()
    assert quarantined["Body"] == BROKEN
    assert set(quarantined["MessageAttributes"]) == {"quarantine_reason", "original_message_id"}
    [line] = out.steps("message_quarantined", message_id)
    assert line["details"]["attributes_not_carried"] == ["tenant"]
    assert "reason only" in line["details"]["sent_with"]
    assert stack.messages_in_queue() == 0


def test_a_body_with_no_room_left_for_the_reason_goes_to_the_dlq_alone_and_its_group_carries_on(
    stack: Stack, invoke: Invoker
) -> None:
    # Given an invalid body followed by a valid one in its group, and a DLQ that refuses the forward with its
    # attributes and again with the reason only (as SQS does when the body alone nearly fills its 1 MiB)
    message_id = stack.send(BROKEN, group="g1")
    stack.send({"message_id": "behind-it"}, group="g1")
    event = stack.receive_event(2)
    sqs = WireFaults(bootstrap.clients().sqs).error("SendMessage", "InvalidParameterValue", times=2)

    # When they are handled
    response, out = invoke(event)

    # Then the body is in the DLQ byte-identical without attributes, the log keeps its reason, and the record
    # behind it is stored instead of waiting for SQS's redrive
    assert failures(response) == []
    assert sqs.sent["SendMessage"] == 3
    [quarantined] = stack.dlq_messages()
    assert quarantined["Body"] == BROKEN
    assert "MessageAttributes" not in quarantined
    [line] = out.steps("message_quarantined", message_id)
    assert line["level"] == "WARNING"  # seen at the template's LogLevel INFO, unlike a plain quarantine
    assert line["details"]["reason"] == "invalid_json"
    assert "body only" in line["details"]["sent_with"]
    assert list(stack.items()) == ["behind-it"]
    assert out.metrics()["MessagesQuarantined"] == 1


def test_a_dlq_that_refuses_the_reason_only_send_for_another_cause_holds_the_group(
    stack: Stack, invoke: Invoker
) -> None:
    # Given an invalid body and a DLQ that refuses the forward, then answers the lighter send with a 500
    stack.send(BROKEN, group="g1")
    event = stack.receive_event(1)
    sqs = (
        WireFaults(bootstrap.clients().sqs)
        .error("SendMessage", "InvalidParameterValue", times=1)
        .error("SendMessage", "InternalError", status=500, times=4)
    )

    # When it is handled
    response, _ = invoke(event)

    # Then after boto3's three attempts it goes back to SQS, to be forwarded with its reason later
    assert sqs.sent["SendMessage"] == 4
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert stack.dlq_messages() == []


def test_details_point_at_the_offending_field_by_position_and_digest_never_by_name(
    stack: Stack, invoke: Invoker
) -> None:
    # Given a body whose offending field name holds a control character and a card number
    name = "card\x014111111111111111"
    body = '{"message_id": "ctl", "card\\u00014111111111111111": 1E+200}'
    stack.send(body, group="g1")

    # When it is quarantined
    response, out = invoke(stack.receive_event(1))

    # Then the body is unchanged, and the details give the rule, the position and a digest of the name only
    assert failures(response) == []
    [quarantined] = stack.dlq_messages()
    assert quarantined["Body"] == body
    details = quarantined["MessageAttributes"]["quarantine_details"]["StringValue"]
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    expected = f"a number outside DynamoDB's range 1E-130 to 1E+126 at $.#1 (depth 1; field name sha256:{digest})"
    assert details == expected
    # And the log line says the same
    [parse] = out.steps("message_parse")
    assert parse["details"]["error"] == expected
