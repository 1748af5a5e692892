"""Peak memory of one batch of ten 1 MiB messages: ``python -m bench.large_batch bodies|pointers``.

``bodies``: ten bodies of 1 MiB (SQS's largest) over ten groups, so all ten are handled at once;
each goes to the payload bucket, then its item. ``pointers``: ten SQS Extended Client pointers
to payloads of 1 MiB, read from S3 and then offloaded the same way (the heaviest path: the bytes
read, their text, the parsed body and the bytes written are alive together).

Prints one JSON line. AWS calls are counted by operation at botocore's boundary (``bench/wire.py``,
no added latency), and the write units of the items written are summed, for the cost figures.
The process's resident set is measured with Linux's peak counter (``VmHWM``), reset just before
the batch (``/proc/self/clear_refs``): ``batch_peak_mb`` is the peak while the batch ran, S3's
client included (a container builds it on its first large message). moto runs in this process
and keeps the queue's messages and the bucket's objects: the figures are an upper bound for the
function, which hosts no emulator.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

MESSAGES = 10
BODY_BYTES = 1024 * 1024
PRODUCER_BUCKET = "bench-producer-payloads"
POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"


def _status_mb(field: str) -> float:
    match = re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())
    if match is None:
        raise RuntimeError(f"no {field} in /proc/self/status")
    return int(match.group(1)) / 1024


def _body(key: str) -> str:
    head = f'{{"message_id":"{key}","type":"document.scanned","amount":19.99,"document":"'
    return head + "x" * (BODY_BYTES - len(head) - 2) + '"}'


def _write_units(stack: Any) -> int:
    """DynamoDB's on-demand write units for the items in the table: one per KB (rounded up) of each."""
    from consumer.dynamodb_item import item_size
    from local.report import scan_table

    items = scan_table(stack.dynamodb, stack.table_name).values()
    return sum(math.ceil(item_size(item) / 1024) for item in items)


def main(which: str) -> None:
    import handler  # noqa: F401 - what Lambda's init phase imports
    from bench.harness import Consumer, moto_stack
    from bench.wire import Wire

    with moto_stack(pointer_buckets=(PRODUCER_BUCKET,)) as stack:
        run = uuid.uuid4().hex[:8]
        bodies = [_body(f"{run}-{index}") for index in range(MESSAGES)]
        attributes = None
        if which == "pointers":
            stack.s3.create_bucket(Bucket=PRODUCER_BUCKET)
            for index, body in enumerate(bodies):
                stack.s3.put_object(Bucket=PRODUCER_BUCKET, Key=f"{run}/{index}", Body=body.encode())
            bodies = [
                json.dumps([POINTER_CLASS, {"s3BucketName": PRODUCER_BUCKET, "s3Key": f"{run}/{index}"}])
                for index in range(MESSAGES)
            ]
            attributes = {"ExtendedPayloadSize": {"DataType": "Number", "StringValue": str(BODY_BYTES)}}
        event = stack.event(bodies, groups=MESSAGES, attributes=attributes)
        wire = Wire(0.0)
        consumer = Consumer(wire)
        from consumer import bootstrap

        before = _status_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the peak counter starts again from the current RSS
        started = time.perf_counter()
        # The container's first large message builds S3's client (lazily): counted here, as it would be there.
        wire.attach(bootstrap.s3_client())
        answer = consumer.process(event)
        elapsed = time.perf_counter() - started
        peak = _status_mb("VmHWM")
        write_units = _write_units(stack)
    if answer["batchItemFailures"]:
        raise SystemExit(f"the batch failed records: {answer}")
    print(
        json.dumps(
            {
                "rss_before_mb": before,
                "batch_peak_mb": peak,
                "batch_added_mb": peak - before,
                "batch_ms": elapsed * 1000,
                "body_mb": BODY_BYTES / 2**20,
                "messages": MESSAGES,
                "calls_per_message": {op: count / MESSAGES for op, count in sorted(wire.calls.items())},
                "write_units_per_message": write_units / MESSAGES,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bodies")
