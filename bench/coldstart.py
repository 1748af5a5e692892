"""A fresh process's time to its first processed record: ``python -m bench.coldstart consumer|reference``.

Prints one JSON line: the import of the implementation (Lambda's init phase), then the first
invocation with one record (client creation included, 10 ms per AWS call), in milliseconds.
The emulator's own import and set-up happen between the two and are not counted.
"""

from __future__ import annotations

import json
import sys
import time


def main(which: str, latency_ms: float) -> None:
    started = time.perf_counter()
    if which == "consumer":
        import handler  # noqa: F401 - what Lambda's init phase imports
    else:
        import boto3  # noqa: F401

        import bench.reference  # noqa: F401
    imported = time.perf_counter()

    from bench.harness import Consumer, Reference, moto_stack
    from bench.wire import Wire

    with moto_stack() as stack:
        event = stack.event(['{"message_id": "first", "amount": 1.5}'], groups=1)
        wire = Wire(latency_ms / 1000)
        begin = time.perf_counter()
        implementation = Consumer(wire) if which == "consumer" else Reference(wire, stack.table_name)
        answer = implementation.process(event)
        done = time.perf_counter()
    if answer["batchItemFailures"]:
        raise SystemExit(f"the first record failed: {answer}")
    print(json.dumps({"import_ms": (imported - started) * 1000, "first_record_ms": (done - begin) * 1000}))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 10.0)
