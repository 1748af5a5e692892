"""Bodies DynamoDB cannot hold: written to S3 (PAYLOAD_BUCKET) first, then an item that names them.

Faults are injected at botocore's boundary on the consumer's own clients (tests/faults.py):
no fault loses the message, stores it twice, or leaves an item naming an object that is not there.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest

from consumer import bootstrap
from consumer.aws_clients import MAX_ATTEMPTS
from consumer.dynamodb_item import MAX_ITEM_BYTES, item_size
from consumer.large_messages import OFFLOADED_FIELDS_BUDGET_BYTES
from tests.conftest import Invoker, Stack, failures, handle_one
from tests.faults import WireFaults
from tests.test_item_limits import _event_of_item_size


def _large_body(key: str, size: int = 600_000, **fields: Any) -> str:
    """A contract-like body of about ``size`` bytes: small top-level fields and one large one."""
    body = {"message_id": key, "type": "document.created", "source": "tests", **fields, "document": "x" * size}
    return json.dumps(body)


def _objects(stack: Stack) -> dict[str, bytes]:
    """Every object version in the payload bucket, by key (a second version of a key would show as a clash)."""
    bucket = stack.deployed.payload_bucket
    versions = stack.s3.list_object_versions(Bucket=bucket).get("Versions", [])
    keys = [version["Key"] for version in versions]
    assert len(keys) == len(set(keys)), f"a key has more than one version: {keys}"
    return {key: stack.s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def _redeliver(stack: Stack, event: dict[str, Any]) -> dict[str, Any]:
    """SQS delivers the failed record again (its visibility timeout over)."""
    stack.sqs.change_message_visibility(
        QueueUrl=stack.deployed.queue_url, ReceiptHandle=event["Records"][0]["receiptHandle"], VisibilityTimeout=0
    )
    return stack.receive_event(1)


def _assert_stored_once_in_s3(stack: Stack, key: str, body: str) -> dict[str, Any]:
    """Then the item names an object that holds exactly the body, and that object is the bucket's only one."""
    item = stack.items()[key]
    where = item["_meta"]["body_s3"]
    digest = hashlib.sha256(body.encode()).hexdigest()
    assert where["bucket"] == stack.deployed.payload_bucket
    assert where["sha256"] == item["_meta"]["body_sha256"] == digest
    assert where["bytes"] == len(body.encode())
    assert _objects(stack) == {where["key"]: body.encode()}
    return item


# ---- Offload ----


def test_a_body_too_large_for_an_item_is_written_to_s3_and_its_item_names_it(stack: Stack, invoke: Invoker) -> None:
    # Given a 600 KB body (SQS allows 1 MiB; an item stops at 400 KB)
    body = _large_body("doc-1", amount=19.99)

    # When it is handled
    _event, response, out = handle_one(stack, invoke, body)

    # Then it is saved, not quarantined: the whole body is one S3 object, byte for byte
    assert failures(response) == []
    assert stack.dlq_messages() == []
    item = _assert_stored_once_in_s3(stack, "doc-1", body)
    # And the item keeps the key, _meta and the small top-level fields, but not the large one
    assert item["message_id"] == "doc-1"
    assert item["type"] == "document.created"
    assert item["amount"] == Decimal("19.99")
    assert "document" not in item
    assert item_size(item) <= 2 * 1024  # two write units, where the whole body could not be written at all
    # And the object's key derives from the idempotency key and the body, never from the message id
    key_hash = hashlib.sha256(b"doc-1").hexdigest()
    assert item["_meta"]["body_s3"]["key"] == f"bodies/{key_hash}/{item['_meta']['body_sha256']}.json"
    # And it is counted, and each step is logged with where the body went
    assert out.metrics()["PayloadsOffloaded"] == 1
    assert out.metrics()["MessagesSaved"] == 1
    [put] = out.steps("s3_put_payload", "doc-1")
    assert put["status"] == "success"
    assert put["details"]["key"] == item["_meta"]["body_s3"]["key"]
    assert stack.messages_in_queue() == 0


def test_an_item_one_byte_over_400_kib_is_offloaded(stack: Stack, invoke: Invoker) -> None:
    # Given a message whose item would be 409,601 bytes
    event, body = _event_of_item_size(stack, "big-2", MAX_ITEM_BYTES + 1)

    # When it is handled
    response, out = invoke(event)

    # Then its body goes to S3 and the item that names it is small
    assert failures(response) == []
    _assert_stored_once_in_s3(stack, "big-2", body)
    assert out.metrics()["PayloadsOffloaded"] == 1


