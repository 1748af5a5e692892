"""SQS Extended Client pointers: a body that names an S3 object holding the real message.

Producers using the Extended Client (Java ``amazon-sqs-java-extended-client-lib``, Python
``amazon-sqs-extended-client`` and their ports) put a large payload in S3 and send::

    ["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "...", "s3Key": "..."}]

(``com.amazon.sqs.javamessaging.MessageS3Pointer`` in releases before 2.0), with the payload's size
in the ``ExtendedPayloadSize`` message attribute (``SQSLargePayloadSize`` before 2.0). Only
recognising the pointer happens here; reading the object is ``PayloadStore.read``'s job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from consumer.config import BUCKET_NAME
from consumer.exceptions import InvalidMessageError
from consumer.payload_store import S3Location
from consumer.sqs_event import SqsRecord

POINTER_CLASSES = {
    "software.amazon.payloadoffloading.PayloadS3Pointer": "PayloadS3Pointer",
    "com.amazon.sqs.javamessaging.MessageS3Pointer": "MessageS3Pointer",
}
SIZE_ATTRIBUTES = ("ExtendedPayloadSize", "SQSLargePayloadSize")
# A pointer body is a few hundred bytes; anything longer is not worth decoding as one.
MAX_POINTER_BODY_BYTES = 4096
MAX_S3_KEY_BYTES = 1024


@dataclass(frozen=True)
class S3Pointer:
    location: S3Location
    form: str
    # What the producer said the payload weighs (the size attribute), if it said.
    declared_bytes: int | None

    def metadata(self) -> dict[str, Any]:
        """What the stored item's ``_meta`` keeps of the pointer: the producer's object, which it owns."""
        described: dict[str, Any] = {"bucket": self.location.bucket, "key": self.location.key, "form": self.form}
        if self.declared_bytes is not None:
            described["declared_bytes"] = self.declared_bytes
        return described


def pointer_of(record: SqsRecord) -> S3Pointer | None:
    """The pointer this record carries, or None for an ordinary body.

    Raises ``InvalidMessageError("invalid_pointer")`` for a body that names a pointer class (or carries
    the size attribute) but is not a well-formed pointer: it can never be read.
    """
    size_attribute = next((name for name in SIZE_ATTRIBUTES if name in record.message_attributes), None)
    named = (
        any(name in record.body for name in POINTER_CLASSES) if len(record.body) <= MAX_POINTER_BODY_BYTES else False
    )
    if not named:
        if size_attribute is None:
            return None
        raise InvalidMessageError(
            "invalid_pointer", f"the message has the {size_attribute} attribute, but its body is not an S3 pointer"
        )
    try:
        value = json.loads(record.body)
    except ValueError:
        value = None
    if not (isinstance(value, list) and len(value) == 2 and value[0] in POINTER_CLASSES):
        if size_attribute is None:
            return None  # an ordinary body that happens to quote the class name
        raise InvalidMessageError(
            "invalid_pointer", f"the message has the {size_attribute} attribute, but its body is not an S3 pointer"
        )
    return S3Pointer(
        location=_location(value[1]),
        form=POINTER_CLASSES[value[0]],
        declared_bytes=_declared_size(record.message_attributes, size_attribute),
    )


def _location(target: object) -> S3Location:
    if not isinstance(target, Mapping):
        raise InvalidMessageError("invalid_pointer", "the pointer's second element is not an object")
    bucket, key = target.get("s3BucketName"), target.get("s3Key")
    if not isinstance(bucket, str) or not BUCKET_NAME.fullmatch(bucket):
        raise InvalidMessageError("invalid_pointer", "the pointer's s3BucketName is missing or not a bucket name")
    if not isinstance(key, str) or not key or _utf8_size(key) > MAX_S3_KEY_BYTES:
        raise InvalidMessageError(
            "invalid_pointer", f"the pointer's s3Key is missing, empty, not UTF-8 or over {MAX_S3_KEY_BYTES} bytes"
        )
    return S3Location(bucket, key)


def _utf8_size(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return MAX_S3_KEY_BYTES + 1


def _declared_size(attributes: Mapping[str, Any], name: str | None) -> int | None:
    """The producer's figure, for the log and the item; the object's own length is what counts."""
    value = attributes.get(name) if name else None
    text = value.get("stringValue") if isinstance(value, Mapping) else None
    return int(text) if isinstance(text, str) and text.isascii() and text.isdigit() else None
