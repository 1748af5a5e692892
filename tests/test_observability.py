"""Logs and metrics: one JSON line per step with a fixed shape, and EMF on stdout only."""

from __future__ import annotations

import boto3

from consumer import telemetry
from tests.conftest import REGION, Invoker, Stack

STEP_FIELDS = {"trace_id", "action", "status", "details"}
STATUSES = {"info", "success", "warning", "error"}


def _mixed_batch(stack: Stack) -> dict[str, object]:
    stack.send({"message_id": "new-1"}, group="g1")
    stack.send({"message_id": "new-1"}, group="g1")
    stack.send("not json", group="g2")
    return stack.receive_event(3)


def test_every_log_line_has_the_step_shape_and_the_lambda_context(stack: Stack, invoke: Invoker) -> None:
    # Given a batch with a new message, a duplicate and an invalid body
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

    # Then only the first reports a cold start, and log lines say which was cold
    assert first.metrics().get("ColdStart") == 1
    assert "ColdStart" not in second.metrics()
    assert {line["cold_start"] for line in first.logs} == {True}
    assert {line["cold_start"] for line in second.logs} == {False}
