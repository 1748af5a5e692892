"""`make e2e`'s pure parts: the function's settings from template.yaml, and the checks that fail the run.

The run itself (MiniStack, the built zip) is `make e2e`, not a test; these tests say what it
deploys and show that each of its checks fails when what it checks is not so.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer.config import Config
from consumer.message import body_sha256
from local.e2e_checks import LogView, check_run, expected_metrics
from local.producer import INVALID, VALID, Outgoing, demo_workload
from local.report import DlqMessage
from local.template_resources import Deployed, deploy_local, function_settings, load_template

REGION = "us-east-1"


def _deploy(template: dict[str, Any]) -> Deployed:
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        return deploy_local(sqs, dynamodb, stack_name="e2e-test", region=REGION, template=template)


def test_the_function_is_created_with_the_templates_settings() -> None:
    # Given template.yaml, deployed locally
    template = load_template()
    deployed = _deploy(template)

    # When the emulator's function settings are read from it
    settings = function_settings(deployed, template)

    # Then they are the template's: handler, runtime, architecture, memory, timeout, logs, event source
    assert settings.handler == "handler.lambda_handler"
    assert settings.runtime == "python3.13"
    assert settings.architectures == ("arm64",)
    assert (settings.memory_size, settings.timeout) == (256, 60)
    assert settings.environment == deployed.environment
    assert settings.environment["DYNAMO_TABLE"] == deployed.table_name
    assert settings.environment["DLQ_URL"] == deployed.dlq_url
    assert (settings.log_group, settings.log_format) == ("/aws/lambda/e2e-test-consumer", "JSON")
    assert settings.reserved_concurrency is None
    assert settings.batch_size == 10
    assert settings.function_response_types == ("ReportBatchItemFailures",)
    assert settings.maximum_concurrency == 5


def test_changed_parameter_defaults_reach_the_emulators_function() -> None:
    # Given a template whose memory, timeout, concurrency parameters were changed
    template = copy.deepcopy(load_template())
    for name, value in {"FunctionMemory": 512, "FunctionTimeout": 90, "ReservedConcurrency": 7}.items():
        template["Parameters"][name]["Default"] = value
    template["Parameters"]["EventSourceMaxConcurrency"]["Default"] = 3

    # When the function settings are read
    settings = function_settings(_deploy(template), template)

    # Then the function gets them, as CloudFormation would give them
    assert (settings.memory_size, settings.timeout) == (512, 90)
    assert (settings.reserved_concurrency, settings.maximum_concurrency) == (7, 3)


# A run as MiniStack leaves it when all went well, built from the producer's workload.


def _sent() -> list[Outgoing]:
    plan = demo_workload(12, 3, 4, 5, seed=3)
    return [replace(message, sqs_message_id=f"sqs-{index:03d}", sent_index=index) for index, message in enumerate(plan)]


def _items(sent: list[Outgoing]) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for message in sent:
        if message.kind == VALID:
            meta = {
                "sqs_message_id": message.sqs_message_id,
                "body_sha256": body_sha256(message.body),
                "sequence_number": str(1000 + message.sent_index),
                "processed_at": f"2026-11-30T00:00:{message.sent_index:02d}.000+00:00",
            }
            items[str(message.key)] = {"message_id": message.key, "_meta": meta}
    return items


def _dlq(sent: list[Outgoing]) -> list[DlqMessage]:
    return [
        DlqMessage(f"dlq-{m.sqs_message_id}", m.sqs_message_id, m.body, str(m.expected_reason), "")
        for m in sent
        if m.kind == INVALID
    ]


def _outcome(message: Outgoing, outcome: str | None = None) -> str:
    """The line the function leaves at INFO for a record."""
    outcome = outcome or {VALID: "saved", INVALID: "quarantined"}.get(message.kind, "duplicate")
    details = {"outcome": outcome, "sqs_message_id": message.sqs_message_id}
    return json.dumps(
        {
            "trace_id": message.key or message.sqs_message_id,
            "action": "message_outcome",
            "status": "success",
            "details": details,
        }
    )


def _emf(values: dict[str, int]) -> str:
    metrics = [{"Name": name, "Unit": "Count"} for name in values]
    return json.dumps({"_aws": {"CloudWatchMetrics": [{"Namespace": "n", "Metrics": metrics}]}, **values})


def _logs(sent: list[Outgoing]) -> LogView:
    lines = ["START RequestId: r1 Version: $LATEST"]
    lines += [_outcome(message) for message in sent]
    lines += [_emf(expected_metrics(sent)), "END RequestId: r1", "REPORT RequestId: r1\tDuration: 5 ms"]
    return LogView([lines])


def _config() -> Config:
    return Config.from_env({"AWS_REGION": REGION, "DYNAMO_TABLE": "t"})


def test_a_run_where_everything_ended_in_its_place_passes_every_check() -> None:
    # Given a run whose table, DLQ, queue and logs are what the workload should leave
    sent = _sent()

    # When it is checked
    checks = check_run(sent, _items(sent), _dlq(sent), 0, _logs(sent), _config())

    # Then every check holds
    assert [check.what for check in checks if not check.ok] == []
    assert len(checks) == 8


@pytest.mark.parametrize(
    ("spoil", "failing"),
    [
        pytest.param("lost_item", {"accounted", "table", "metrics"}, id="a valid message is in no place"),
        pytest.param("item_from_duplicate", {"table"}, id="an item was written from a duplicate"),
        pytest.param("dlq_body_changed", {"dlq"}, id="a DLQ copy is not byte-identical"),
        pytest.param("dlq_wrong_reason", {"dlq"}, id="a DLQ message has the wrong reason"),
        pytest.param("queue_not_empty", {"queue"}, id="messages are left on the queue"),
        pytest.param("groups_reordered", {"order"}, id="two messages of a group were saved out of order"),
        pytest.param("received_twice", {"received"}, id="a message was delivered again"),
        pytest.param("traceback_logged", {"logs"}, id="the function printed a traceback"),
    ],
)
def test_each_check_fails_when_the_run_breaks_what_it_checks(spoil: str, failing: set[str]) -> None:
    # Given a good run, then one thing spoiled
    sent = _sent()
    items, dlq, left, logs = _items(sent), _dlq(sent), 0, _logs(sent)
    valid = [m for m in sent if m.kind == VALID]
    first_of_group = [m for m in valid if m.group == valid[0].group][:2]
    if spoil == "lost_item":
        del items[str(valid[0].key)]
        logs = _logs([m for m in sent if m is not valid[0]])
        logs.invocations[0].insert(1, _outcome(valid[0]))
    elif spoil == "item_from_duplicate":
        duplicate = next(m for m in sent if m.kind != VALID and m.key)
        items[str(duplicate.key)]["_meta"]["sqs_message_id"] = duplicate.sqs_message_id
    elif spoil == "dlq_body_changed":
        dlq[0] = replace(dlq[0], body=dlq[0].body + " ")
    elif spoil == "dlq_wrong_reason":
        dlq[0] = replace(dlq[0], reason="invalid_key" if dlq[0].reason != "invalid_key" else "invalid_json")
    elif spoil == "queue_not_empty":
        left = 2
    elif spoil == "groups_reordered":
        one, two = (items[str(m.key)]["_meta"] for m in first_of_group)
        one["sequence_number"], two["sequence_number"] = two["sequence_number"], one["sequence_number"]
    elif spoil == "received_twice":
        logs.invocations.append([_outcome(valid[0], "duplicate")])
    elif spoil == "traceback_logged":
        logs.invocations[0].insert(1, "Traceback (most recent call last):")

    # When the run is checked
    checks = check_run(sent, items, dlq, left, logs, _config())

    # Then the checks about the spoiled thing fail, and say what is wrong
    names = ["accounted", "table", "dlq", "queue", "order", "received", "logs", "metrics"]
    assert {name for name, check in zip(names, checks, strict=True) if not check.ok} == failing
    assert all(check.problems for check in checks if not check.ok)
