"""SQS Extended Client pointers: the payload is read from the producer's bucket and stored like any body.

The producer's side is played as the Extended Client libraries do it: the payload is an S3 object,
the message body a JSON pointer to it, and ``ExtendedPayloadSize`` (``SQSLargePayloadSize`` before
2.0) its size. Faults are injected at botocore's boundary on the consumer's S3 client.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from consumer import bootstrap
from consumer.aws_clients import MAX_ATTEMPTS
from tests.conftest import Invoker, Stack, failures
from tests.faults import WireFaults

PRODUCER_BUCKET = "producer-payloads"
POINTER = "software.amazon.payloadoffloading.PayloadS3Pointer"
OLD_POINTER = "com.amazon.sqs.javamessaging.MessageS3Pointer"


@pytest.fixture
def producer(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """Given a producer's bucket, which the function is allowed to read pointers from (POINTER_BUCKETS)."""
    stack.s3.create_bucket(Bucket=PRODUCER_BUCKET)
    monkeypatch.setenv("POINTER_BUCKETS", PRODUCER_BUCKET)
    return stack


def _send_pointer(
    stack: Stack,
    payload: str | bytes | None,
    key: str,
    *,
    group: str = "g1",
    form: str = POINTER,
    size_attribute: str = "ExtendedPayloadSize",
    bucket: str = PRODUCER_BUCKET,
) -> str:
    """What the Extended Client sends: the payload put in S3 (unless None), and a pointer to it. Returns the body."""
    data = payload.encode() if isinstance(payload, str) else payload
    if data is not None:
        stack.s3.put_object(Bucket=bucket, Key=key, Body=data)
    body = json.dumps([form, {"s3BucketName": bucket, "s3Key": key}])
    size = {"DataType": "Number", "StringValue": str(len(data or b""))}
    stack.send(body, group=group, attributes={size_attribute: size})
    return body


def _quarantine_reason(stack: Stack, body: str) -> tuple[str, str]:
    """Then the pointer, byte-identical, is the DLQ's only message: its reason and details."""
    [dlq] = stack.dlq_messages()
    assert dlq["Body"] == body
    attributes = dlq["MessageAttributes"]
    return attributes["quarantine_reason"]["StringValue"], attributes["quarantine_details"]["StringValue"]


def _get_objects(s3: WireFaults) -> int:
    return s3.sent["GetObject"]


def test_a_pointer_payload_is_read_and_stored_like_a_body(producer: Stack, invoke: Invoker) -> None:
    # Given a producer that offloaded an order to its bucket and sent a pointer
    payload = json.dumps({"message_id": "order-1", "amount": 19.99, "lines": [{"sku": "A-1"}]})
    pointer = _send_pointer(producer, payload, "2b0f-uuid")
    event = producer.receive_event(1)

    # When the consumer handles it
    response, out = invoke(event)

    # Then the payload is stored as the item, keyed from the payload, with the pointer kept in _meta
    assert failures(response) == []
    item = producer.items()["order-1"]
    assert item["amount"] == Decimal("19.99")
    assert item["lines"] == [{"sku": "A-1"}]
    meta = item["_meta"]
    assert meta["body_sha256"] == hashlib.sha256(payload.encode()).hexdigest()
    assert meta["extended_client"] == {
        "bucket": PRODUCER_BUCKET,
        "key": "2b0f-uuid",
        "form": "PayloadS3Pointer",
        "declared_bytes": len(payload),
    }
    assert "body_s3" not in meta
    # And it is counted and logged, the producer's object left where it is, and the message deleted
    assert out.metrics()["PointersRead"] == 1
    assert out.metrics()["MessagesSaved"] == 1
    [read] = out.steps("s3_get_payload")
    assert (read["status"], read["details"]["payload_bytes"]) == ("success", len(payload))
    assert out.steps("message_parse", "order-1")[0]["status"] == "success"
    assert producer.s3.get_object(Bucket=PRODUCER_BUCKET, Key="2b0f-uuid")["Body"].read() == payload.encode()
    assert producer.dlq_messages() == []
    assert producer.messages_in_queue() == 0
    assert pointer != payload


