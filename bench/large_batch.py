"""Peak memory of one batch of ten 1 MiB messages: ``python -m bench.large_batch bodies|pointers``.

``bodies``: ten bodies of 1 MiB (SQS's largest) over ten groups, so all ten are handled at once;
each goes to the payload bucket, then its item. ``pointers``: ten SQS Extended Client pointers
to payloads of 1 MiB, read from S3 and then offloaded the same way (the heaviest path: the bytes
read, their text, the parsed body and the bytes written are alive together).

Prints one JSON line. The process's resident set is measured with Linux's peak counter
(``VmHWM``), reset just before the batch (``/proc/self/clear_refs``), so ``batch_peak_mb`` is the
peak while the batch ran. moto runs in this process and keeps the queue's messages and the
bucket's objects: the figures are an upper bound for the function, which hosts no emulator.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from pathlib import Path

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
        consumer = Consumer(Wire(0.0))
        before = _status_mb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # the peak counter starts again from the current RSS
        started = time.perf_counter()
        answer = consumer.process(event)
        elapsed = time.perf_counter() - started
        peak = _status_mb("VmHWM")
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
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bodies")
