"""``python -m bench [--quick] [--json PATH]``: the consumer and the sequential reference, side by side.

Both run in this process against moto (``mock_aws``), each with its own boto3 clients behind a
``Wire`` that adds the same fixed latency to every AWS call and counts calls by operation.
Cold start and the baseline memory are measured in fresh subprocesses. See docs/bench.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from bench.harness import Consumer, Reference, Stack, moto_stack
from bench.wire import Wire

ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = 10.0
BATCH = 10
BODY_BYTES = 256 * 1024  # SQS's classic maximum message size
FUNCTION_MB = 128
# template.yaml's FunctionMemory default: what a batch of ten 1 MiB messages must fit in, with room.
TEMPLATE_FUNCTION_MB = 256

# List prices, us-east-1, as published on the AWS pricing pages in 2025 (DynamoDB on-demand after its
# 2024-11-01 cut), free tiers ignored; dated 2025-06, not re-checked from the machine that ran the bench
# (no internet). Re-check https://aws.amazon.com/{sqs,dynamodb,cloudwatch,lambda}/pricing/ before quoting.
# Not counted, the same for both designs: the event source mapping's ReceiveMessage polling.
PRICE_SQS_FIFO_REQUEST = 0.50 / 1e6  # per 64 KB chunk of a request; a batch of 10 is one request
PRICE_DYNAMODB_WRITE_UNIT = 0.625 / 1e6  # on-demand; a PutItem up to 1 KB, conditional failures too
PRICE_DYNAMODB_READ_UNIT = 0.125 / 1e6  # on-demand; a strongly consistent GetItem up to 4 KB
PRICE_CLOUDWATCH_REQUEST = 0.01 / 1000  # PutMetricData, per request
PRICE_LOGS_INGESTED_GB = 0.50  # CloudWatch Logs (standard): the consumer's JSON logs and EMF
PRICE_LAMBDA_GB_SECOND = 0.0000133334  # arm64 (template.yaml: Architectures [arm64])
PRICE_LAMBDA_REQUEST = 0.20 / 1e6
PRICE_S3_PUT = 0.005 / 1000  # S3 Standard, PUT/COPY/POST/LIST per request
PRICE_S3_GET = 0.0004 / 1000  # S3 Standard, GET per request
PRICE_S3_GB_MONTH = 0.023  # S3 Standard storage, first 50 TB, per GB-month

SQS_OPERATIONS = {"DeleteMessageBatch", "DeleteMessage", "GetQueueUrl", "GetQueueAttributes", "SendMessage"}
DYNAMODB_WRITES = {"PutItem"}
DYNAMODB_READS = {"GetItem"}
CLOUDWATCH_REQUESTS = {"PutMetricData"}


def _bodies(count: int, payload: int = 0) -> list[str]:
    run = uuid.uuid4().hex[:8]
    bodies = []
    for index in range(count):
        head = f'{{"message_id":"{run}-{index}","amount":19.99,"qty":{index},"payload":"'
        filler = max(0, payload - len(head) - 2) if payload else 16
        bodies.append(head + "x" * filler + '"}')
    return bodies


def _checked(answer: dict[str, Any], name: str) -> None:
    if answer["batchItemFailures"]:
        raise RuntimeError(f"{name} failed records in the bench: {answer}")


def _timed_batches(
    stack: Stack, implementations: list[Any], wires: dict[str, Wire], groups: int, reps: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Milliseconds per batch of 10 new messages, and of it moto's CPU; implementations take turns."""
    times: dict[str, list[float]] = {impl.name: [] for impl in implementations}
    emulator: dict[str, list[float]] = {impl.name: [] for impl in implementations}
    for _ in range(reps):
        for impl in implementations:
            event = stack.event(_bodies(BATCH), groups)
            wires[impl.name].reset()
            started = time.perf_counter()
            answer = impl.process(event)
            times[impl.name].append((time.perf_counter() - started) * 1000)
            emulator[impl.name].append(wires[impl.name].service_seconds * 1000)
            _checked(answer, impl.name)
    return times, emulator