def test_the_pre_2_0_pointer_and_size_attribute_are_read_too(producer: Stack, invoke: Invoker) -> None:
    # Given a pointer in the form Extended Client releases before 2.0 send
    payload = json.dumps({"message_id": "order-2"})
    _send_pointer(producer, payload, "old-key", form=OLD_POINTER, size_attribute="SQSLargePayloadSize")

    # When it is handled
    response, _ = invoke(producer.receive_event(1))

    # Then its payload is stored
    assert failures(response) == []
    assert producer.items()["order-2"]["_meta"]["extended_client"]["form"] == "MessageS3Pointer"


def test_a_large_pointer_payload_is_copied_to_the_payload_bucket(producer: Stack, invoke: Invoker) -> None:
    # Given a 700 KB payload behind a pointer: too large for an item
    payload = json.dumps({"message_id": "doc-1", "type": "scan", "document": "x" * 700_000})
    _send_pointer(producer, payload, "big-key")

    # When it is handled
    response, out = invoke(producer.receive_event(1))

    # Then the consumer's own copy is written (the producer may delete its object), and the item names both
    assert failures(response) == []
    item = producer.items()["doc-1"]
    copy = item["_meta"]["body_s3"]
    assert copy["bucket"] == producer.deployed.payload_bucket
    stored = producer.s3.get_object(Bucket=copy["bucket"], Key=copy["key"])["Body"].read()
    assert stored == payload.encode()
    assert item["_meta"]["extended_client"]["key"] == "big-key"
    assert item["type"] == "scan"
    assert out.metrics()["PointersRead"] == 1
    assert out.metrics()["PayloadsOffloaded"] == 1


def test_a_redelivered_pointer_is_a_duplicate(producer: Stack, invoke: Invoker) -> None:
    # Given a pointer already stored, sent again
    payload = json.dumps({"message_id": "order-3"})
    _send_pointer(producer, payload, "k3")
    invoke(producer.receive_event(1))
    _send_pointer(producer, payload, "k3")

    # When it is handled
    response, out = invoke(producer.receive_event(1))

    # Then it is a duplicate of the same body
    assert failures(response) == []
    assert out.metrics()["DuplicateMessages"] == 1
    assert out.metrics()["ConflictingDuplicates"] == 0


# ---- Pointers that can never be read: quarantined with a reason ----


def test_a_pointer_to_a_bucket_not_listed_is_quarantined_without_reading_it(producer: Stack, invoke: Invoker) -> None:
    # Given a pointer to a bucket POINTER_BUCKETS does not list
    producer.s3.create_bucket(Bucket="someone-elses-bucket")
    body = _send_pointer(producer, json.dumps({"message_id": "x"}), "k", bucket="someone-elses-bucket")
    event = producer.receive_event(1)
    s3 = WireFaults(bootstrap.s3_client())

    # When it is handled
    response, out = invoke(event)

    # Then the pointer goes to the DLQ unchanged, with a reason naming the setting; S3 is not asked
    assert failures(response) == []
    reason, details = _quarantine_reason(producer, body)
    assert reason == "pointer_bucket_not_allowed"
    assert "someone-elses-bucket" in details
    assert "ProducerPayloadBucket" in details
    assert _get_objects(s3) == 0
    assert producer.items() == {}
    assert out.metrics()["PointersRead"] == 0
    assert out.metrics()["MessagesQuarantined"] == 1


def test_without_pointer_buckets_every_pointer_is_quarantined_naming_the_setting(stack: Stack, invoke: Invoker) -> None:
    # Given a function with no POINTER_BUCKETS, and a pointer
    stack.s3.create_bucket(Bucket=PRODUCER_BUCKET)
    body = _send_pointer(stack, json.dumps({"message_id": "x"}), "k")

    # When it is handled
    response, _ = invoke(stack.receive_event(1))

    # Then it is quarantined, not read
    assert failures(response) == []
    reason, details = _quarantine_reason(stack, body)
    assert reason == "pointer_bucket_not_allowed"
    assert "POINTER_BUCKETS" in details


