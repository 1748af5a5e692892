"""The consumer's configuration, read once per container from the environment.

This is the only module that reads ``os.environ``; Powertools reads its own
``POWERTOOLS_*`` variables, with the defaults given here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from consumer.exceptions import ConfigurationError

DEFAULT_SERVICE_NAME = "sqs-fifo-consumer"
DEFAULT_METRICS_NAMESPACE = "SqsFifoConsumer"
MAX_CONCURRENCY_LIMIT = 100
DEFAULT_KEY_ATTRIBUTE = "message_id"
DEFAULT_KEY_PATH = "message_id"
# DynamoDB allows 255 bytes for the name of a key attribute; these two the consumer writes itself.
MAX_KEY_ATTRIBUTE_BYTES = 255
RESERVED_ATTRIBUTES = ("_meta", "expires_at")
# SQS's largest body: a payload read through a pointer is held to it unless MAX_PAYLOAD_BYTES says otherwise.
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES_LIMIT = 64 * 1024 * 1024
# S3's basic rule for a general purpose bucket's name.
BUCKET_NAME = re.compile(r"(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    table_name: str
    key_attribute: str
    region: str
    dlq_url: str | None
    idempotency_key_path: str
    idempotency_key: ParsedResult
    max_concurrency: int
    record_ttl_days: int | None
    log_message_body: bool
    # Bodies whose item would pass DynamoDB's 400 KB go to this bucket; None: they are quarantined.
    payload_bucket: str | None
    # Buckets whose SQS Extended Client pointers are read; a pointer elsewhere is quarantined.
    pointer_buckets: frozenset[str]
    # The largest payload a pointer may name: it is read into memory whole.
    max_payload_bytes: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        region = _text(env, "REGION") or _text(env, "AWS_REGION") or _text(env, "AWS_DEFAULT_REGION")
        if not region:
            raise ConfigurationError("REGION is not set and neither is AWS_REGION: name the AWS region")
        key_path = _text(env, "IDEMPOTENCY_KEY_JMESPATH") or DEFAULT_KEY_PATH
        try:
            compiled = jmespath.compile(key_path)
        except JMESPathError as error:
            raise ConfigurationError(
                f"IDEMPOTENCY_KEY_JMESPATH={key_path!r} is not a JMESPath expression: {error}"
            ) from error
        return cls(
            table_name=_text(env, "DYNAMO_TABLE") or "messages_table",
            key_attribute=_key_attribute(env),
            region=region,
            dlq_url=_text(env, "DLQ_URL") or None,
            idempotency_key_path=key_path,
            idempotency_key=compiled,
            max_concurrency=_integer(env, "MAX_CONCURRENCY", default=10, low=1, high=MAX_CONCURRENCY_LIMIT),
            record_ttl_days=_optional_integer(env, "RECORD_TTL_DAYS", low=1, high=36500),
            log_message_body=_boolean(env, "LOG_MESSAGE_BODY"),
            payload_bucket=_bucket(env, "PAYLOAD_BUCKET"),
            pointer_buckets=_buckets(env, "POINTER_BUCKETS"),
            max_payload_bytes=_integer(
                env, "MAX_PAYLOAD_BYTES", default=DEFAULT_MAX_PAYLOAD_BYTES, low=1024, high=MAX_PAYLOAD_BYTES_LIMIT
            ),
        )


def service_name(environ: Mapping[str, str] | None = None) -> str:
    return _text(os.environ if environ is None else environ, "POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE_NAME


def metrics_namespace(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return _text(env, "POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_METRICS_NAMESPACE


def _text(env: Mapping[str, str], name: str) -> str:
    return env.get(name, "").strip()


def _key_attribute(env: Mapping[str, str]) -> str:
    name = _text(env, "DYNAMO_KEY_ATTRIBUTE") or DEFAULT_KEY_ATTRIBUTE
    if name in RESERVED_ATTRIBUTES:
        raise ConfigurationError(
            f"DYNAMO_KEY_ATTRIBUTE={name!r} is an attribute the consumer writes itself: "
            "name the table's partition key something else"
        )
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_KEY_ATTRIBUTE_BYTES:
        raise ConfigurationError(
            f"DYNAMO_KEY_ATTRIBUTE={name!r} is {size} bytes: DynamoDB allows {MAX_KEY_ATTRIBUTE_BYTES} for a key name"
        )
    return name


def _bucket(env: Mapping[str, str], name: str) -> str | None:
    value = _text(env, name)
    if value and not BUCKET_NAME.fullmatch(value):
        raise ConfigurationError(f"{name}={value!r} is not an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')")
    return value or None


def _buckets(env: Mapping[str, str], name: str) -> frozenset[str]:
    raw = _text(env, name)
    names = [part.strip() for part in raw.split(",") if part.strip()]
    wrong = [part for part in names if not BUCKET_NAME.fullmatch(part)]
    if wrong:
        raise ConfigurationError(
            f"{name}={raw!r}: {wrong[0]!r} is not an S3 bucket name; list bucket names, comma-separated"
        )
    return frozenset(names)


def _integer(env: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    value = _optional_integer(env, name, low=low, high=high)
    return default if value is None else value


def _optional_integer(env: Mapping[str, str], name: str, *, low: int, high: int) -> int | None:
    raw = _text(env, name)
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} is out of range: use {low} to {high}")
    return value


def _boolean(env: Mapping[str, str], name: str) -> bool:
    raw = _text(env, name).lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a boolean: use true or false")
