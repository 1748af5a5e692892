"""DynamoDB adapter: one conditional PutItem is both the idempotency check and the save."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from consumer.dynamodb_item import KEY_ATTRIBUTE, METADATA_ATTRIBUTE
from consumer.exceptions import (
    ConfigurationError,
    DynamoDBCheckError,
    DynamoDBSaveError,
    OutOfTime,
    StoreConfigurationError,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# DynamoDB refuses the request itself: the table or the configuration is wrong, not the message.
_CONFIGURATION_ERRORS = {"ValidationException", "ResourceNotFoundException", "AccessDeniedException"}


class SaveOutcome(enum.Enum):
    SAVED = "saved"
    # boto3 retried a write whose answer was lost, and found the item that attempt wrote.
    SAVED_BY_LOST_ATTEMPT = "saved_by_lost_attempt"
    DUPLICATE = "duplicate"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


class MessageStore:
    def __init__(self, client: DynamoDBClient, table_name: str, key_attribute: str = KEY_ATTRIBUTE) -> None:
        self._client = client
        self._table_name = table_name
        self._key_attribute = key_attribute
        self._schema_checked = False
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    @property
    def table_name(self) -> str:
        return self._table_name

    @property
    def _where(self) -> str:
        return f"table {self._table_name!r} in {self._client.meta.region_name}"

    def check_key_schema_once(self) -> str | None:
        """Refuse a table whose key is not DYNAMO_KEY_ATTRIBUTE; returns why it could not look, if so.

        Once per container: a write to a table keyed by another of the body's fields would succeed,
        and silently deduplicate on the wrong field. With no time left it looks on the next invocation.
        """
        if self._schema_checked:
            return None
        try:
            table = self._client.describe_table(TableName=self._table_name)["Table"]
        except OutOfTime as late:
            return f"DescribeTable on {self._where} not sent ({late}); it is checked on the next invocation"
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise ConfigurationError(
                    f"DYNAMO_TABLE: there is no {self._where}: set DYNAMO_TABLE (and REGION) to the stack's table"
                ) from error
            self._schema_checked = True
            return f"DescribeTable on {self._where} failed ({code}); the first write will tell"
        except BotoCoreError as error:
            self._schema_checked = True
            return f"DescribeTable on {self._where} failed ({type(error).__name__}); the first write will tell"
        self._schema_checked = True
        schema = [(key["AttributeName"], key["KeyType"]) for key in table.get("KeySchema", [])]
        types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
        if schema != [(self._key_attribute, "HASH")] or types.get(self._key_attribute) != "S":
            found = ", ".join(f"{name} ({kind}, {types.get(name, '?')})" for name, kind in schema) or "none"
            raise ConfigurationError(
                f"DYNAMO_KEY_ATTRIBUTE={self._key_attribute!r} does not match the key schema of {self._where}: "
                f"its key is {found}. The consumer needs a string partition key named {self._key_attribute!r} "
                "and no sort key: set DYNAMO_KEY_ATTRIBUTE to the table's key, or use a table keyed so"
            )
        return None

    def save(self, item: Mapping[str, Any], body_sha256: str) -> SaveOutcome:
        """Write the item unless its key exists; the first write always wins."""
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item={name: self._serializer.serialize(value) for name, value in item.items()},
                ConditionExpression="attribute_not_exists(#key)",
                ExpressionAttributeNames={"#key": self._key_attribute},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                stored: Mapping[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                return self._duplicate_outcome(stored, item, body_sha256)
            if code in _CONFIGURATION_ERRORS:
                raise StoreConfigurationError(self._refusal(code, error)) from error
            raise DynamoDBSaveError(f"DynamoDB answered {code or 'an error'} after retries: {error}") from error
        except (HTTPClientError, BotocoreConnectionError) as error:
            # Timeouts and dropped connections: the item may or may not be written.
            raise DynamoDBCheckError(f"the write's outcome is unknown ({type(error).__name__}): {error}") from error
        except BotoCoreError as error:
            raise DynamoDBSaveError(f"the write was not sent ({type(error).__name__}): {error}") from error
        return SaveOutcome.SAVED

    def _refusal(self, code: str, error: ClientError) -> str:
        """What the operator must change, naming the setting and the resource."""
        if code == "ResourceNotFoundException":
            return f"there is no {self._where}: set DYNAMO_TABLE (and REGION) to the stack's table ({code})"
        if code == "AccessDeniedException":
            return (
                f"the function's role may not dynamodb:PutItem on {self._where}: grant it, or set DYNAMO_TABLE "
                f"to the table the role covers ({code})"
            )
        return (
            f"DynamoDB refused the write to {self._where} ({code}: {error.response.get('Error', {}).get('Message')}); "
            f"if the table's partition key is not {self._key_attribute!r}, set DYNAMO_KEY_ATTRIBUTE to it"
        )

    def _duplicate_outcome(
        self, stored: Mapping[str, Any] | None, item: Mapping[str, Any], body_sha256: str
    ) -> SaveOutcome:
        raw = (stored or {}).get(METADATA_ATTRIBUTE)
        metadata: Mapping[str, Any] = self._deserializer.deserialize(raw) if raw else {}
        mine = item.get(METADATA_ATTRIBUTE, {})
        # One delivery is one SQS message received once: the same message id and receive count.
        if metadata and all(
            metadata.get(name) == mine.get(name) for name in ("sqs_message_id", "approximate_receive_count")
        ):
            return SaveOutcome.SAVED_BY_LOST_ATTEMPT
        stored_hash = metadata.get("body_sha256")
        if stored_hash is not None and stored_hash != body_sha256:
            return SaveOutcome.CONFLICTING_DUPLICATE
        return SaveOutcome.DUPLICATE