def test_the_fields_kept_are_the_top_level_ones_that_fit_in_name_order(stack: Stack, invoke: Invoker) -> None:
    # Given a large body whose top-level fields, in name order, are: a small one, one too large for
    # the item's budget, a medium one, one that no longer fits after it, and small ones
    fields = {
        "a_small": 1,
        "b_large": "b" * 300_000,
        "c_medium": "c" * 5_000,
        "d_no_room_left": "d" * 4_000,
        "e_map": {"currency": "EUR", "lines": [1, 2]},
        "message_id": "doc-2",
        "z_last": True,
    }
    body = json.dumps({**fields, "y_large": "y" * 300_000})

    # When it is handled
    handle_one(stack, invoke, body)

    # Then each field that still fits is kept whole, in name order; a field that does not is skipped
    item = stack.items()["doc-2"]
    kept = {name for name in item if name not in ("_meta",)}
    assert kept == {"a_small", "c_medium", "e_map", "message_id", "z_last"}
    assert item["e_map"] == {"currency": "EUR", "lines": [Decimal(1), Decimal(2)]}
    fields = {name: item[name] for name in kept - {"message_id"}}
    assert item_size(fields) <= OFFLOADED_FIELDS_BUDGET_BYTES < item_size({**fields, "d_no_room_left": "d" * 4_000})


def test_a_large_body_breaking_another_rule_is_quarantined_for_that_rule_not_offloaded(
    stack: Stack, invoke: Invoker
) -> None:
    # Given a 600 KB body with a number DynamoDB could not hold, deep inside its large field
    body = json.dumps({"message_id": "doc-3", "document": ["x" * 600_000, {"n": 1}]}).replace(
        '{"n": 1}', '{"n": 1E+200}'
    )

    # When it is handled
    _event, response, _out = handle_one(stack, invoke, body)

    # Then the size decides only where a valid body goes: this one is quarantined, nothing is written to S3
    assert failures(response) == []
    [dlq] = stack.dlq_messages()
    assert dlq["MessageAttributes"]["quarantine_reason"]["StringValue"] == "number_out_of_range"
    assert _objects(stack) == {}
    assert stack.items() == {}


def test_a_redelivered_large_body_is_a_duplicate_and_leaves_one_object(stack: Stack, invoke: Invoker) -> None:
    # Given a large body stored once
    body = _large_body("doc-4")
    handle_one(stack, invoke, body)

    # When the same body arrives again (a new deduplication id, so SQS cannot drop it)
    _event, response, out = handle_one(stack, invoke, body)

    # Then it is a duplicate: one item, one object, no second version of it
    assert failures(response) == []
    assert out.metrics()["DuplicateMessages"] == 1
    assert out.metrics()["PayloadsOffloaded"] == 0
    _assert_stored_once_in_s3(stack, "doc-4", body)
    [put] = out.steps("s3_put_payload", "doc-4")
    assert "exists" in put["details"]["result"]


def test_a_conflicting_large_duplicate_never_replaces_the_stored_body(stack: Stack, invoke: Invoker) -> None:
    # Given a large body stored under doc-5
    first = _large_body("doc-5", version=1)
    handle_one(stack, invoke, first)
    stored = stack.items()["doc-5"]

    # When another large body arrives under the same key
    second = _large_body("doc-5", version=2)
    _event, response, out = handle_one(stack, invoke, second)

    # Then the first write is kept: the item and the object it names are unchanged, and the conflict is flagged
    assert failures(response) == []
    assert out.metrics()["ConflictingDuplicates"] == 1
    assert stack.items()["doc-5"] == stored
    where = stored["_meta"]["body_s3"]
    objects = _objects(stack)
    assert objects[where["key"]] == first.encode()
    # And the second body is kept apart under its own hash, named by nothing (evidence, for the operator)
    assert len(objects) == 2


# ---- Faults: no loss, no double store, no item naming nothing ----


def test_a_failed_s3_write_writes_no_item_and_the_redelivery_stores_the_body_once(
    stack: Stack, invoke: Invoker
) -> None:
    # Given S3 answers every PutObject attempt with 503 SlowDown
    body = _large_body("doc-6")
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    s3 = WireFaults(bootstrap.s3_client()).error("PutObject", "SlowDown", status=503, times=MAX_ATTEMPTS)

    # When it is handled
    response, out = invoke(event)

    # Then boto3 retried, the record goes back to SQS, and no item was written (it would name nothing)
    assert s3.sent["PutObject"] == MAX_ATTEMPTS
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["S3PayloadError"] == 1
    assert stack.items() == {}
    [put] = out.steps("s3_put_payload")
    assert put["status"] == "error"
    assert "SlowDown" in put["details"]["error"]

    # When SQS delivers it again and S3 answers
    response, out = invoke(_redeliver(stack, event))

    # Then it is stored once
    assert failures(response) == []
    _assert_stored_once_in_s3(stack, "doc-6", body)
    assert stack.messages_in_queue() == 0


