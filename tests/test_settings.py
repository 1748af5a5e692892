"""Settings off the defaults: each one works as documented, or is refused with what to change."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from consumer import bootstrap
from consumer.exceptions import ConfigurationError
from local.producer import contract_body
from local.template_resources import deploy_local, load_template
from tests.conftest import REGION, STACK_NAME, Invoker, Stack, failures
from tests.faults import WireFaults


@pytest.fixture
def keyed_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Given a stack deployed with KeyAttributeName=idempotency_key and the key path payload.transaction_id."""
    template = copy.deepcopy(load_template())
    template["Parameters"]["KeyAttributeName"]["Default"] = "idempotency_key"
    template["Parameters"]["IdempotencyKeyJmesPath"]["Default"] = "payload.transaction_id"
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        deployed = deploy_local(sqs, dynamodb, stack_name=STACK_NAME, region=REGION, template=template, s3=s3)
        for name, value in deployed.environment.items():
            monkeypatch.setenv(name, value)
        yield Stack(deployed, sqs, dynamodb, s3)


def _contract(message_id: str, transaction_id: str, sequence: int = 1) -> dict[str, Any]:
    """A producer-contract body that also carries a transaction id."""
    body = contract_body("acct-1", sequence, random.Random(sequence), message_id=message_id)
    body["payload"]["transaction_id"] = transaction_id
    return body


# ---- The key attribute and the key path, set together ----


def test_a_contract_message_is_stored_whole_under_its_transaction_id(keyed_stack: Stack, invoke: Invoker) -> None:
    # Given two contract messages with distinct message_ids but one transaction id
    first, second = _contract("m-1", "txn-42"), _contract("m-2", "txn-42", sequence=2)
    keyed_stack.send(first, group="g1")
    keyed_stack.send(second, group="g1")

    # When they are handled
    response, out = invoke(keyed_stack.receive_event(2))

    # Then the first is stored under the transaction id with every body field, its own message_id included
    assert failures(response) == []
    items = keyed_stack.items()
    assert list(items) == ["txn-42"]
    stored = items["txn-42"]
    assert stored["message_id"] == "m-1"
    assert set(first) <= set(stored)
    assert stored["_meta"]["key_source"] == "body"
    # And the second, same transaction, is a (conflicting) duplicate: nothing in the DLQ
    assert out.metrics()["MessagesSaved"] == 1
    assert out.metrics()["DuplicateMessages"] == 1
    assert out.metrics()["ConflictingDuplicates"] == 1
    assert keyed_stack.dlq_messages() == []
    assert keyed_stack.messages_in_queue() == 0


def test_a_table_keyed_otherwise_is_refused_as_configuration_naming_what_to_change(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the default table (keyed by message_id) and DYNAMO_KEY_ATTRIBUTE=idempotency_key
    monkeypatch.setenv("DYNAMO_KEY_ATTRIBUTE", "idempotency_key")
    stack.send(_contract("m-1", "txn-1"), group="g1")
    event = stack.receive_event(1)

    # When the function is invoked
    error, _ = invoke.raising(event)

    # Then the invocation fails with a configuration error naming the setting, the table, its key and the fix
    assert isinstance(error, ConfigurationError)
    text = str(error)
    assert "DYNAMO_KEY_ATTRIBUTE='idempotency_key'" in text
    assert stack.deployed.table_name in text
    assert "message_id (HASH, S)" in text
    assert REGION in text
    # And nothing was written, quarantined or deleted: the whole batch comes back
    assert stack.items() == {}
    assert stack.dlq_messages() == []
    assert stack.messages_in_queue() == 1


def test_a_missing_table_is_named_with_its_region(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DYNAMO_TABLE names a table that does not exist
    monkeypatch.setenv("DYNAMO_TABLE", "no-such-table")
    stack.send({"message_id": "t-1"}, group="g1")

    # When the function is invoked
    error, _ = invoke.raising(stack.receive_event(1))

    # Then the error names the variable, the table and the region
    assert isinstance(error, ConfigurationError)
    assert "DYNAMO_TABLE" in str(error)
    assert "'no-such-table' in us-east-1" in str(error)
    assert stack.messages_in_queue() == 1


# ---- JMESPath keys are what the user means ----


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        pytest.param("join(':', [tenant, to_string(order.id)])", {"tenant": "acme", "order": {"id": 7}}, "acme:7"),
        pytest.param("to_string(to_number(id))", {"id": "0042"}, "42"),
        pytest.param("to_number(id)", {"id": 12}, "12"),
        pytest.param("max(ids)", {"ids": [3, 11, 7]}, "11"),
        pytest.param("sum(parts)", {"parts": [40, 2]}, "42"),
        pytest.param("abs(delta)", {"delta": -5}, "5"),
        pytest.param("sort(ids)[0]", {"ids": [9, 4, 6]}, "4"),
        pytest.param("join('-', [to_string(a), to_string(b)])", {"a": 1.50, "b": 10**40}, "1.5-" + "1" + "0" * 40),
    ],
)
def test_numbers_reach_jmespath_as_numbers_and_keys_are_their_exact_text(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, Any], key: str
) -> None:
    # Given a key path that computes with the body's numbers
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", path)
    stack.send(body, group="g1")

    # When the message is handled
    response, _ = invoke(stack.receive_event(1))

    # Then it is stored under the number's exact text
    assert failures(response) == []
    assert list(stack.items()) == [key]


def test_an_integer_key_of_any_digit_count_is_stored_as_its_text(stack: Stack, invoke: Invoker) -> None:
    # Given a message_id of 60 digits (more than a DynamoDB number holds)
    digits = "1" * 60
    stack.send('{"message_id": ' + digits + ', "n": 1}', group="g1")

    # When it is handled
    response, _ = invoke(stack.receive_event(1))

    # Then it is stored under those digits, not quarantined
    assert failures(response) == []
    assert list(stack.items()) == [digits]
    assert stack.dlq_messages() == []


