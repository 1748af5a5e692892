"""Logs and metrics: one line per record at INFO, every step at DEBUG, one shape; EMF on stdout only."""

from __future__ import annotations

import json
from collections import Counter

import boto3
import pytest

from consumer import bootstrap, telemetry
from tests.conftest import REGION, Invoker, Stack
from tests.faults import WireFaults

STEP_FIELDS = {"trace_id", "action", "status", "details"}
STATUSES = {"info", "success", "warning", "error"}


def _mixed_batch(stack: Stack) -> dict[str, object]:
    stack.send({"message_id": "new-1"}, group="g1")
    stack.send({"message_id": "new-1"}, group="g1")
    stack.send("not json", group="g2")
    return stack.receive_event(3)


def test_every_log_line_has_the_step_shape_and_the_request_id(stack: Stack, invoke: Invoker) -> None:
    # Given a batch with a new message, a duplicate and an invalid body, and the level at DEBUG (every step)
    event = _mixed_batch(stack)

    # When it is handled
    _, out = invoke(event)

    # Then every line is JSON with trace_id, action, status and details, and the request id
    assert out.logs
    for line in out.logs:
        assert set(line) >= STEP_FIELDS, line
        assert line["status"] in STATUSES
        assert isinstance(line["details"], dict)
        assert line["function_request_id"]
        assert line["service"] == "sqs-fifo-consumer"
    # And each record went through the steps it should, under the right trace id
    actions = {line["action"] for line in out.logs}
    expected = {"message_received", "message_parse", "dynamodb_save", "message_skipped", "message_quarantined"}
    assert expected | {"sqs_get_url", "sqs_delete_message"} <= actions
    first, _, invalid = (record["messageId"] for record in event["Records"])  # type: ignore[attr-defined]
    assert out.steps("message_received", first)  # before the key is known: the SQS messageId
    assert [line["action"] for line in out.logs if line["trace_id"] == "new-1"].count("dynamodb_save") == 2
    assert out.steps("message_quarantined", invalid)
    assert len(out.steps("sqs_delete_message")) == 3


