"""Messages DynamoDB cannot hold whole: pointers read from S3, and bodies written to S3 before their item.

Two rules keep every record in exactly one place:

- **S3 first, then the item.** A body too large for an item is written to ``PAYLOAD_BUCKET`` (a
  conditional put), and only then is the item that points at it written (the conditional
  PutItem). A failure between the two leaves an object no item names; the redelivery puts the
  same object again, S3 answers that it exists, and the item follows. No item ever points at
  nothing, and no fault stores a message twice.
- **One object per key and body.** The object's key is made of the idempotency key's hash and
  the body's hash: a redelivery finds its own object, and a conflicting duplicate (same key,
  another body) can never overwrite the body the stored item names.

A pointer's payload is read only when its record's turn comes (never for a held-back record),
from a bucket ``POINTER_BUCKETS`` lists; the producer's object is never changed or deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from consumer.config import Config
from consumer.dynamodb_item import MAX_ITEM_BYTES, METADATA_ATTRIBUTE, build_item, item_size
from consumer.exceptions import InvalidMessageError, PayloadStoreError
from consumer.extended_client import S3Pointer
from consumer.message import Message
from consumer.payload_store import PayloadStore, PutOutcome, S3Location
from consumer.sqs_event import SqsRecord
from consumer.telemetry import ERROR, SUCCESS, log_step

ITEM_TOO_LARGE = "item_too_large"
# An offloaded body's item keeps the key, _meta and the body's top-level fields that fit in this many
# bytes, in name order: with the key and _meta, an item of a few write units (the whole body is one
# GetObject away). A budget of the fields alone, so the same body keeps the same fields on any delivery.
OFFLOADED_FIELDS_BUDGET_BYTES = 6 * 1024
BODY_PREFIX = "bodies"
CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class BodyUpload:
    """A body to write to S3 before the item that names it."""

    location: S3Location
    body: bytes
    sha256: str


class LargeMessages:
    def __init__(self, payloads: Callable[[], PayloadStore], config: Config) -> None:
        """``payloads`` gives the S3 adapter when a body or a pointer first needs it."""
        self._payloads = payloads
        self._config = config

    def read(self, record: SqsRecord, pointer: S3Pointer) -> SqsRecord:
        """The record with the pointer's payload as its body.

        Raises ``InvalidMessageError`` when the payload can never be read (a bucket not listed,
        a missing object, one over MAX_PAYLOAD_BYTES, bytes that are not UTF-8), and
        ``PayloadStoreError`` when S3 may answer later (throttling, 5xx, timeouts, a refusal).
        """
        where = pointer.location
        details: dict[str, Any] = {"sqs_message_id": record.message_id, **pointer.metadata()}
        try:
            self._check_readable(pointer)
            data = self._payloads().read(where, self._config.max_payload_bytes)
            text = _utf8(data, where)
        except InvalidMessageError as invalid:
            log_step(
                record.message_id,
                "s3_get_payload",
                ERROR,
                {**details, "reason": invalid.reason, "error": invalid.details},
            )
            raise
        except PayloadStoreError as failure:
            log_step(
                record.message_id,
                "s3_get_payload",
                ERROR,
                {**details, "error_type": type(failure).__name__, "error": str(failure)},
            )
            raise
        log_step(record.message_id, "s3_get_payload", SUCCESS, {**details, "payload_bytes": len(data)})
        return replace(record, body=text)

    def item(
        self, message: Message, processed_at: datetime, pointer: S3Pointer | None = None
    ) -> tuple[dict[str, Any], BodyUpload | None]:
        """The item to write, and the body to write to S3 first when the whole body does not fit in it."""
        config = self._config
        try:
            item = build_item(message, processed_at, config.record_ttl_days, config.key_attribute)
        except InvalidMessageError as invalid:
            # build_item checks every other rule before the size: this body is valid, only large.
            if invalid.reason != ITEM_TOO_LARGE:
                raise
            return self._offloaded(message, processed_at, pointer, invalid)
        if pointer is None:
            return item, None
        item[METADATA_ATTRIBUTE]["extended_client"] = pointer.metadata()
        size = item_size(item)
        if size > MAX_ITEM_BYTES:
            too_large = InvalidMessageError(
                ITEM_TOO_LARGE, f"the item would be {size} bytes; DynamoDB's limit is {MAX_ITEM_BYTES}"
            )
            return self._offloaded(message, processed_at, pointer, too_large)
        return item, None

    def write(self, upload: BodyUpload, trace_id: str, sqs_message_id: str) -> None:
        """Put the body unless its object exists; raises ``PayloadStoreError`` for the record to be retried."""
        details: dict[str, Any] = {
            "sqs_message_id": sqs_message_id,
            "bucket": upload.location.bucket,
            "key": upload.location.key,
            "body_bytes": len(upload.body),
        }
        try:
            outcome = self._payloads().put_if_absent(upload.location, upload.body, upload.sha256, CONTENT_TYPE)
        except PayloadStoreError as failure:
            log_step(
                trace_id,
                "s3_put_payload",
                ERROR,
                {**details, "error_type": type(failure).__name__, "error": str(failure)},
            )
            raise
        if outcome is PutOutcome.ALREADY_THERE:
            details["result"] = "the object exists (an earlier delivery wrote it): the same key and body"
        log_step(trace_id, "s3_put_payload", SUCCESS, details)

    def _check_readable(self, pointer: S3Pointer) -> None:
        bucket, allowed = pointer.location.bucket, self._config.pointer_buckets
        if bucket not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise InvalidMessageError(
                "pointer_bucket_not_allowed",
                f"the pointer names bucket {bucket!r}; POINTER_BUCKETS lists {listed}: to read it, set the template "
                "parameter ProducerPayloadBucket (or POINTER_BUCKETS) to it",
            )
        declared, limit = pointer.declared_bytes, self._config.max_payload_bytes
        if declared is not None and declared > limit:
            raise InvalidMessageError(
                "payload_too_large",
                f"the producer declares {declared} bytes for {pointer.location.uri}; MAX_PAYLOAD_BYTES allows {limit}",
            )

    def _offloaded(
        self, message: Message, processed_at: datetime, pointer: S3Pointer | None, too_large: InvalidMessageError
    ) -> tuple[dict[str, Any], BodyUpload]:
        bucket = self._config.payload_bucket
        if bucket is None:
            raise InvalidMessageError(
                ITEM_TOO_LARGE,
                f"{too_large.details}; set PAYLOAD_BUCKET to store such bodies in S3 (template.yaml creates one)",
            )
        body = message.record.body.encode("utf-8", "surrogatepass")
        key_hash = hashlib.sha256(message.key.encode("utf-8")).hexdigest()
        location = S3Location(bucket, f"{BODY_PREFIX}/{key_hash}/{message.body_sha256}.json")
        metadata: dict[str, Any] = {
            "body_s3": {"bucket": bucket, "key": location.key, "bytes": len(body), "sha256": message.body_sha256}
        }
        if pointer is not None:
            metadata["extended_client"] = pointer.metadata()
        kept = self._fields_that_fit(message)
        item = self._item_with(replace(message, fields=kept), processed_at, metadata)
        return item, BodyUpload(location, body, message.body_sha256)

    def _fields_that_fit(self, message: Message) -> dict[str, Any]:
        """Top-level fields in name order (Unicode code points, i.e. UTF-8 byte order), each kept whole
        if it still fits in the budget, skipped if not: the same body always keeps the same fields."""
        room = OFFLOADED_FIELDS_BUDGET_BYTES
        kept: dict[str, Any] = {}
        for name in sorted(message.fields):
            if name == self._config.key_attribute:
                continue  # the key attribute holds the key already
            size = item_size({name: message.fields[name]})
            if size <= room:
                kept[name] = message.fields[name]
                room -= size
        return kept

    def _item_with(self, message: Message, processed_at: datetime, metadata: dict[str, Any]) -> dict[str, Any]:
        config = self._config
        item = build_item(message, processed_at, config.record_ttl_days, config.key_attribute)
        item[METADATA_ATTRIBUTE].update(metadata)
        return item


def _utf8(data: bytes, where: S3Location) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidMessageError(
            "invalid_json", f"{where.uri} is not UTF-8 text (byte {error.start}); a JSON message must be"
        ) from None