def test_a_pointer_to_a_missing_object_is_quarantined_as_payload_missing(producer: Stack, invoke: Invoker) -> None:
    # Given a pointer whose object is gone (deleted by its producer, or never written)
    body = _send_pointer(producer, None, "gone")

    # When it is handled
    response, out = invoke(producer.receive_event(1))

    # Then the pointer is quarantined: S3 says the object does not exist, which no retry changes
    assert failures(response) == []
    reason, details = _quarantine_reason(producer, body)
    assert reason == "payload_missing"
    assert f"s3://{PRODUCER_BUCKET}/gone" in details
    [read] = out.steps("s3_get_payload")
    assert (read["status"], read["details"]["reason"]) == ("error", "payload_missing")


@pytest.mark.parametrize(
    ("payload", "reason", "read_as_text"),
    [
        pytest.param(b"not json", "invalid_json", 1, id="not-json"),
        pytest.param(b'["a", "list"]', "not_an_object", 1, id="not-an-object"),
        pytest.param(b'{"message_id": "k", "_meta": 1}', "reserved_attribute", 1, id="reserved-field"),
        pytest.param(b'{"message_id": "\xff"}', "invalid_json", 0, id="not-utf-8"),
    ],
)
def test_an_invalid_payload_quarantines_the_pointer_with_the_usual_reason(
    producer: Stack, invoke: Invoker, payload: bytes, reason: str, read_as_text: int
) -> None:
    # Given a pointer to a payload that can never be stored
    body = _send_pointer(producer, payload, "bad")

    # When it is handled
    response, out = invoke(producer.receive_event(1))

    # Then the pointer (what was received, not the payload) is quarantined with the payload's reason
    assert failures(response) == []
    assert _quarantine_reason(producer, body)[0] == reason
    assert producer.items() == {}
    assert out.metrics()["PointersRead"] == read_as_text
    assert out.metrics()["InvalidMessages"] == 1


def test_a_payload_over_max_payload_bytes_is_quarantined(
    producer: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given MAX_PAYLOAD_BYTES of 2 KB, and a 3 KB payload whose size attribute says 1 byte
    monkeypatch.setenv("MAX_PAYLOAD_BYTES", "2048")
    payload = json.dumps({"message_id": "big", "pad": "x" * 3000})
    producer.s3.put_object(Bucket=PRODUCER_BUCKET, Key="big", Body=payload.encode())
    body = json.dumps([POINTER, {"s3BucketName": PRODUCER_BUCKET, "s3Key": "big"}])
    producer.send(body, group="g1", attributes={"ExtendedPayloadSize": {"DataType": "Number", "StringValue": "1"}})

    # When it is handled
    response, _ = invoke(producer.receive_event(1))

    # Then the object's own length decides: the pointer is quarantined, naming the setting
    assert failures(response) == []
    reason, details = _quarantine_reason(producer, body)
    assert reason == "payload_too_large"
    assert "MAX_PAYLOAD_BYTES" in details


def test_a_declared_size_over_max_payload_bytes_is_quarantined_without_reading(
    producer: Stack, invoke: Invoker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given MAX_PAYLOAD_BYTES of 2 KB, and a pointer whose size attribute declares 3 KB
    monkeypatch.setenv("MAX_PAYLOAD_BYTES", "2048")
    body = _send_pointer(producer, json.dumps({"message_id": "big", "pad": "x" * 3000}), "big")
    event = producer.receive_event(1)
    s3 = WireFaults(bootstrap.s3_client())

    # When it is handled
    response, _ = invoke(event)

    # Then it is quarantined, and the 3 KB were never downloaded
    assert failures(response) == []
    assert _quarantine_reason(producer, body)[0] == "payload_too_large"
    assert _get_objects(s3) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(json.dumps([POINTER, {"s3Key": "k"}]), id="no-bucket"),
        pytest.param(json.dumps([POINTER, {"s3BucketName": "Not_A_Bucket", "s3Key": "k"}]), id="bad-bucket"),
        pytest.param(json.dumps([POINTER, {"s3BucketName": PRODUCER_BUCKET, "s3Key": ""}]), id="empty-key"),
        pytest.param(json.dumps([POINTER, "s3://bucket/key"]), id="not-a-map"),
        pytest.param(json.dumps({"message_id": "order-1"}), id="attribute-on-an-ordinary-body"),
        pytest.param(json.dumps([POINTER, {"s3BucketName": PRODUCER_BUCKET, "s3Key": "k"}, 3]), id="three-elements"),
    ],
)
def test_a_malformed_pointer_is_quarantined_as_invalid_pointer(producer: Stack, invoke: Invoker, body: str) -> None:
    # Given a message with the size attribute whose body is not a well-formed pointer
    size = {"DataType": "Number", "StringValue": "300000"}
    producer.send(body, group="g1", attributes={"ExtendedPayloadSize": size})

    # When it is handled
    response, _ = invoke(producer.receive_event(1))

    # Then it is quarantined unchanged
    assert failures(response) == []
    assert _quarantine_reason(producer, body)[0] == "invalid_pointer"
    assert producer.items() == {}


