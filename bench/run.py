"""``python -m bench [--quick] [--json PATH] [--results DIR]``: the consumer and the sequential reference.

Both run in this process against moto (``mock_aws``), each with its own boto3 clients behind a
``Wire`` that adds the same fixed latency to every AWS call and counts calls by operation.
Cold start and the baseline memory are measured in fresh subprocesses. See docs/bench.md.
``--results docs/results`` (what ``make bench`` passes) writes bench.md and cost.md there.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import concurrency, cost
from bench.harness import Consumer, Reference, Stack, moto_stack
from bench.hostile import SHAPES, SIZES
from bench.wire import Wire
from local import results as results_files

ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = 10.0
BATCH = 10
BODY_BYTES = 256 * 1024  # SQS's classic maximum message size
MEMORY_TARGET_MB = 128  # the smallest memory setting the consumer should fit in
# template.yaml's FunctionMemory default: what a batch of ten 1 MiB messages must fit in, with room.
TEMPLATE_FUNCTION_MB = 256


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
    stack: Stack, implementations: list[Any], wires: dict[str, Wire], groups: int, reps: int, size: int = BATCH
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, list[float]]]:
    """Milliseconds per batch of ``size`` new messages, of it moto's CPU, and the implementation's own CPU
    (the process's CPU time less moto's); implementations take turns."""
    times: dict[str, list[float]] = {impl.name: [] for impl in implementations}
    emulator: dict[str, list[float]] = {impl.name: [] for impl in implementations}
    own_cpu: dict[str, list[float]] = {impl.name: [] for impl in implementations}
    for _ in range(reps):
        for impl in implementations:
            event = stack.event(_bodies(size), min(groups, size))
            wires[impl.name].reset()
            started, cpu_started = time.perf_counter(), time.process_time()
            answer = impl.process(event)
            times[impl.name].append((time.perf_counter() - started) * 1000)
            moto_ms = wires[impl.name].service_seconds * 1000
            emulator[impl.name].append(moto_ms)
            own_cpu[impl.name].append(max(0.0, (time.process_time() - cpu_started) * 1000 - moto_ms))
            _checked(answer, impl.name)
    return times, emulator, own_cpu


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
        own_cpu_ms: dict[str, dict[str, float]] = {}
        for groups in (10, 1):
            times, emulator, own_cpu = _timed_batches(stack, implementations, wires, groups, reps)
            batches[f"{groups}_groups"] = {name: statistics.median(values) for name, values in times.items()}
            emulator_ms[f"{groups}_groups"] = {name: statistics.median(values) for name, values in emulator.items()}
            own_cpu_ms[f"{groups}_groups"] = {name: statistics.median(values) for name, values in own_cpu.items()}
        results["batch_ms"] = batches
        results["emulator_cpu_ms"] = emulator_ms
        # The capacity plan scales this part with Lambda's share of a vCPU (docs/capacity.md).
        results["own_cpu_ms"] = own_cpu_ms
        results["log_bytes_per_message"] = (consumer.sink.bytes - log_bytes_before) / (2 * reps * BATCH)

        # One message per invocation (sparse traffic): the consumer's worst case for cost.
        log_bytes_before = consumer.sink.bytes
        single, _, _ = _timed_batches(stack, [consumer], wires, 1, reps, size=1)
        results["single_record"] = {
            "ms": statistics.median(single["consumer"]),
            "log_bytes": (consumer.sink.bytes - log_bytes_before) / reps,
            "calls": dict(sorted(wires["consumer"].calls.items())),  # of the last one: each makes the same calls
        }

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


HOSTILE_CHECKS_TARGET_MS = 250.0
HOSTILE_SETTLE_TARGET_MS = 1000.0


def _checked_body(body: str) -> tuple[str, float]:
    """The consumer's own work on a body, parse and DynamoDB's rules: (``stored`` or the reason, ms)."""
    import jmespath

    from consumer.dynamodb_item import build_item
    from consumer.exceptions import InvalidMessageError
    from consumer.message import parse_message
    from consumer.sqs_event import SqsRecord

    record = SqsRecord("bench", "bench", body, "arn:aws:sqs:us-east-1:123456789012:bench.fifo")
    key = jmespath.compile("message_id")
    started = time.perf_counter()
    try:
        build_item(parse_message(record, key), datetime.now(UTC), None)
        outcome = "stored"
    except InvalidMessageError as invalid:
        outcome = invalid.reason
    return outcome, (time.perf_counter() - started) * 1000


def measure_hostile(quick: bool) -> dict[str, dict[str, dict[str, Any]]]:
    """6. One record of each hostile shape through the handler: milliseconds until it is settled."""
    reps = 1 if quick else 3
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    with moto_stack() as stack:
        wire = Wire(0.0, answer_put_item=True)
        consumer = Consumer(wire)
        for size_name, size in SIZES.items():
            figures[size_name] = {}
            for shape, make in SHAPES.items():
                body = make(size)
                total: list[float] = []
                emulator: list[float] = []
                checks: list[float] = []
                for rep in range(reps):
                    outcome, checks_ms = _checked_body(body)
                    checks.append(checks_ms)
                    # A new key each time: a stored body would otherwise come back as a duplicate.
                    event = stack.event([body.replace('"hostile"', f'"hostile{rep}"', 1)], groups=1)
                    wire.reset()
                    started = time.perf_counter()
                    _checked(consumer.process(event), "consumer")
                    total.append((time.perf_counter() - started) * 1000)
                    emulator.append(wire.service_seconds * 1000)
                settle, moto = statistics.median(total), statistics.median(emulator)
                figures[size_name][shape] = {
                    "outcome": outcome,
                    "body_bytes": len(body),
                    "checks_ms": statistics.median(checks),
                    "settle_ms": settle,
                    "moto_cpu_ms": moto,
                    "consumer_ms": max(settle - moto, 0.0),
                }
    return figures


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


def template_figures() -> dict[str, int]:
    """What the deployed stack is billed for by template.yaml: its default memory, its alarms."""
    from consumer.telemetry import METRIC_NAMES
    from local.template_resources import load_template

    template = load_template()
    alarms = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    return {
        "memory_mb": int(template["Parameters"]["FunctionMemory"]["Default"]),
        "alarms": sum(1 for alarm in alarms if "Condition" not in alarm),
        "conditional_alarms": sum(1 for alarm in alarms if "Condition" in alarm),
        "metrics": len(METRIC_NAMES) + 1,  # Powertools adds ColdStart
    }


def costs(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Both designs at full batches of 10 groups, and the consumer at one message per invocation."""
    memory = results["template"]["memory_mb"]
    calls, ten, single = results["calls_per_message"], results["batch_ms"]["10_groups"], results["single_record"]
    usages = {
        "consumer": cost.Usage(calls["consumer"], BATCH, ten["consumer"], results["log_bytes_per_message"]),
        "reference": cost.Usage(calls["reference"], BATCH, ten["reference"], 0.0),
        "consumer_one_per_invocation": cost.Usage(single["calls"], 1, single["ms"], single["log_bytes"]),
    }
    return {name: cost.per_million(usage, memory) for name, usage in usages.items()}