def test_a_lost_s3_answer_is_settled_by_the_conditional_retry(stack: Stack, invoke: Invoker) -> None:
    # Given S3 writes the object but the answer to the first attempt is lost
    body = _large_body("doc-7")
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    s3 = WireFaults(bootstrap.s3_client()).lose_answer("PutObject", times=1)

    # When it is handled
    response, out = invoke(event)

    # Then boto3's retry meets the object the first attempt wrote (412), and the item follows
    assert s3.sent["PutObject"] == 2
    assert failures(response) == []
    assert out.metrics()["MessagesSaved"] == 1
    _assert_stored_once_in_s3(stack, "doc-7", body)


def test_when_every_s3_answer_is_lost_the_redelivery_finds_the_object_and_writes_the_item(
    stack: Stack, invoke: Invoker
) -> None:
    # Given S3 writes the object, but no answer of any attempt arrives
    body = _large_body("doc-8")
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.s3_client()).lose_answer("PutObject", times=MAX_ATTEMPTS)

    # When it is handled
    response, out = invoke(event)

    # Then the record goes back to SQS with no item, though the object is there
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["S3PayloadError"] == 1
    assert stack.items() == {}
    assert len(_objects(stack)) == 1

    # When SQS delivers it again
    response, _out = invoke(_redeliver(stack, event))

    # Then the object is reused and the item names it: one item, one object, one version
    assert failures(response) == []
    _assert_stored_once_in_s3(stack, "doc-8", body)


def test_a_failed_item_write_after_s3_leaves_only_an_object_the_redelivery_reuses(
    stack: Stack, invoke: Invoker
) -> None:
    # Given S3 takes the body, then DynamoDB refuses every attempt of the item's write
    body = _large_body("doc-9")
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.clients().dynamodb).error("PutItem", "InternalServerError", status=500, times=MAX_ATTEMPTS)

    # When it is handled
    response, out = invoke(event)

    # Then the record goes back to SQS; the object waits, named by no item (harmless)
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert out.metrics()["DynamoDBSaveError"] == 1
    assert stack.items() == {}
    assert len(_objects(stack)) == 1

    # When SQS delivers it again
    response, out = invoke(_redeliver(stack, event))

    # Then the same object is found, not written twice, and the item names it
    assert failures(response) == []
    assert out.metrics()["MessagesSaved"] == 1
    _assert_stored_once_in_s3(stack, "doc-9", body)


def test_a_lost_item_write_answer_is_saved_once_with_its_object(stack: Stack, invoke: Invoker) -> None:
    # Given the item's write lands but its first answer is lost
    body = _large_body("doc-10")
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.clients().dynamodb).lose_answer("PutItem", times=1)

    # When it is handled
    response, out = invoke(event)

    # Then boto3's retry finds the item its first attempt wrote: saved once, with its one object
    assert failures(response) == []
    assert out.metrics()["MessagesSaved"] == 1
    _assert_stored_once_in_s3(stack, "doc-10", body)


@pytest.mark.parametrize(("code", "status"), [("AccessDenied", 403), ("NoSuchBucket", 404)])
def test_a_payload_bucket_that_refuses_the_write_fails_the_record_naming_the_setting(
    stack: Stack, invoke: Invoker, code: str, status: int
) -> None:
    # Given the payload bucket refuses the function's writes (a wrong PAYLOAD_BUCKET or a missing grant)
    body = _large_body("doc-11")
    stack.send(body, group="g1")
    event = stack.receive_event(1)
    WireFaults(bootstrap.s3_client()).error("PutObject", code, status=status)

    # When it is handled
    response, out = invoke(event)

    # Then the record is retried, never quarantined: the configuration is wrong, not the message
    assert failures(response) == [event["Records"][0]["messageId"]]
    assert stack.dlq_messages() == []
    assert stack.items() == {}
    [put] = out.steps("s3_put_payload")
    assert code in put["details"]["error"]
    assert "PAYLOAD_BUCKET" in put["details"]["error"]
    assert out.metrics()["S3PayloadError"] == 1


def test_a_failed_s3_write_holds_back_the_rest_of_its_group(stack: Stack, invoke: Invoker) -> None:
    # Given a group with a large body whose S3 write fails, then a small message behind it
    stack.send(_large_body("doc-12"), group="g1")
    stack.send({"message_id": "order-13"}, group="g1")
    event = stack.receive_event(2)
    WireFaults(bootstrap.s3_client()).error("PutObject", "InternalError", status=500)

    # When the batch is handled
    response, _out = invoke(event)

    # Then both go back to SQS, in order: the second is not written ahead of the first
    assert failures(response) == [record["messageId"] for record in event["Records"]]
    assert stack.items() == {}