# ---- A key path that finds nothing is visible ----


def test_a_key_path_that_finds_nothing_is_counted_and_named(
    keyed_stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a key path with a typo, and a contract body
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", "payload.transaction_idd")
    keyed_stack.send(_contract("m-1", "txn-1"), group="g1", dedup="dedup-1")

    # When it is handled
    response, out = invoke(keyed_stack.receive_event(1))

    # Then it is still stored (under its deduplication id), and the fallback is counted and named
    assert failures(response) == []
    assert list(keyed_stack.items()) == ["dedup-1"]
    assert out.metrics()["IdempotencyKeyFallbacks"] == 1
    [warning] = out.steps("idempotency_key_fallback", "dedup-1")
    assert warning["status"] == "warning"
    assert "IDEMPOTENCY_KEY_JMESPATH='payload.transaction_idd'" in warning["details"]["hint"]


def test_a_key_found_in_the_body_counts_no_fallback(stack: Stack, invoke: Invoker) -> None:
    # Given a body with its message_id; When it is handled
    stack.send({"message_id": "m-1"}, group="g1")
    _, out = invoke(stack.receive_event(1))

    # Then no fallback is counted or logged
    assert out.metrics()["IdempotencyKeyFallbacks"] == 0
    assert out.steps("idempotency_key_fallback") == []


# ---- Refusals name the setting, the resource and the fix ----


def test_a_dlq_url_to_a_missing_queue_names_the_variable_and_the_url(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DLQ_URL points at a queue that does not exist, and an invalid body
    missing = stack.deployed.dlq_url.replace("-dlq", "-nope")
    monkeypatch.setenv("DLQ_URL", missing)
    stack.send("not json", group="g1")
    event = stack.receive_event(1)

    # When it is handled
    response, out = invoke(event)

    # Then the record is reported for a retry and the error names DLQ_URL, the URL and what to do
    assert failures(response) == [event["Records"][0]["messageId"]]
    [line] = out.steps("message_quarantined")
    assert line["status"] == "error"
    assert f"DLQ_URL={missing} does not exist" in line["details"]["send_error"]
    assert "unset it" in line["details"]["send_error"]


def test_access_denied_on_the_dlq_names_the_grant_and_the_queue(stack: Stack, invoke: Invoker) -> None:
    # Given the function's role may not send to the DLQ, and an invalid body
    stack.send("not json", group="g1")
    event = stack.receive_event(1)
    sqs = WireFaults(bootstrap.clients().sqs).error("SendMessage", "AccessDenied", status=403)

    # When it is handled
    response, out = invoke(event)

    # Then the record is retried, with one send only (a lighter resend cannot help), and the error names the grant
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert sqs.sent["SendMessage"] == 1
    [line] = out.steps("message_quarantined")
    assert f"may not sqs:SendMessage to DLQ_URL={stack.deployed.dlq_url}" in line["details"]["send_error"]


def test_access_denied_on_the_table_names_the_role_the_action_and_the_table(stack: Stack, invoke: Invoker) -> None:
    # Given the function's role may not write the table
    stack.send({"message_id": "a-1"}, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.clients().dynamodb).error("PutItem", "AccessDeniedException")

    # When it is handled
    response, out = invoke(event)

    # Then the record is retried (not quarantined) and the error says which grant is missing where
    assert failures(response) == [event["Records"][0]["messageId"]]
    [line] = out.steps("dynamodb_save", "a-1")
    assert "may not dynamodb:PutItem" in line["details"]["error"]
    assert f"{stack.deployed.table_name!r} in us-east-1" in line["details"]["error"]
    assert stack.dlq_messages() == []


# ---- Counts tell the truth ----


def test_a_write_whose_answer_was_lost_then_found_by_the_retry_counts_as_saved(stack: Stack, invoke: Invoker) -> None:
    # Given a write that lands but whose first answer is lost (botocore retries it)
    stack.send({"message_id": "lost-1"}, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.clients().dynamodb).lose_answer("PutItem", times=1)

    # When it is handled
    response, out = invoke(event)

    # Then the retry found this delivery's own write: saved, not a duplicate
    assert failures(response) == []
    assert out.metrics()["MessagesSaved"] == 1
    assert out.metrics()["DuplicateMessages"] == 0
    [save] = out.steps("dynamodb_save", "lost-1")
    assert save["status"] == "success"
    assert "answer was lost" in save["details"]["result"]


def test_the_queue_url_lookup_is_logged_only_when_it_is_made(stack: Stack, invoke: Invoker) -> None:
    # Given two batches in one container
    logged = []
    for key in ["u1", "u2"]:
        stack.send({"message_id": key}, group="g1")
        _, out = invoke(stack.receive_event(1))
        logged.append(len(out.steps("sqs_get_url")))

    # Then the first looked the URL up and said so; the second used the cache and logged no lookup
    assert logged == [1, 0]


def test_the_fallback_alarm_exists_only_for_a_custom_key_path() -> None:
    # Given the template; Then the alarm on IdempotencyKeyFallbacks hangs on a non-default key path
    template = load_template()
    alarm = template["Resources"]["IdempotencyKeyFallbacksAlarm"]
    assert alarm["Properties"]["MetricName"] == "IdempotencyKeyFallbacks"
    condition = template["Conditions"][alarm["Condition"]]
    assert json.dumps(condition) == json.dumps(
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "IdempotencyKeyJmesPath"}, "message_id"]}]}
    )
