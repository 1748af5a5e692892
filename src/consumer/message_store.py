"""DynamoDB adapter: one conditional PutItem is both the idempotency check and the save."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from consumer.dynamodb_item import KEY_ATTRIBUTE, METADATA_ATTRIBUTE
from consumer.exceptions import DynamoDBCheckError, DynamoDBSaveError, StoreConfigurationError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# DynamoDB refuses the request itself: the table or the configuration is wrong, not the message.
_CONFIGURATION_ERRORS = {"ValidationException", "ResourceNotFoundException", "AccessDeniedException"}


class SaveOutcome(enum.Enum):
    SAVED = "saved"
    DUPLICATE = "duplicate"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


class MessageStore:
    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table_name = table_name
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    @property
    def table_name(self) -> str:
        return self._table_name

    def save(self, item: Mapping[str, Any], body_sha256: str) -> SaveOutcome:
        """Write the item unless its key exists; the first write always wins."""
        try:
            self._client.put_item(
                TableName=self._table_name,
                Item={name: self._serializer.serialize(value) for name, value in item.items()},
                ConditionExpression="attribute_not_exists(#key)",
                ExpressionAttributeNames={"#key": KEY_ATTRIBUTE},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                stored: Mapping[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
                return self._duplicate_outcome(stored, body_sha256)
            if code in _CONFIGURATION_ERRORS:
                raise StoreConfigurationError(f"DynamoDB refused the request ({code}): {error}") from error
            raise DynamoDBSaveError(f"DynamoDB answered {code or 'an error'} after retries: {error}") from error
        except (HTTPClientError, BotocoreConnectionError) as error:
            # Timeouts and dropped connections: the item may or may not be written.
            raise DynamoDBCheckError(f"the write's outcome is unknown ({type(error).__name__}): {error}") from error
        except BotoCoreError as error:
            raise DynamoDBSaveError(f"the write was not sent ({type(error).__name__}): {error}") from error
        return SaveOutcome.SAVED

    def _duplicate_outcome(self, stored: Mapping[str, Any] | None, body_sha256: str) -> SaveOutcome:
        metadata = (stored or {}).get(METADATA_ATTRIBUTE)
        stored_hash = self._deserializer.deserialize(metadata).get("body_sha256") if metadata else None
        if stored_hash is not None and stored_hash != body_sha256:
            return SaveOutcome.CONFLICTING_DUPLICATE
        return SaveOutcome.DUPLICATE