def test_a_body_that_only_mentions_the_pointer_class_is_an_ordinary_body(producer: Stack, invoke: Invoker) -> None:
    # Given an ordinary message, without the size attribute, that quotes the class name in a field
    producer.send({"message_id": "order-4", "note": POINTER}, group="g1")

    # When it is handled
    response, out = invoke(producer.receive_event(1))

    # Then it is stored as it is
    assert failures(response) == []
    assert producer.items()["order-4"]["note"] == POINTER
    assert out.metrics()["PointersRead"] == 0


# ---- S3 may answer later: the record is retried ----


def test_a_throttled_read_is_retried_by_boto3_then_the_record_by_sqs(producer: Stack, invoke: Invoker) -> None:
    # Given S3 answers every GetObject attempt with 503 SlowDown
    _send_pointer(producer, json.dumps({"message_id": "order-5"}), "k5")
    event = producer.receive_event(1)
    s3 = WireFaults(bootstrap.s3_client()).error("GetObject", "SlowDown", status=503, times=MAX_ATTEMPTS)

    # When it is handled
    response, out = invoke(event)

    # Then boto3 retried, and the record goes back to SQS, neither stored nor quarantined
    assert _get_objects(s3) == MAX_ATTEMPTS
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["S3PayloadError"] == 1
    assert out.metrics()["PointersRead"] == 0
    assert producer.items() == {}
    assert producer.dlq_messages() == []

    # When SQS delivers it again and S3 answers
    producer.sqs.change_message_visibility(
        QueueUrl=producer.deployed.queue_url, ReceiptHandle=event["Records"][0]["receiptHandle"], VisibilityTimeout=0
    )
    response, _ = invoke(producer.receive_event(1))

    # Then it is stored
    assert failures(response) == []
    assert "order-5" in producer.items()


def test_a_refused_read_is_retried_with_an_error_naming_the_grant(producer: Stack, invoke: Invoker) -> None:
    # Given the producer's bucket refuses the function (a missing grant, a bucket or KMS key policy)
    _send_pointer(producer, json.dumps({"message_id": "order-6"}), "k6")
    event = producer.receive_event(1)
    WireFaults(bootstrap.s3_client()).error("GetObject", "AccessDenied", status=403)

    # When it is handled
    response, out = invoke(event)

    # Then it stays on the queue for a fixed configuration to read it (SQS's redrive bounds the retries)
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert producer.dlq_messages() == []
    [read] = out.steps("s3_get_payload")
    assert read["status"] == "error"
    assert "s3:GetObject" in read["details"]["error"]
    assert "kms:Decrypt" in read["details"]["error"]