def test_metrics_are_emf_with_every_counter_in_one_blob(stack: Stack, invoke: Invoker) -> None:
    # Given a mixed batch
    event = _mixed_batch(stack)

    # When it is handled
    _, out = invoke(event)

    # Then one EMF blob holds every counter, in the configured namespace, by service
    blobs = [blob for blob in out.emf if "MessagesSaved" in blob]
    assert len(blobs) == 1
    [directive] = blobs[0]["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "SqsFifoConsumer"
    assert ["service"] in directive["Dimensions"]
    assert blobs[0]["service"] == "sqs-fifo-consumer"
    assert {metric["Name"] for metric in directive["Metrics"]} == set(telemetry.METRIC_NAMES)
    assert {metric["Unit"] for metric in directive["Metrics"]} == {"Count"}
    metrics = out.metrics()
    assert (metrics["MessagesSaved"], metrics["DuplicateMessages"], metrics["InvalidMessages"]) == (1, 1, 1)
    # And nothing went to the CloudWatch API (moto lists S3's own metrics for the payload bucket, in the
    # AWS/ namespaces, where PutMetricData may not write)
    listed = boto3.client("cloudwatch", region_name=REGION).list_metrics()["Metrics"]
    assert [metric for metric in listed if not metric["Namespace"].startswith("AWS/")] == []


def test_the_cold_start_is_counted_once_per_container(stack: Stack, invoke: Invoker) -> None:
    # Given a new container
    stack.send({"message_id": "c1"}, group="g1")

    # When it handles two batches
    _, first = invoke(stack.receive_event(1))
    stack.send({"message_id": "c2"}, group="g2")
    _, second = invoke(stack.receive_event(1))

    # Then only the first reports a cold start, and each invocation's line says which was cold
    assert first.metrics().get("ColdStart") == 1
    assert "ColdStart" not in second.metrics()
    assert [line["details"]["cold_start"] for line in first.steps("invocation")] == [True]
    assert [line["details"]["cold_start"] for line in second.steps("invocation")] == [False]


@pytest.fixture
def info_level() -> None:
    """The deployed default: POWERTOOLS_LOG_LEVEL=INFO."""
    telemetry.logger.setLevel("INFO")


@pytest.mark.usefixtures("info_level")
def test_at_info_each_record_leaves_one_line_with_its_outcome(stack: Stack, invoke: Invoker) -> None:
    # Given, at INFO, a batch with a new message, a duplicate, an invalid body, and a record held back by a failure
    stack.send({"message_id": "ok-1"}, group="g1")
    stack.send({"message_id": "ok-1"}, group="g1")
    stack.send("not json", group="g2")
    stack.send({"message_id": "bad-write"}, group="g3")
    stack.send({"message_id": "after-bad"}, group="g3")
    event = stack.receive_event(5)
    bootstrap.clients()
    WireFaults(bootstrap.clients().dynamodb).error(
        "PutItem", "ValidationException", when=lambda body: body["Item"]["message_id"]["S"] == "bad-write"
    )
    ids = [record["messageId"] for record in event["Records"]]

    # When it is handled
    _, out = invoke(event)

    # Then every record has exactly one outcome line, with its key as trace_id, its message id and group
    outcomes = out.steps("message_outcome")
    assert Counter(line["details"]["sqs_message_id"] for line in outcomes) == Counter(ids)
    by_id = {line["details"]["sqs_message_id"]: line for line in outcomes}
    expected = ["saved", "duplicate", "quarantined", "failed", "held_back"]
    assert [by_id[message_id]["details"]["outcome"] for message_id in ids] == expected
    assert [by_id[message_id]["trace_id"] for message_id in ids] == ["ok-1", "ok-1", ids[2], "bad-write", ids[4]]
    assert [by_id[message_id]["details"]["message_group_id"] for message_id in ids] == ["g1", "g1", "g2", "g3", "g3"]
    assert by_id[ids[2]]["details"]["reason"] == "invalid_json"
    assert by_id[ids[3]]["details"]["error"] == "StoreConfigurationError"
    assert ids[3] in by_id[ids[4]]["details"]["reason"]
    assert [by_id[message_id]["details"].get("delete") for message_id in ids] == [
        "deleted",
        "deleted",
        "deleted",
        None,
        None,
    ]
    # And the happy paths print nothing else at INFO; problems keep their own warning or error lines
    happy = {"ok-1"}
    assert [line["action"] for line in out.logs if line["trace_id"] in happy] == ["message_outcome"] * 2
    others = [line for line in out.logs if line["action"] not in {"message_outcome", "invocation"}]
    assert others
    assert {line["status"] for line in others} <= {"warning", "error"}
    # And the Lambda context is on one line per invocation, not on every record's line
    [invocation] = out.steps("invocation")
    assert invocation["details"]["function_name"]
    assert invocation["details"]["records"] == 5
    assert invocation["details"]["batch_item_failures"] == 2
    assert all("function_arn" not in line for line in outcomes)


@pytest.mark.usefixtures("info_level")
def test_at_info_the_happy_path_logs_one_line_per_record_and_one_per_invocation(stack: Stack, invoke: Invoker) -> None:
    # Given, at INFO, ten new messages over three groups
    for index in range(10):
        stack.send({"message_id": f"order-{index}", "amount": index}, group=f"g{index % 3}")
    event = stack.receive_event(10)

    # When they are handled
    _, out = invoke(event)

    # Then the logs are ten outcome lines and one invocation line, nothing more
    assert Counter(line["action"] for line in out.logs) == {"message_outcome": 10, "invocation": 1}
    assert {line["details"]["outcome"] for line in out.steps("message_outcome")} == {"saved"}
    # And no line repeats the Lambda context or the code location
    assert all("location" not in line and "function_arn" not in line for line in out.steps("message_outcome"))
    size = sum(len(json.dumps(line, separators=(",", ":"))) for line in out.logs + out.emf)
    assert size < 10 * 800
