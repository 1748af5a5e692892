"""S3 adapter: message bodies written once (conditional put), and payloads read with a size limit."""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from consumer.exceptions import InvalidMessageError, PayloadStoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MISSING = {"NoSuchKey", "NoSuchBucket", "404"}
_DENIED = {"AccessDenied", "403", "AllAccessDisabled"}


class PutOutcome(enum.Enum):
    WRITTEN = "written"
    # The object was there already: an earlier delivery of the same body (its key holds the body's hash).
    ALREADY_THERE = "already_there"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class PayloadStore:
    def __init__(self, client: S3Client) -> None:
        self._client = client

    def put_if_absent(self, where: S3Location, body: bytes, sha256: str, content_type: str) -> PutOutcome:
        """One PutObject with If-None-Match: *; S3 answers 412 when the key exists, and writes nothing."""
        try:
            self._client.put_object(
                Bucket=where.bucket,
                Key=where.key,
                Body=body,
                IfNoneMatch="*",
                ContentType=content_type,
                # S3 checks the upload against it, and keeps it: `head-object --checksum-mode ENABLED` shows it.
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode("ascii"),
                Metadata={"sha256": sha256},
            )
        except ClientError as error:
            code = _code(error)
            if code in ("PreconditionFailed", "412"):
                return PutOutcome.ALREADY_THERE
            if code in _MISSING or code in _DENIED:
                raise PayloadStoreError(
                    f"S3 refused PutObject on {where.uri} ({code}): PAYLOAD_BUCKET must name a bucket the function's "
                    "role may s3:PutObject to (template.yaml creates it and grants that)"
                ) from error
            raise PayloadStoreError(
                f"S3 answered PutObject on {where.uri} with {code or 'an error'} after retries"
            ) from error
        except BotoCoreError as error:
            # A timeout may hide a write that happened: the redelivery's put then finds it (412).
            raise PayloadStoreError(f"PutObject on {where.uri} got no answer ({type(error).__name__})") from error
        return PutOutcome.WRITTEN

    def read(self, where: S3Location, max_bytes: int) -> bytes:
        """The object's bytes; a missing object or one over ``max_bytes`` can never be read, so it is invalid."""
        try:
            answer = self._client.get_object(Bucket=where.bucket, Key=where.key)
        except ClientError as error:
            code = _code(error)
            if code in _MISSING:
                raise InvalidMessageError(
                    "payload_missing", f"the pointer names {where.uri}, which does not exist ({code})"
                ) from error
            if code in _DENIED:
                raise PayloadStoreError(
                    f"S3 refused GetObject on {where.uri} ({code}): the function's role needs s3:GetObject on it "
                    "(template parameter ProducerPayloadBucket), s3:ListBucket on the bucket so that a missing object "
                    "reads as missing, and kms:Decrypt if the producer encrypts with a KMS key"
                ) from error
            raise PayloadStoreError(
                f"S3 answered GetObject on {where.uri} with {code or 'an error'} after retries"
            ) from error
        except BotoCoreError as error:
            raise PayloadStoreError(f"GetObject on {where.uri} got no answer ({type(error).__name__})") from error
        stream = answer["Body"]
        try:
            size = answer.get("ContentLength", 0)
            if size > max_bytes:
                raise InvalidMessageError(
                    "payload_too_large",
                    f"{where.uri} is {size} bytes; MAX_PAYLOAD_BYTES allows {max_bytes} (raise it, and the memory)",
                )
            # One byte more than allowed is asked for: a length header that lied cannot make it read more.
            body = stream.read(max_bytes + 1)
        except (BotoCoreError, OSError) as error:
            raise PayloadStoreError(f"reading {where.uri} failed midway ({type(error).__name__})") from error
        finally:
            stream.close()
        if len(body) > max_bytes:
            raise InvalidMessageError(
                "payload_too_large", f"{where.uri} is over {max_bytes} bytes, the limit MAX_PAYLOAD_BYTES sets"
            )
        return body


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
