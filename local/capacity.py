"""``python -m local capacity --rate R --groups G``: what one stack sustains, and what to set for R.

From `make bench`'s measured batch times (docs/results/bench.json), template.yaml's defaults and
AWS's published quotas (each cited in docs/capacity.md). ``--results docs/results`` writes the
tables docs/capacity.md quotes. The model, stated once:

- Under a backlog, SQS fills a FIFO batch with as many messages of one group as it can, and a
  group has one batch in flight at a time. So an invocation, and a message group, handles
  ``BatchSize`` messages per *batch time*: the bench's batch of 10 records of one group (10 ms
  added to every AWS call), whose records the consumer writes one after the other.
- That time is waits plus the consumer's own CPU. Lambda gives a function memory / 1,769 MB of
  a vCPU, so the CPU part is scaled by 1,769 / memory, up to one vCPU (the consumer's threads
  share one interpreter lock); the bench machine's core counts as one vCPU. None of the CPU is
  assumed to overlap the waits.
- Not counted: the event source mapping's own time between batches, cold starts, retries. The
  recommended concurrency keeps 25% headroom for them.
- Concurrent invocations are the lowest of EventSourceMaxConcurrency, the active message groups
  and the concurrency the account (or ReservedConcurrency) leaves the function.
- Cost per million is bench/cost.py's, with the modelled batch time and the memory.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from local import results
from local.template_resources import load_template

BENCH_RESULTS = results.RESULTS_DIR / "bench.json"
HEADROOM = 1.25
VCPU_MB = 1769  # Lambda: at 1,769 MB a function has the equivalent of one vCPU
MEMORY_STEPS = (256, 512, 1024, 1769)  # tried in turn when the default memory needs too many invocations

# AWS's published quotas (docs/capacity.md cites each source).
MAXIMUM_CONCURRENCY = (2, 1000)  # ScalingConfig.MaximumConcurrency of an SQS event source
ACCOUNT_CONCURRENCY = 1000  # concurrent executions per Region, default
SQS_HIGH_THROUGHPUT_TPS = 70_000  # per API action, high throughput FIFO, us-east-1, us-west-2, eu-west-1
DYNAMODB_PARTITION_WRU = 1000  # write request units per second, per partition
DYNAMODB_TABLE_WRU = 40_000  # on-demand table quota, write request units per second
DYNAMODB_NEW_TABLE_WRU = 4000  # what a new on-demand table serves at once
ITEM_KB_PER_WRITE_UNIT = 1  # a write unit writes an item up to 1 KB; bigger items round up per KB


@dataclass(frozen=True)
class Measured:
    """What `make bench` measured for the consumer (docs/results/bench.json)."""

    source: str
    date: str
    one_group_ms: float
    one_group_cpu_ms: float
    latency_ms: float
    calls: dict[str, float]
    log_bytes: float

    @classmethod
    def from_bench(cls, path: Path) -> Measured:
        figures: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        try:
            shown = str(path.resolve().relative_to(results.ROOT))
        except ValueError:
            shown = str(path)
        return cls(
            source=shown,
            date=str(figures.get("date", "an unknown date")),
            one_group_ms=float(figures["batch_ms"]["1_groups"]["consumer"]),
            one_group_cpu_ms=float(figures["own_cpu_ms"]["1_groups"]["consumer"]),
            latency_ms=float(figures["machine"]["latency_ms"]),
            calls={name: float(count) for name, count in figures["calls_per_message"]["consumer"].items()},
            log_bytes=float(figures["log_bytes_per_message"]),
        )

    def batch_seconds(self, memory_mb: int) -> float:
        """A batch of one group's records at this memory: the waits, and the CPU at Lambda's share of a vCPU."""
        share = min(1.0, memory_mb / VCPU_MB)
        return (self.one_group_ms - self.one_group_cpu_ms + self.one_group_cpu_ms / share) / 1000


@dataclass(frozen=True)
class Settings:
    """The template parameters that bound throughput."""

    event_source_max_concurrency: int
    memory_mb: int
    reserved_concurrency: int
    group_concurrency: int
    batch_size: int
    function_timeout: int

    @classmethod
    def template_defaults(cls) -> Settings:
        template = load_template()
        parameters = template["Parameters"]
        events = template["Resources"]["ConsumerFunction"]["Properties"]["Events"]
        batch = next(event for event in events.values() if event["Type"] == "SQS")["Properties"]["BatchSize"]
        return cls(
            event_source_max_concurrency=int(parameters["EventSourceMaxConcurrency"]["Default"]),
            memory_mb=int(parameters["FunctionMemory"]["Default"]),
            reserved_concurrency=int(parameters["ReservedConcurrency"]["Default"]),
            group_concurrency=int(parameters["GroupConcurrency"]["Default"]),
            batch_size=int(batch),
            function_timeout=int(parameters["FunctionTimeout"]["Default"]),
        )


@dataclass(frozen=True)
class Plan:
    """One stack with these settings, these active groups and, for a target, this rate."""

    title: str
    settings: Settings
    groups: int | None
    rate: float | None
    batch_seconds: float
    per_invocation: float
    limits: list[tuple[str, float]]
    write_units: int
    warm_write_units: int
    cost: dict[str, float]
    notes: list[str]

    @property
    def sustained(self) -> float:
        return self.limits[0][1]

    @property
    def limited_by(self) -> str:
        return self.limits[0][0]

    @property
    def busy(self) -> float:
        """Invocations in flight at the target rate (at the sustained rate without one)."""
        return _throughput(self) / self.per_invocation

    @property
    def groups_needed(self) -> int:
        return math.ceil(self.busy)


def limits(
    settings: Settings, groups: int | None, per_invocation: float, write_units: int, warm_write_units: int
) -> list[tuple[str, float]]:
    """Messages per second each bound allows, lowest first."""
    concurrency = settings.reserved_concurrency or ACCOUNT_CONCURRENCY
    bounds = [
        (f"EventSourceMaxConcurrency {settings.event_source_max_concurrency}", settings.event_source_max_concurrency),
        (
            f"ReservedConcurrency {concurrency}"
            if settings.reserved_concurrency
            else f"account concurrency {ACCOUNT_CONCURRENCY:,}",
            concurrency,
        ),
    ]
    if groups is not None:
        bounds.append((f"{groups:,} active message groups", groups))
    found = [(name, count * per_invocation) for name, count in bounds]
    instant = max(DYNAMODB_NEW_TABLE_WRU, warm_write_units)
    found += [
        (
            f"DynamoDB warm throughput {instant:,} write units/s"
            if warm_write_units
            else f"DynamoDB new table, {instant:,} write units/s at once",
            instant / write_units,
        ),
        (f"DynamoDB table quota {DYNAMODB_TABLE_WRU:,} write units/s", DYNAMODB_TABLE_WRU / write_units),
        (
            f"SQS {SQS_HIGH_THROUGHPUT_TPS:,} ReceiveMessage/s (high throughput FIFO)",
            SQS_HIGH_THROUGHPUT_TPS * settings.batch_size,
        ),
    ]
    return sorted(found, key=lambda bound: bound[1])


def plan(
    title: str,
    settings: Settings,
    measured: Measured,
    *,
    groups: int | None,
    rate: float | None = None,
    item_kb: float = 1.0,
    warm_write_units: int = 0,
    notes: Sequence[str] = (),
) -> Plan:
    from bench import cost

    batch_seconds = measured.batch_seconds(settings.memory_mb)
    per_invocation = settings.batch_size / batch_seconds
    write_units = max(1, math.ceil(item_kb / ITEM_KB_PER_WRITE_UNIT))
    # A PutItem of an item over 1 KB costs a write unit per KB.
    calls = {name: count * (write_units if name == "PutItem" else 1) for name, count in measured.calls.items()}
    usage = cost.Usage(calls, settings.batch_size, batch_seconds * 1000, measured.log_bytes)
    dollars = cost.per_million(usage, settings.memory_mb)
    return Plan(
        title=title,
        settings=settings,
        groups=groups,
        rate=rate,
        batch_seconds=batch_seconds,
        per_invocation=per_invocation,
        limits=limits(settings, groups, per_invocation, write_units, warm_write_units),
        write_units=write_units,
        warm_write_units=warm_write_units,
        cost=dollars,
        notes=list(notes),
    )


def plan_for_rate(rate: float, groups: int, base: Settings, measured: Measured, item_kb: float = 1.0) -> Plan:
    """The settings that sustain ``rate`` over ``groups`` with 25% headroom, at the least memory that can."""
    write_units = max(1, math.ceil(item_kb / ITEM_KB_PER_WRITE_UNIT))
    notes: list[str] = []
    needed_units = rate * write_units
    warm = 0
    if needed_units > DYNAMODB_NEW_TABLE_WRU:
        warm = 1000 * math.ceil(needed_units * HEADROOM / 1000)
        notes.append(
            f"a new on-demand table serves {DYNAMODB_NEW_TABLE_WRU:,} write units/s at once: set its warm throughput "
            f"to {warm:,} write units/s (WarmThroughput.WriteUnitsPerSecond), or ramp up over 30 minutes or more"
        )
    if needed_units > DYNAMODB_TABLE_WRU:
        notes.append(f"{needed_units:,.0f} write units/s is over the table quota of {DYNAMODB_TABLE_WRU:,}: ask AWS")
    memories = [base.memory_mb, *(memory for memory in MEMORY_STEPS if memory > base.memory_mb)]
    chosen = base
    for memory in memories:
        per_invocation = base.batch_size / measured.batch_seconds(memory)
        busy = rate / per_invocation
        concurrency = max(MAXIMUM_CONCURRENCY[0], math.ceil(busy * HEADROOM))
        chosen = replace(
            base,
            memory_mb=memory,
            event_source_max_concurrency=min(concurrency, groups, MAXIMUM_CONCURRENCY[1]),
            reserved_concurrency=base.reserved_concurrency and max(base.reserved_concurrency, concurrency),
        )
        if concurrency <= min(groups, MAXIMUM_CONCURRENCY[1]):
            break
    title = f"{rate:,.0f} messages/s, {groups:,} groups"
    result = plan(title, chosen, measured, groups=groups, rate=rate, item_kb=item_kb, warm_write_units=warm)
    if result.sustained < rate:
        notes.append(
            f"one stack cannot: at most {result.sustained:,.0f} messages/s ({result.limited_by}); "
            + (
                f"the producer needs at least {result.groups_needed:,} message groups"
                if groups < result.groups_needed
                else "split the groups over several queues and stacks"
            )
        )
    if chosen.event_source_max_concurrency > ACCOUNT_CONCURRENCY // 2:
        notes.append(
            f"{chosen.event_source_max_concurrency} concurrent invocations is a large share of the account's "
            f"{ACCOUNT_CONCURRENCY:,}: reserve them (ReservedConcurrency) or raise the account quota"
        )
    return replace(result, notes=notes)


def defaults_plan(base: Settings, measured: Measured) -> Plan:
    return plan("template defaults", base, measured, groups=None)


def render_text(plans: Sequence[Plan], measured: Measured) -> str:
    lines = [_measured_line(measured), ""]
    for current in plans:
        settings = current.settings
        lines.append(f"{current.title}:")
        lines += [
            f"  EventSourceMaxConcurrency  {settings.event_source_max_concurrency}"
            + (f"  ({current.busy:.1f} invocations busy, + 25%)" if current.rate is not None else ""),
            f"  FunctionMemory             {settings.memory_mb} MB"
            f"  ({min(1.0, settings.memory_mb / VCPU_MB):.2f} vCPU: a batch of one group takes "
            f"{current.batch_seconds * 1000:.0f} ms, {current.per_invocation:.1f} messages/s per invocation "
            "and per message group)",
            f"  ReservedConcurrency        {_reserved(current)}",
            f"  GroupConcurrency           {settings.group_concurrency}  ("
            + (
                f"a batch holds at most {settings.batch_size} groups: never the limit)"
                if settings.group_concurrency >= settings.batch_size
                else "fewer than a batch's groups: mixed batches take longer)"
            ),
            f"  BatchSize                  {settings.batch_size}  (FIFO's maximum)",
            f"  FunctionTimeout            {settings.function_timeout} s  (a batch takes "
            f"{current.batch_seconds:.2f} s)",
            f"  message groups             at least {current.groups_needed:,} active"
            + (f"; {current.groups:,} given" if current.groups is not None else ""),
            f"  DynamoDB                   {_units(current):,.0f} write units/s, {_partitions(current)} "
            f"partition(s) of {DYNAMODB_PARTITION_WRU:,}; warm throughput {_warm(current)}",
            f"  SQS                        {_throughput(current) / settings.batch_size:,.0f} "
            f"ReceiveMessage and DeleteMessageBatch requests/s each (quota {SQS_HIGH_THROUGHPUT_TPS:,})",
            f"  sustains                   {current.sustained:,.0f} messages/s, limited first by {current.limited_by}",
            "  limits, lowest first       "
            + "; ".join(f"{name}: {value:,.0f}/s" for name, value in current.limits[:4]),
            f"  cost per million messages  ${current.cost['total']:.2f} ("
            + ", ".join(f"{name} {current.cost[name]:.3f}" for name in ("lambda", "dynamodb", "sqs", "logs"))
            + ")",
        ]
        lines.extend(f"  note: {note}" for note in current.notes)
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_markdown(plans: Sequence[Plan], measured: Measured) -> str:
    header = "| | " + " | ".join(current.title for current in plans) + " |"
    rows = [
        header,
        "|---|" + "---|" * len(plans),
        _row("EventSourceMaxConcurrency", plans, lambda p: str(p.settings.event_source_max_concurrency)),
        _row("FunctionMemory (MB)", plans, lambda p: str(p.settings.memory_mb)),
        _row("ReservedConcurrency", plans, _reserved),
        _row("GroupConcurrency", plans, lambda p: str(p.settings.group_concurrency)),
        _row("BatchSize", plans, lambda p: str(p.settings.batch_size)),
        _row("FunctionTimeout (s)", plans, lambda p: str(p.settings.function_timeout)),
        _row("DynamoDB warm throughput (write units/s)", plans, _warm),
        _row("batch of one group (ms)", plans, lambda p: f"{p.batch_seconds * 1000:.0f}"),
        _row("messages/s per invocation and per group", plans, lambda p: f"{p.per_invocation:.1f}"),
        _row("invocations busy", plans, lambda p: f"{p.busy:.1f}"),
        _row("active message groups needed", plans, lambda p: f"{p.groups_needed:,}"),
        _row("DynamoDB write units/s (partitions)", plans, lambda p: f"{_units(p):,.0f} ({_partitions(p)})"),
        _row("SQS requests/s per API action", plans, lambda p: f"{_throughput(p) / p.settings.batch_size:,.0f}"),
        _row("sustains (messages/s)", plans, lambda p: f"{p.sustained:,.0f}"),
        _row("limited first by", plans, lambda p: p.limited_by),
        _row("next limits", plans, lambda p: "; ".join(f"{n} ({v:,.0f}/s)" for n, v in p.limits[1:3])),
        _row("$ per million messages", plans, lambda p: f"{p.cost['total']:.2f}"),
        _row(
            "of which Lambda / DynamoDB / SQS / logs",
            plans,
            lambda p: " / ".join(f"{p.cost[name]:.3f}" for name in ("lambda", "dynamodb", "sqs", "logs")),
        ),
    ]
    notes = [f"- {current.title}: {note}" for current in plans for note in current.notes]
    return "\n".join([_measured_line(measured), "", *rows, *(["", *notes] if notes else [])]) + "\n"


def _measured_line(measured: Measured) -> str:
    return (
        f"Measured by `make bench` on {measured.date} ({measured.source}): a batch of 10 records of one message group "
        f"in {measured.one_group_ms:.1f} ms with {measured.latency_ms:g} ms added to every AWS call, "
        f"{measured.one_group_cpu_ms:.1f} ms of it the consumer's own CPU; {measured.log_bytes:.0f} bytes of logs "
        "per message."
    )


def _row(label: str, plans: Sequence[Plan], cell: Callable[[Plan], str]) -> str:
    return f"| {label} | " + " | ".join(cell(current) for current in plans) + " |"


def _throughput(current: Plan) -> float:
    """The target rate, or what the settings sustain when there is none."""
    return current.rate if current.rate is not None else current.sustained


def _units(current: Plan) -> float:
    return _throughput(current) * current.write_units


def _warm(current: Plan) -> str:
    return f"{current.warm_write_units:,}" if current.warm_write_units else "-"


def _partitions(current: Plan) -> int:
    return max(1, math.ceil(_units(current) / DYNAMODB_PARTITION_WRU))


def _reserved(current: Plan) -> str:
    if current.settings.reserved_concurrency:
        return str(current.settings.reserved_concurrency)
    return f"0, or at least {current.settings.event_source_max_concurrency}"


def add_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--rate", type=float, action="append", default=[], help="messages a second to plan for (repeat for more)"
    )
    command.add_argument(
        "--groups", type=int, action="append", default=[], help="active message groups at that rate (one per --rate)"
    )
    command.add_argument("--item-kb", type=float, default=1.0, help="size of a stored item in KB (default 1)")
    command.add_argument(
        "--bench", type=Path, default=BENCH_RESULTS, help="make bench's figures (default docs/results/bench.json)"
    )
    command.add_argument("--markdown", action="store_true", help="print the tables of docs/capacity.md")
    command.add_argument(
        "--results",
        type=Path,
        metavar="DIR",
        help="also write the tables to DIR/capacity.md with the command, machine and date (docs/capacity.md quotes it)",
    )


def capacity_command(options: argparse.Namespace, out: IO[str], arguments: Sequence[str] = ()) -> int:
    started = time.monotonic()
    if len(options.rate) != len(options.groups):
        raise SystemExit("give one --groups for each --rate")
    if any(rate <= 0 for rate in options.rate) or any(groups < 1 for groups in options.groups):
        raise SystemExit("--rate and --groups must be positive")
    measured = Measured.from_bench(options.bench)
    base = Settings.template_defaults()
    plans = [defaults_plan(base, measured)]
    plans += [
        plan_for_rate(rate, groups, base, measured, options.item_kb)
        for rate, groups in zip(options.rate, options.groups, strict=True)
    ]
    markdown = render_markdown(plans, measured)
    out.write(markdown if options.markdown else render_text(plans, measured))
    if options.results:
        ran = results.command("local", arguments)
        page = "\n".join([results.header(ran, time.monotonic() - started), "", markdown])
        print(f"wrote {results.write(options.results, 'capacity.md', page)}", file=sys.stderr)
    return 0


def tables_of(page: str) -> str:
    """The tables of a capacity.md results page: what follows its header."""
    return page.split("\n\n", 1)[1]
