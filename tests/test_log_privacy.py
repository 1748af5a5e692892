"""Rule 7, privacy: no name, value or key from a body reaches the logs unless LOG_MESSAGE_BODY=true.

Each body below breaks one rule (or none) with secret-looking field names and values. The whole of
stdout (every log line and EMF blob) and every dead-letter message attribute are scanned for them.
The idempotency key is the producer's id, not content: it is the trace_id, and not secret here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import handler
from consumer import bootstrap
from local.lambda_runtime import LocalContext
from tests.conftest import Stack, failures

_DEEP = '{"SECRET_NAME_J":' * 33 + "1" + "}" * 33

# body, the reason it is quarantined with (None: it is stored), the secrets it holds
BODIES: list[tuple[str, str | None, list[str]]] = [
    ('{"message_id":"p-1","SECRET_NAME_A":"SECRET_VALUE_A",', "invalid_json", ["SECRET_NAME_A", "SECRET_VALUE_A"]),
    ('{"message_id":"p-2","SECRET_NAME_B":1,"SECRET_NAME_B":2}', "invalid_json", ["SECRET_NAME_B"]),
    ('{"message_id":"p-3","SECRET_NAME_C":NaN}', "invalid_json", ["SECRET_NAME_C"]),
    ('"SECRET_VALUE_D"', "not_an_object", ["SECRET_VALUE_D"]),
    ('{"message_id":{"SECRET_NAME_E":"SECRET_VALUE_E"}}', "invalid_key", ["SECRET_NAME_E", "SECRET_VALUE_E"]),
    ('{"message_id":"p-6","_meta":{"SECRET_NAME_F":"SECRET_VALUE_F"}}', "reserved_attribute", ["SECRET_NAME_F"]),
    (
        '{"message_id":"p-7","SECRET_NAME_G":"SECRET_VALUE_G' + "x" * 410_000 + '"}',
        "item_too_large",
        ["SECRET_NAME_G", "SECRET_VALUE_G"],
    ),
    ('{"message_id":"p-8","SECRET_NAME_H":{"SECRET_NAME_I":1E+200}}', "number_out_of_range", ["SECRET_NAME_H"]),
    ('{"message_id":"p-9","SECRET_NAME_I":[1E1000000000000000000]}', "number_out_of_range", ["SECRET_NAME_I"]),
    ('{"message_id":"p-10","SECRET_NAME_J":' + _DEEP + "}", "too_deep", ["SECRET_NAME_J"]),
    ('{"message_id":"p-11","SECRET_NAME_K":{"":"SECRET_VALUE_K"}}', "invalid_attribute_name", ["SECRET_NAME_K"]),
    ('{"message_id":"p-12","' + "SECRET_NAME_L" * 6000 + '":1}', "invalid_attribute_name", ["SECRET_NAME_L"]),
    ('{"message_id":"p-13","SECRET_NAME_M":"SECRET_VALUE_M\\udc00"}', "invalid_unicode", ["SECRET_VALUE_M"]),
    ('{"message_id":"p-14","SECRET_NAME_N":"SECRET_VALUE_N"}', None, ["SECRET_NAME_N", "SECRET_VALUE_N"]),
    ('{"message_id":"p-15","SECRET_NAME_O":"SECRET_VALUE_O"}', None, ["SECRET_NAME_O", "SECRET_VALUE_O"]),
]
BUGGY_KEY = "p-15"


@pytest.fixture(autouse=True)
def no_payload_bucket(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PAYLOAD_BUCKET the body too large for an item is quarantined, so its details are checked too."""
    monkeypatch.delenv("PAYLOAD_BUCKET", raising=False)


def _a_bug_that_quotes_the_item(dynamodb: Any) -> None:
    """At botocore's boundary: the PutItem of one key raises an exception whose message quotes the item."""

    def raise_quoting(request: Any, **_: Any) -> None:
        item = json.loads(request.body)["Item"]
        if item["message_id"]["S"] == BUGGY_KEY:
            raise RuntimeError(f"a bug that quotes the item: {item}")

    dynamodb.meta.events.register_first("before-send.dynamodb.PutItem", raise_quoting)


def _handle_all(stack: Stack, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """Send every body in its own group and handle them in one invocation: (response, stdout, DLQ messages)."""
    for index, (body, _, _) in enumerate(BODIES):
        stack.send(body, group=f"g{index}")
    event = stack.receive_event(len(BODIES))
    _a_bug_that_quotes_the_item(bootstrap.clients().dynamodb)
    capsys.readouterr()
    response = handler.lambda_handler(event, LocalContext())
    stdout = capsys.readouterr().out
    return response, stdout, stack.dlq_messages()


def test_no_name_value_or_key_from_a_body_reaches_the_logs_or_the_dlq_attributes(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given bodies that break each rule, and two valid ones (one meets a bug that quotes it), LOG_MESSAGE_BODY unset
    # When they are handled
    response, stdout, dlq = _handle_all(stack, capsys)

    # Then each invalid one was quarantined with its reason, the valid one stored, the buggy one reported
    reasons = sorted(message["MessageAttributes"]["quarantine_reason"]["StringValue"] for message in dlq)
    assert reasons == sorted(reason for _, reason, _ in BODIES if reason is not None)
    assert list(stack.items()) == ["p-14"]
    assert len(failures(response)) == 1
    attributes = json.dumps([message["MessageAttributes"] for message in dlq])
    # And no secret appears anywhere on stdout or in the dead-letter attributes
    for _, _, secrets in BODIES:
        for secret in secrets:
            assert secret not in stdout, secret
            assert secret not in attributes, secret
    # And the bug was logged with its type and traceback frames, not its message
    [bug] = [line for line in _lines(stdout) if line.get("action") == "message_handle"]
    assert bug["details"]["error_type"] == "RuntimeError"
    assert "raise_quoting" in bug["details"]["traceback"]


def test_with_log_message_body_true_the_bodies_are_in_the_logs(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given LOG_MESSAGE_BODY=true
    monkeypatch.setenv("LOG_MESSAGE_BODY", "true")

    # When the same bodies are handled
    _, stdout, _ = _handle_all(stack, capsys)

    # Then every secret is in the logs (each body on its message_received line), the bug's message too
    for _, _, secrets in BODIES:
        for secret in secrets:
            assert secret in stdout, secret
    [bug] = [line for line in _lines(stdout) if line.get("action") == "message_handle"]
    assert "SECRET_VALUE_O" in bug["exception"]


def test_an_idempotency_key_expression_that_fails_on_a_value_does_not_quote_it(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a key expression applying a function to a body value, and a body where that value is a secret string
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", "abs(order.total)")
    body = '{"order": {"total": "SECRET_VALUE_P"}}'
    stack.send(body, group="g1")
    event = stack.receive_event(1)

    # When it is handled
    capsys.readouterr()
    response = handler.lambda_handler(event, LocalContext())
    stdout = capsys.readouterr().out

    # Then it is quarantined as invalid_key, the details say what was wrong by types only
    assert failures(response) == []
    [dlq] = stack.dlq_messages()
    details = dlq["MessageAttributes"]["quarantine_details"]["StringValue"]
    assert details == "idempotency key expression failed: abs() takes number, the body has string there"
    assert "SECRET_VALUE_P" not in stdout
    assert "SECRET_VALUE_P" not in json.dumps(dlq["MessageAttributes"])


def _lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
