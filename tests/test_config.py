"""Configuration: read once per container into a frozen dataclass; a bad value fails loudly and processes nothing."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from consumer import bootstrap
from consumer.config import Config
from consumer.exceptions import ConfigurationError
from tests.conftest import Invoker, Stack, failures

# The handler raises before any metric is added; Powertools warns about that, which is expected here.
NO_METRICS_WARNING = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

# ---- A bad value fails the first invocation, naming the variable ----


@NO_METRICS_WARNING
@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("MAX_CONCURRENCY", "0", id="max-concurrency-zero"),
        pytest.param("MAX_CONCURRENCY", "abc", id="max-concurrency-not-a-number"),
        pytest.param("MAX_CONCURRENCY", "101", id="max-concurrency-above-100"),
        pytest.param("MAX_CONCURRENCY", "2.5", id="max-concurrency-fraction"),
        pytest.param("RECORD_TTL_DAYS", "-1", id="ttl-negative"),
        pytest.param("RECORD_TTL_DAYS", "x", id="ttl-not-a-number"),
        pytest.param("LOG_MESSAGE_BODY", "maybe", id="log-body-not-a-boolean"),
        pytest.param("IDEMPOTENCY_KEY_JMESPATH", "[[", id="key-path-not-jmespath"),
        pytest.param("DYNAMO_KEY_ATTRIBUTE", "_meta", id="key-attribute-reserved-meta"),
        pytest.param("DYNAMO_KEY_ATTRIBUTE", "expires_at", id="key-attribute-reserved-ttl"),
        pytest.param("DYNAMO_KEY_ATTRIBUTE", "k" * 256, id="key-attribute-over-255-bytes"),
        pytest.param("PAYLOAD_BUCKET", "Payload_Bucket", id="payload-bucket-not-a-bucket-name"),
        pytest.param("POINTER_BUCKETS", "producer-a,s3://producer-b", id="pointer-buckets-not-bucket-names"),
        pytest.param("MAX_PAYLOAD_BYTES", "1000", id="max-payload-below-1-kib"),
        pytest.param("MAX_PAYLOAD_BYTES", "1MB", id="max-payload-not-a-number"),
    ],
)
def test_an_invalid_setting_fails_the_invocation_naming_the_variable_and_processes_nothing(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    # Given a message waiting and a malformed setting
    monkeypatch.setenv(name, value)
    stack.send({"message_id": "order-1"}, group="g1")
    event = stack.receive_event(1)

    # When Lambda invokes the function
    error, out = invoke.raising(event)

    # Then the invocation fails with an error that names the variable and shows the value
    assert isinstance(error, ConfigurationError)
    assert name in str(error)
    assert value in str(error)
    # And nothing was processed: not stored, not quarantined, still in the queue for a fixed deployment
    assert out.steps("message_received") == []
    assert stack.items() == {}
    assert stack.dlq_messages() == []
    assert stack.messages_in_queue() == 1


@NO_METRICS_WARNING
def test_no_region_fails_the_invocation_naming_region(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a message waiting and no REGION, AWS_REGION or AWS_DEFAULT_REGION
    stack.send({"message_id": "order-1"}, group="g1")
    event = stack.receive_event(1)
    for name in ("REGION", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)

    # When Lambda invokes the function
    error, out = invoke.raising(event)

    # Then the error names the setting to add, and nothing was processed
    assert isinstance(error, ConfigurationError)
    assert "REGION" in str(error)
    assert out.steps("message_received") == []
    assert stack.items() == {}
    assert stack.messages_in_queue() == 1


# ---- Config.from_env: defaults and accepted values ----


def test_defaults_apply_when_only_the_region_is_set() -> None:
    # Given an environment with nothing but AWS_REGION
    # When the configuration is read
    config = Config.from_env({"AWS_REGION": "eu-west-1"})

    # Then every other setting has its documented default
    assert config.table_name == "messages_table"
    assert config.key_attribute == "message_id"
    assert config.region == "eu-west-1"
    assert config.dlq_url is None
    assert config.idempotency_key_path == "message_id"
    assert config.idempotency_key.search({"message_id": "k-1"}) == "k-1"
    assert config.max_concurrency == 10
    assert config.record_ttl_days is None
    assert config.log_message_body is False
    assert config.payload_bucket is None
    assert config.pointer_buckets == frozenset()
    assert config.max_payload_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("environ", "region"),
    [
        pytest.param({"REGION": "eu-central-1", "AWS_REGION": "us-east-1"}, "eu-central-1", id="region-wins"),
        pytest.param({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-east-1"}, "us-west-2", id="aws-region"),
        pytest.param({"AWS_DEFAULT_REGION": "ap-south-1"}, "ap-south-1", id="aws-default-region"),
        pytest.param({"REGION": "  ", "AWS_REGION": "sa-east-1"}, "sa-east-1", id="blank-region-ignored"),
    ],
)
def test_the_region_comes_from_region_then_aws_region_then_aws_default_region(
    environ: dict[str, str], region: str
) -> None:
    # Given region variables in some combination
    # When the configuration is read
    config = Config.from_env(environ)

    # Then the first one set wins
    assert config.region == region


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        pytest.param("DYNAMO_TABLE", "orders", "table_name", "orders", id="table"),
        pytest.param("DLQ_URL", "https://sqs/q-dlq.fifo", "dlq_url", "https://sqs/q-dlq.fifo", id="dlq-url"),
        pytest.param("DLQ_URL", "", "dlq_url", None, id="dlq-url-empty"),
        pytest.param("MAX_CONCURRENCY", "1", "max_concurrency", 1, id="concurrency-lowest"),
        pytest.param("MAX_CONCURRENCY", "100", "max_concurrency", 100, id="concurrency-highest"),
        pytest.param("MAX_CONCURRENCY", " 7 ", "max_concurrency", 7, id="concurrency-spaces"),
        pytest.param("MAX_CONCURRENCY", "", "max_concurrency", 10, id="concurrency-empty-is-default"),
        pytest.param("RECORD_TTL_DAYS", "1", "record_ttl_days", 1, id="ttl-one-day"),
        pytest.param("RECORD_TTL_DAYS", "", "record_ttl_days", None, id="ttl-empty-is-none"),
        pytest.param("LOG_MESSAGE_BODY", "true", "log_message_body", True, id="log-true"),
        pytest.param("LOG_MESSAGE_BODY", "TRUE", "log_message_body", True, id="log-upper-true"),
        pytest.param("LOG_MESSAGE_BODY", "1", "log_message_body", True, id="log-1"),
        pytest.param("LOG_MESSAGE_BODY", "yes", "log_message_body", True, id="log-yes"),
        pytest.param("LOG_MESSAGE_BODY", "false", "log_message_body", False, id="log-false"),
        pytest.param("LOG_MESSAGE_BODY", "0", "log_message_body", False, id="log-0"),
        pytest.param("IDEMPOTENCY_KEY_JMESPATH", "payload.id", "idempotency_key_path", "payload.id", id="key-path"),
        pytest.param("DYNAMO_KEY_ATTRIBUTE", "idempotency_key", "key_attribute", "idempotency_key", id="key-attribute"),
        pytest.param("DYNAMO_KEY_ATTRIBUTE", "k" * 255, "key_attribute", "k" * 255, id="key-attribute-255-bytes"),
        pytest.param("PAYLOAD_BUCKET", "my-payloads.eu", "payload_bucket", "my-payloads.eu", id="payload-bucket"),
        pytest.param("PAYLOAD_BUCKET", "", "payload_bucket", None, id="payload-bucket-empty"),
        pytest.param(
            "POINTER_BUCKETS",
            " producer-a, producer-b ,",
            "pointer_buckets",
            {"producer-a", "producer-b"},
            id="buckets",
        ),
        pytest.param("MAX_PAYLOAD_BYTES", "4194304", "max_payload_bytes", 4 * 1024 * 1024, id="max-payload-4-mib"),
    ],
)
def test_a_valid_setting_is_read_into_its_field(name: str, value: str, field: str, expected: Any) -> None:
    # Given one setting next to the region
    # When the configuration is read
    config = Config.from_env({"AWS_REGION": "us-east-1", name: value})

    # Then the field holds the parsed value
    assert getattr(config, field) == expected


def test_the_configured_key_path_finds_a_nested_key() -> None:
    # Given a nested key path
    config = Config.from_env({"AWS_REGION": "us-east-1", "IDEMPOTENCY_KEY_JMESPATH": "payload.transaction.id"})

    # When it is applied to a body
    key = config.idempotency_key.search({"payload": {"transaction": {"id": "tx-1"}}})

    # Then it finds the nested value
    assert key == "tx-1"


def test_the_configuration_is_frozen() -> None:
    # Given a configuration
    config = Config.from_env({"AWS_REGION": "us-east-1"})

    # When code tries to change a setting
    # Then it cannot
    with pytest.raises(FrozenInstanceError):
        config.max_concurrency = 50  # type: ignore[misc]
    assert config.max_concurrency == 10


# ---- The boto3 clients ----


@pytest.mark.parametrize("max_concurrency", ["1", "10", "64", "100"])
def test_clients_retry_in_standard_mode_with_timeouts_and_a_pool_for_every_worker(
    monkeypatch: pytest.MonkeyPatch, max_concurrency: str
) -> None:
    # Given MAX_CONCURRENCY workers
    monkeypatch.setenv("MAX_CONCURRENCY", max_concurrency)

    # When the container builds its clients
    clients = bootstrap.clients()

    # Then both retry in standard mode a bounded number of times, time out quickly,
    # and keep a connection for each worker thread
    for client in (clients.dynamodb, clients.sqs):
        config: Any = client.meta.config  # botocore's stubs do not declare Config's attributes
        assert config.retries is not None
        assert config.retries["mode"] == "standard"
        assert 1 < config.retries["total_max_attempts"] <= 5
        assert config.connect_timeout is not None
        assert 0 < float(config.connect_timeout) <= 5
        assert config.read_timeout is not None
        assert 0 < float(config.read_timeout) <= 10
        assert config.max_pool_connections is not None
        assert config.max_pool_connections >= int(max_concurrency)
        assert client.meta.region_name == "us-east-1"


def test_clients_use_the_configured_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given REGION differs from the runtime's AWS_REGION
    monkeypatch.setenv("REGION", "eu-west-1")

    # When the container builds its clients
    clients = bootstrap.clients()

    # Then they talk to REGION
    assert clients.dynamodb.meta.region_name == "eu-west-1"
    assert clients.sqs.meta.region_name == "eu-west-1"


# ---- Read once per container ----


def _received_details(out: Any, sqs_message_id: str) -> dict[str, Any]:
    (line,) = out.steps("message_received", sqs_message_id)
    details: dict[str, Any] = line["details"]
    return details


def test_settings_changed_after_the_first_invocation_apply_only_to_a_new_container(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a container that has handled one message with the defaults
    stack.send({"message_id": "m-1", "payload": {"id": "p-1"}}, group="g1")
    first, out = invoke(stack.receive_event(1))
    assert failures(first) == []
    assert "body" not in _received_details(out, out.steps("message_received")[0]["trace_id"])

    # When the environment changes under it: log bodies, and take the key from payload.id
    monkeypatch.setenv("LOG_MESSAGE_BODY", "true")
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", "payload.id")
    stack.send({"message_id": "m-2", "payload": {"id": "p-2"}}, group="g1")
    event = stack.receive_event(1)
    second, out = invoke(event)

    # Then the running container still uses what it read first: no body logged, keyed by message_id
    assert failures(second) == []
    assert "body" not in _received_details(out, event["Records"][0]["messageId"])
    assert sorted(stack.items()) == ["m-1", "m-2"]

    # And a new container (reset) reads the new values
    bootstrap.reset()
    body = json.dumps({"payload": {"id": "p-3"}})
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    third, out = invoke(event)
    assert failures(third) == []
    assert _received_details(out, event["Records"][0]["messageId"])["body"] == body
    assert sorted(stack.items()) == ["m-1", "m-2", "p-3"]


@NO_METRICS_WARNING
def test_a_setting_broken_after_the_first_invocation_breaks_only_a_new_container(
    stack: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a container that has handled one message
    stack.send({"message_id": "m-1"}, group="g1")
    invoke(stack.receive_event(1))

    # When MAX_CONCURRENCY becomes invalid
    monkeypatch.setenv("MAX_CONCURRENCY", "abc")
    stack.send({"message_id": "m-2"}, group="g1")
    response, _ = invoke(stack.receive_event(1))

    # Then the running container carries on with what it read
    assert failures(response) == []
    assert sorted(stack.items()) == ["m-1", "m-2"]

    # And only a new container fails, naming the variable
    bootstrap.reset()
    stack.send({"message_id": "m-3"}, group="g1")
    error, _ = invoke.raising(stack.receive_event(1))
    assert isinstance(error, ConfigurationError)
    assert "MAX_CONCURRENCY" in str(error)
    assert sorted(stack.items()) == ["m-1", "m-2"]