def measure_in_process(quick: bool) -> dict[str, Any]:
    reps = 3 if quick else 15
    results: dict[str, Any] = {}
    with moto_stack() as stack:
        wires = {"consumer": Wire(LATENCY_MS / 1000), "reference": Wire(LATENCY_MS / 1000)}
        consumer = Consumer(wires["consumer"])
        reference = Reference(wires["reference"], stack.table_name)
        implementations: list[Any] = [consumer, reference]

        # A warm container: the first batch looks the queue URL up, once.
        first: dict[str, dict[str, float]] = {}
        for impl in implementations:
            wires[impl.name].reset()
            _checked(impl.process(stack.event(_bodies(BATCH), groups=BATCH)), impl.name)
            first[impl.name] = {op: n / BATCH for op, n in wires[impl.name].calls.items()}

        # 1. Calls per message, new messages, warm container.
        calls: dict[str, dict[str, float]] = {}
        for impl in implementations:
            wires[impl.name].reset()
            _checked(impl.process(stack.event(_bodies(BATCH), groups=BATCH)), impl.name)
            calls[impl.name] = {op: n / BATCH for op, n in sorted(wires[impl.name].calls.items())}
        results["calls_per_message"] = calls
        results["calls_per_message_first_batch"] = first

        # 2. Milliseconds per batch of 10, 10 groups and 1 group.
        log_bytes_before = consumer.sink.bytes
        batches: dict[str, dict[str, float]] = {}
        emulator_ms: dict[str, dict[str, float]] = {}
        for groups in (10, 1):
            times, emulator = _timed_batches(stack, implementations, wires, groups, reps)
            batches[f"{groups}_groups"] = {name: statistics.median(values) for name, values in times.items()}
            emulator_ms[f"{groups}_groups"] = {name: statistics.median(values) for name, values in emulator.items()}
        results["batch_ms"] = batches
        results["emulator_cpu_ms"] = emulator_ms
        results["log_bytes_per_message"] = (consumer.sink.bytes - log_bytes_before) / (2 * reps * BATCH)

        # 4. Peak Python memory while a batch of 10 bodies of 256 KB is handled.
        peak: dict[str, float] = {}
        for impl in implementations:
            event = stack.event(_bodies(BATCH, payload=BODY_BYTES), groups=BATCH)
            tracemalloc.start()
            tracemalloc.reset_peak()
            answer = impl.process(event)
            peak[impl.name] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            _checked(answer, impl.name)
        results["batch_peak_mb"] = peak
    return results


def _subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def import_ms(module: str, runs: int) -> float:
    """Cumulative `python -X importtime` of one module, median of runs after a warm-up run."""
    samples = []
    for run in range(runs + 1):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", f"import {module}"],
            capture_output=True,
            text=True,
            env=_subprocess_env(),
            cwd=ROOT,
            check=True,
        )
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*(\S+)\s*$", line)
            if match and match.group(2) == module and run > 0:
                samples.append(int(match.group(1)) / 1000)
    if not samples:
        raise RuntimeError(f"no importtime line for {module}")
    return statistics.median(samples)


def first_record(which: str, runs: int) -> dict[str, float]:
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-m", "bench.coldstart", which, str(LATENCY_MS)],
            capture_output=True,
            text=True,
            env=_subprocess_env(),
            cwd=ROOT,
            check=True,
        )
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(sample[name] for sample in samples) for name in samples[0]}


def large_batch(which: str, runs: int) -> dict[str, float]:
    """A fresh process per run (``python -m bench.large_batch``): its peak RSS over one batch of ten 1 MiB messages."""
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-m", "bench.large_batch", which],
            capture_output=True,
            text=True,
            env=_subprocess_env(),
            cwd=ROOT,
            check=True,
        )
        samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    # Figures are medians; the calls counted are the same in every run.
    return {
        name: statistics.median(sample[name] for sample in samples) if isinstance(value, int | float) else value
        for name, value in samples[0].items()
    }


def baseline_rss_mb() -> float:
    """Peak RSS of a fresh process that has imported the handler (what Lambda's init leaves).

    VmHWM, not getrusage's ru_maxrss: on Linux the latter keeps the parent's peak across fork and exec.
    """
    code = (
        "import handler, re; from pathlib import Path; "
        "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(), cwd=ROOT, check=True
    )
    return int(done.stdout.strip()) / 1024  # kilobytes on Linux


def cost_per_million(calls: dict[str, float], batch_ms: float, log_bytes: float) -> dict[str, float]:
    def per_message(operations: set[str]) -> float:
        return sum(count for op, count in calls.items() if op in operations)

    gb_seconds = (batch_ms / BATCH / 1000) * (FUNCTION_MB / 1024)
    cost = {
        "sqs": per_message(SQS_OPERATIONS) * PRICE_SQS_FIFO_REQUEST,
        "dynamodb": per_message(DYNAMODB_WRITES) * PRICE_DYNAMODB_WRITE_UNIT
        + per_message(DYNAMODB_READS) * PRICE_DYNAMODB_READ_UNIT,
        "cloudwatch": per_message(CLOUDWATCH_REQUESTS) * PRICE_CLOUDWATCH_REQUEST,
        "logs": log_bytes / 1e9 * PRICE_LOGS_INGESTED_GB,
        "lambda": gb_seconds * PRICE_LAMBDA_GB_SECOND + PRICE_LAMBDA_REQUEST / BATCH,
    }
    cost = {name: value * 1e6 for name, value in cost.items()}
    cost["total"] = sum(cost.values())
    return cost