def measure(quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    results = measure_in_process(quick)
    runs = 1 if quick else 5
    results["import_ms"] = {"consumer": import_ms("handler", runs), "reference": import_ms("bench.reference", runs)}
    results["first_record_ms"] = {
        "consumer": first_record("consumer", 1 if quick else 3),
        "reference": first_record("reference", 1 if quick else 3),
    }
    results["baseline_rss_mb"] = baseline_rss_mb()
    results["hostile"] = measure_hostile(quick)
    results["concurrency"] = concurrency.measure(quick)
    results["template"] = template_figures()
    results["cost_per_million"] = costs(results)
    results["large_batch"] = {which: large_batch(which, 1 if quick else 3) for which in ("bodies", "pointers")}
    results["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count() or 0,
        "latency_ms": LATENCY_MS,
        "quick": quick,
    }
    results["seconds"] = time.monotonic() - started
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
    own = results["own_cpu_ms"]
    add(
        f"   own CPU per batch (process CPU less moto's), ms: 10 groups {own['10_groups']['consumer']:.1f} / "
        f"{own['10_groups']['reference']:.1f}, 1 group {own['1_groups']['consumer']:.1f} / "
        f"{own['1_groups']['reference']:.1f}"
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
    verdict = _met(estimate <= MEMORY_TARGET_MB)
    add(f"   {'estimate (RSS + batch peak), MB':<44}{estimate:>10.1f}   target <= {MEMORY_TARGET_MB} MB: {verdict}")

    add("")
    memory = results["template"]["memory_mb"]
    add(f"5. Dollars per million messages (bench/cost.py: prices as of {cost.PRICES_AS_OF}, {memory} MB arm64)")
    dollars = results["cost_per_million"]
    add(f"   {'':<22}{'consumer':>10}{'reference':>11}{'consumer, 1 per invocation':>28}")
    for name in ("sqs", "dynamodb", "cloudwatch", "logs", "lambda", "total"):
        add(
            f"   {name:<22}{dollars['consumer'][name]:>10.3f}{dollars['reference'][name]:>11.3f}"
            f"{dollars['consumer_one_per_invocation'][name]:>28.3f}"
        )
    single = results["single_record"]
    add(
        f"   consumer logs: {results['log_bytes_per_message']:.0f} bytes per message in batches of {BATCH}, "
        f"{single['log_bytes']:.0f} alone (JSON lines and EMF); the reference logs nothing"
    )
    add(f"   1 message per invocation: {single['ms']:.1f} ms each")
    add("")
    reps = "1 run" if machine["quick"] else "median of 3"
    add(f"6. Hostile bodies: milliseconds to settle one record ({reps}), moto in-process, no added latency")
    add(f"   {'shape':<16}{'size':<9}{'outcome':<21}{'checks':>8}{'settle':>8}{'moto CPU':>10}{'consumer':>10}")
    slowest_checks = slowest = 0.0
    for size_name, shapes in results["hostile"].items():
        for shape, figure in shapes.items():
            slowest_checks = max(slowest_checks, figure["checks_ms"])
            slowest = max(slowest, figure["consumer_ms"])
            add(
                f"   {shape:<16}{size_name:<9}{figure['outcome']:<21}{figure['checks_ms']:>8.1f}"
                f"{figure['settle_ms']:>8.1f}{figure['moto_cpu_ms']:>10.1f}{figure['consumer_ms']:>10.1f}"
            )
    add("   checks: parsing the body and checking it against DynamoDB's rules (the consumer's own code);")
    add("   settle: the handler's wall time for the record (checks, logs, PutItem or DLQ forward, delete);")
    add("   consumer: settle less moto's CPU (moto answers in this process; real AWS does that work on its side)")
    verdict = _met(slowest_checks <= HOSTILE_CHECKS_TARGET_MS)
    add(f"   slowest checks {slowest_checks:.1f} ms   target <= {HOSTILE_CHECKS_TARGET_MS:.0f} ms: {verdict}")
    verdict = _met(slowest <= HOSTILE_SETTLE_TARGET_MS)
    add(f"   slowest consumer time {slowest:.1f} ms   target <= {HOSTILE_SETTLE_TARGET_MS:.0f} ms: {verdict}")
    add("")
    lines.extend(concurrency.render(results["concurrency"], machine["cpus"]))
    add("")
    add("8. Large messages: peak RSS over one batch of ten 1 MiB messages, ten groups at once (fresh process each)")
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
        dollars = cost.large_messages(large[which])
        add(
            f"   {which:<9} S3 requests {dollars['s3_requests']:.2f}, DynamoDB writes {dollars['dynamodb']:.2f}"
            f" ({large[which]['write_units_per_message']:g} write unit(s) an item), S3 storage"
            f" {dollars['s3_storage_month']:.2f}"
            f" per month kept; per message: {counted}"
        )
    return "\n".join(lines)


def summary_table(results: dict[str, Any]) -> str:
    """The headline figures as a Markdown table (docs/results/bench.md)."""
    calls, batch_ms, cpu = results["calls_per_message"], results["batch_ms"], results["emulator_cpu_ms"]
    total = {name: sum(calls[name].values()) for name in ("consumer", "reference")}
    floors = {"10_groups": 2 * LATENCY_MS, "1_groups": (BATCH + 1) * LATENCY_MS}
    targets = {"10_groups": 10.0, "1_groups": 4.0}
    rows = [
        "| figure | consumer | sequential design | target |",
        "|---|---|---|---|",
        f"| AWS calls per new message | {total['consumer']:.2f} | {total['reference']:.2f} "
        f"| ≤ 1.1: {_met(total['consumer'] <= 1.1 + 1e-9)} |",
    ]
    for key, label in (("10_groups", "10 groups"), ("1_groups", "1 group")):
        ms, ratio = batch_ms[key], batch_ms[key]["reference"] / batch_ms[key]["consumer"]
        of_floor = ms["consumer"] / floors[key]
        net = max(ms["consumer"] - cpu[key]["consumer"], 0.0) / floors[key]
        rows.append(
            f"| ms per batch of {BATCH}, {label} | {ms['consumer']:.1f} | {ms['reference']:.1f} ({ratio:.1f}x slower) "
            f"| ≥ {targets[key]:.0f}x: {_met(ratio >= targets[key])}; ≤ 1.5x the {floors[key]:.0f} ms floor: "
            f"{_met(of_floor <= 1.5)} ({of_floor:.2f}x; {net:.2f}x without moto's CPU) |"
        )
    imports, fresh = results["import_ms"], results["first_record_ms"]
    first = {name: sum(value.values()) for name, value in fresh.items()}
    estimate = results["baseline_rss_mb"] + results["batch_peak_mb"]["consumer"]
    dollars = results["cost_per_million"]
    runs = results["concurrency"]["runs"]
    rates = " / ".join(f"{run['messages_per_second']:.0f}" for run in runs.values())
    rows += [
        f"| import of `handler` (`-X importtime`), ms | {imports['consumer']:.0f} | {imports['reference']:.0f} | |",
        f"| time to the first processed record, fresh process, ms | {first['consumer']:.0f} "
        f"| {first['reference']:.0f} | |",
        f"| peak memory, {BATCH} bodies of {BODY_BYTES // 1024} KB, MB | {estimate:.0f} | "
        f"| fits {MEMORY_TARGET_MB} MB: {_met(estimate <= MEMORY_TARGET_MB)} |",
        f"| $ per million messages, batches of {BATCH} | {dollars['consumer']['total']:.2f} "
        f"| {dollars['reference']['total']:.2f} | |",
        f"| `make run --pollers N`, messages/s with {' / '.join(runs)} poller processes (the local emulator's "
        f"limit, not Lambda's) | {rates} | | |",
    ]
    return "\n".join(rows)


def bench_markdown(results: dict[str, Any], ran: str) -> str:
    return "\n".join(
        [
            results_files.header(ran, results["seconds"]),
            "",
            summary_table(results),
            "",
            "```text",
            render(results),
            "```",
        ]
    )


def cost_markdown(results: dict[str, Any], ran: str) -> str:
    """docs/results/cost.md: the per-million tables from this run's measurements, and the monthly ones."""
    dollars, template, single = results["cost_per_million"], results["template"], results["single_record"]
    columns = ("consumer", "reference", "consumer_one_per_invocation")
    lines = [
        results_files.header(ran, results["seconds"]),
        "",
        f"Per million messages, {template['memory_mb']} MB arm64 (template.yaml's default), "
        f"with what this run measured: calls per message, {results['batch_ms']['10_groups']['consumer']:.1f} ms "
        f"per batch of {BATCH} (consumer; {results['batch_ms']['10_groups']['reference']:.1f} ms the sequential "
        f"design), {single['ms']:.1f} ms for one message alone, and the consumer's logs: "
        f"{results['log_bytes_per_message']:.0f} bytes per message in batches of {BATCH}, "
        f"{single['log_bytes']:.0f} alone.",
        "",
        f"| service | consumer, batches of {BATCH} | sequential design, batches of {BATCH} "
        "| consumer, 1 message per invocation |",
        "|---|---|---|---|",
    ]
    for name in ("sqs", "dynamodb", "cloudwatch", "logs", "lambda"):
        lines.append(f"| {name} | " + " | ".join(f"${dollars[c][name]:.3f}" for c in columns) + " |")
    lines.append("| **total** | " + " | ".join(f"**${dollars[c]['total']:.2f}**" for c in columns) + " |")
    lines += ["", "Assumptions:", ""]
    lines += [f"- {assumption}" for assumption in cost.ASSUMPTIONS]
    lines += ["", "By the month, whatever the traffic (from template.yaml and the same price list):", ""]
    lines += ["| resource | price per month | this stack |", "|---|---|---|"]
    monthly = cost.monthly(template["metrics"], template["alarms"], template["conditional_alarms"])
    lines += [f"| {a} | {b} | {c} |" for a, b, c in monthly]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few repetitions: a smoke run, not figures to quote")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument(
        "--results", metavar="DIR", type=Path, help="write bench.md and cost.md there (not with --quick)"
    )
    args = parser.parse_args(arguments)
    results = measure(args.quick)
    print(render(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.results and args.quick:
        print(f"quick run: figures not to quote, {args.results} left as it was", file=sys.stderr)
    elif args.results:
        ran = results_files.command("bench", arguments)
        for name, text in (("bench.md", bench_markdown(results, ran)), ("cost.md", cost_markdown(results, ran))):
            print(f"wrote {results_files.write(args.results, name, text)}", file=sys.stderr)
        # Every figure, for the capacity calculator (python -m local capacity, docs/capacity.md).
        figures = args.results / "bench.json"
        stamp = {"command": ran, "date": datetime.now(UTC).strftime("%Y-%m-%d")}
        figures.write_text(json.dumps({**results, **stamp}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {figures}", file=sys.stderr)
    return 0