def test_a_pointer_held_back_behind_a_failure_of_its_group_is_not_read(producer: Stack, invoke: Invoker) -> None:
    # Given a group whose first message fails to save, then a pointer behind it
    producer.send({"message_id": "order-7"}, group="g1")
    _send_pointer(producer, json.dumps({"message_id": "order-8"}), "k8", group="g1")
    event = producer.receive_event(2)
    WireFaults(bootstrap.clients().dynamodb).error("PutItem", "InternalServerError", status=500)
    s3 = WireFaults(bootstrap.s3_client())

    # When the batch is handled
    response, _ = invoke(event)

    # Then both go back to SQS in order, and the held-back pointer's payload was never fetched
    assert failures(response) == [record["messageId"] for record in event["Records"]]
    assert _get_objects(s3) == 0


def test_a_large_payload_whose_copy_fails_is_retried_and_counted_as_read(producer: Stack, invoke: Invoker) -> None:
    # Given a 700 KB payload behind a pointer, and the payload bucket refusing every write
    _send_pointer(producer, json.dumps({"message_id": "doc-2", "document": "x" * 700_000}), "big-2")
    event = producer.receive_event(1)
    WireFaults(bootstrap.s3_client()).error("PutObject", "InternalError", status=500)

    # When it is handled
    response, out = invoke(event)

    # Then the payload was read, but without its copy no item is written: the record goes back to SQS
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["PointersRead"] == 1
    assert out.metrics()["S3PayloadError"] == 1
    assert producer.items() == {}
    assert producer.dlq_messages() == []


def test_a_pointer_without_the_size_attribute_is_read_too(producer: Stack, invoke: Invoker) -> None:
    # Given a pointer sent without ExtendedPayloadSize (a port that does not set it)
    producer.s3.put_object(Bucket=PRODUCER_BUCKET, Key="bare", Body=b'{"message_id": "order-9"}')
    producer.send(json.dumps([POINTER, {"s3BucketName": PRODUCER_BUCKET, "s3Key": "bare"}]), group="g1")

    # When it is handled
    response, _ = invoke(producer.receive_event(1))

    # Then the payload is stored, with no declared size kept
    assert failures(response) == []
    assert producer.items()["order-9"]["_meta"]["extended_client"] == {
        "bucket": PRODUCER_BUCKET,
        "key": "bare",
        "form": "PayloadS3Pointer",
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(f"{POINTER} is not JSON", "invalid_json", id="class-name-in-text"),
        pytest.param(json.dumps([POINTER, {"s3Key": "k"}, "third"]), "not_an_object", id="array-of-three"),
    ],
)
def test_a_body_quoting_the_class_name_without_the_attribute_is_judged_as_a_body(
    producer: Stack, invoke: Invoker, body: str, reason: str
) -> None:
    # Given a body without the size attribute that quotes the class name, but is not a pointer
    producer.send(body, group="g1")

    # When it is handled
    response, _ = invoke(producer.receive_event(1))

    # Then it meets the rules of any body (here, quarantined for its own reason), and S3 is not asked
    assert failures(response) == []
    assert _quarantine_reason(producer, body)[0] == reason


def test_a_pointer_key_that_is_not_unicode_is_an_invalid_pointer(producer: Stack, invoke: Invoker) -> None:
    # Given a pointer whose s3Key holds a lone surrogate (JSON can write one, UTF-8 cannot)
    body = f'["{POINTER}", {{"s3BucketName": "{PRODUCER_BUCKET}", "s3Key": "k\\ud800"}}]'
    producer.send(body, group="g1")

    # When it is handled
    response, _ = invoke(producer.receive_event(1))

    # Then it is quarantined: no S3 key can be made of it
    assert failures(response) == []
    assert _quarantine_reason(producer, body)[0] == "invalid_pointer"


def test_a_read_that_cannot_connect_is_retried(producer: Stack, invoke: Invoker) -> None:
    # Given S3 cannot be reached at all
    _send_pointer(producer, json.dumps({"message_id": "order-10"}), "k10")
    event = producer.receive_event(1)
    WireFaults(bootstrap.s3_client()).cut_connection("GetObject")

    # When it is handled
    response, out = invoke(event)

    # Then the record goes back to SQS, counted as an S3 error, and nothing is quarantined
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["S3PayloadError"] == 1
    assert producer.dlq_messages() == []