def large_message_cost(figures: dict[str, Any]) -> dict[str, float]:
    """Per million large messages: S3 requests, the item's write units, and a month of storing the bodies."""
    calls = figures["calls_per_message"]
    requests = calls.get("PutObject", 0) * PRICE_S3_PUT + calls.get("GetObject", 0) * PRICE_S3_GET
    stored_gb = figures["body_mb"] / 1024 * calls.get("PutObject", 0)
    return {
        "s3_requests": requests * 1e6,
        "dynamodb": figures["write_units_per_message"] * PRICE_DYNAMODB_WRITE_UNIT * 1e6,
        "s3_storage_month": stored_gb * PRICE_S3_GB_MONTH * 1e6,
    }


def measure(quick: bool) -> dict[str, Any]:
    results = measure_in_process(quick)
    runs = 1 if quick else 5
    results["import_ms"] = {"consumer": import_ms("handler", runs), "reference": import_ms("bench.reference", runs)}
    results["first_record_ms"] = {
        "consumer": first_record("consumer", 1 if quick else 3),
        "reference": first_record("reference", 1 if quick else 3),
    }
    results["baseline_rss_mb"] = baseline_rss_mb()
    results["large_batch"] = {which: large_batch(which, 1 if quick else 3) for which in ("bodies", "pointers")}
    ten = results["batch_ms"]["10_groups"]
    results["cost_per_million"] = {
        "consumer": cost_per_million(
            results["calls_per_message"]["consumer"], ten["consumer"], results["log_bytes_per_message"]
        ),
        "reference": cost_per_million(results["calls_per_message"]["reference"], ten["reference"], 0.0),
    }
    results["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 0,
        "latency_ms": LATENCY_MS,
        "quick": quick,
    }
    return results


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def render(results: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    machine = results["machine"]
    add(f"bench: consumer vs sequential reference, moto in-process, {machine['latency_ms']:g} ms per AWS call")
    quick = " (quick run)" if machine["quick"] else ""
    add(f"python {machine['python']} on {machine['platform']}, {machine['cpus']} CPUs{quick}")

    add("")
    add("1. AWS calls per message (new messages, warm container)")
    calls = results["calls_per_message"]
    operations = sorted(set(calls["consumer"]) | set(calls["reference"]))
    add(f"   {'operation':<22}{'consumer':>10}{'reference':>11}")
    for op in operations:
        add(f"   {op:<22}{calls['consumer'].get(op, 0):>10.2f}{calls['reference'].get(op, 0):>11.2f}")
    total_c, total_r = sum(calls["consumer"].values()), sum(calls["reference"].values())
    add(f"   {'total':<22}{total_c:>10.2f}{total_r:>11.2f}   target consumer <= 1.1: {_met(total_c <= 1.1 + 1e-9)}")
    first = results["calls_per_message_first_batch"]["consumer"]
    add(f"   (first batch of a container: {sum(first.values()):.2f}, GetQueueUrl once per container)")

    add("")
    add(f"2. Milliseconds per batch of {BATCH} (median), {machine['latency_ms']:g} ms added to every AWS call")
    add(f"   {'':<11}{'consumer':>10}{'reference':>11}{'faster':>9}{'target':>9}{'floor':>8}{'x floor':>9}")
    floors = {"10_groups": 2 * LATENCY_MS, "1_groups": (BATCH + 1) * LATENCY_MS}
    targets = {"10_groups": 10.0, "1_groups": 4.0}
    for key, label in (("10_groups", "10 groups"), ("1_groups", "1 group")):
        ms = results["batch_ms"][key]
        ratio = ms["reference"] / ms["consumer"]
        of_floor = ms["consumer"] / floors[key]
        add(
            f"   {label:<11}{ms['consumer']:>10.1f}{ms['reference']:>11.1f}{ratio:>8.1f}x{targets[key]:>8.0f}x"
            f"{floors[key]:>8.0f}{of_floor:>8.2f}x   {_met(ratio >= targets[key])} / floor <= 1.5x: "
            f"{_met(of_floor <= 1.5)}"
        )
    add("   floor: round trips that cannot overlap (10 groups: PutItem then DeleteMessageBatch;")
    add("   1 group: 10 PutItems in order, then DeleteMessageBatch)")
    add("   moto answers in this process, under the GIL: real AWS does that work on its side. Without it:")
    for key, label in (("10_groups", "10 groups"), ("1_groups", "1 group")):
        ms, cpu = results["batch_ms"][key], results["emulator_cpu_ms"][key]
        net = max(ms["consumer"] - cpu["consumer"], 0.0)
        add(
            f"   {label:<11}{net:>10.1f}{ms['reference'] - cpu['reference']:>11.1f}"
            f"   (moto CPU {cpu['consumer']:.1f} / {cpu['reference']:.1f} ms)"
            f"   x floor {net / floors[key]:.2f}: {_met(net / floors[key] <= 1.5)}"
        )

    add("")
    add("3. Cold start")
    imports, fresh = results["import_ms"], results["first_record_ms"]
    to_first = {name: sum(value.values()) for name, value in fresh.items()}
    add(f"   {'':<44}{'consumer':>10}{'reference':>11}")
    rows = [
        ("import (python -X importtime, cumulative ms)", imports["consumer"], imports["reference"]),
        ("fresh process: import ms", fresh["consumer"]["import_ms"], fresh["reference"]["import_ms"]),
        (
            "fresh process: first invocation (1 record) ms",
            fresh["consumer"]["first_record_ms"],
            fresh["reference"]["first_record_ms"],
        ),
        ("time to first processed record ms", to_first["consumer"], to_first["reference"]),
    ]
    for label, consumer, reference in rows:
        add(f"   {label:<44}{consumer:>10.1f}{reference:>11.1f}")

    add("")
    add(f"4. Peak memory, a batch of {BATCH} bodies of {BODY_BYTES // 1024} KB")
    peak, base = results["batch_peak_mb"], results["baseline_rss_mb"]
    estimate = base + peak["consumer"]
    add(f"   {'':<44}{'consumer':>10}{'reference':>11}")
    add(f"   {'Python allocations during the batch, MB':<44}{peak['consumer']:>10.1f}{peak['reference']:>11.1f}")
    add(f"   {'peak RSS of a fresh process after import, MB':<44}{base:>10.1f}")
    verdict = _met(estimate <= FUNCTION_MB)
    add(f"   {'estimate (RSS + batch peak), MB':<44}{estimate:>10.1f}   target <= {FUNCTION_MB} MB: {verdict}")

    add("")
    add(f"5. Dollars per million messages (us-east-1 list prices, {FUNCTION_MB} MB arm64, 10-group batch time)")
    cost = results["cost_per_million"]
    add(f"   {'':<22}{'consumer':>10}{'reference':>11}")
    for name in ("sqs", "dynamodb", "cloudwatch", "logs", "lambda", "total"):
        add(f"   {name:<22}{cost['consumer'][name]:>10.3f}{cost['reference'][name]:>11.3f}")
    add(
        f"   consumer logs: {results['log_bytes_per_message']:.0f} bytes per message (JSON lines and EMF);"
        " the reference logs nothing"
    )

    add("")
    add("6. Large messages: peak RSS over one batch of ten 1 MiB messages, ten groups at once (fresh process each)")
    add(f"   {'':<44}{'bodies':>10}{'pointers':>11}")
    large = results["large_batch"]
    rows_mb = [
        ("RSS before the batch (with moto), MB", "rss_before_mb"),
        ("peak RSS during the batch, MB", "batch_peak_mb"),
        ("added by the batch (and S3's client), MB", "batch_added_mb"),
        ("batch time (no added latency), ms", "batch_ms"),
    ]
    for label, name in rows_mb:
        add(f"   {label:<44}{large['bodies'][name]:>10.1f}{large['pointers'][name]:>11.1f}")
    worst = max(large["bodies"]["batch_added_mb"], large["pointers"]["batch_added_mb"])
    estimate = base + worst
    verdict = _met(estimate <= TEMPLATE_FUNCTION_MB / 2)
    add(
        f"   {'estimate (RSS after import + added), MB':<44}{estimate:>10.1f}   target <= half of "
        f"{TEMPLATE_FUNCTION_MB} MB (FunctionMemory): {verdict}"
    )
    add("   bodies: each written to S3, then its item; pointers: each payload read from S3, then the same.")
    add("   moto runs in the process and keeps the messages and objects: the added figure is an upper bound.")
    add("   Dollars per million such messages (us-east-1 list prices, S3 Standard), from the calls counted:")
    for which in ("bodies", "pointers"):
        calls = large[which]["calls_per_message"]
        counted = ", ".join(f"{op} {count:.1f}" for op, count in calls.items() if op in ("PutObject", "GetObject"))
        cost = large_message_cost(large[which])
        add(
            f"   {which:<9} S3 requests {cost['s3_requests']:.2f}, DynamoDB writes {cost['dynamodb']:.2f}"
            f" ({large[which]['write_units_per_message']:g} write unit(s) an item), S3 storage"
            f" {cost['s3_storage_month']:.2f}"
            f" per month kept; per message: {counted}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run, not figures to quote")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    results = measure(args.quick)
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return 0
