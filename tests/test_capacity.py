"""The capacity calculator: what one stack sustains, what to set for a rate, and docs/capacity.md from it.

The plans below are computed from figures given here (a batch of 10 records of one group in
110 ms, 10 ms of it the consumer's own CPU), not from a bench run, so each number can be checked
by hand: at 256 MB Lambda gives 256 / 1,769 of a vCPU, so the batch takes 100 + 10 x 1,769 / 256
= 169.1 ms, and an invocation (or a message group) handles 10 / 0.1691 = 59.1 messages a second.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import pytest

from local.capacity import tables_of
from local.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def bench_figures(tmp_path: Path) -> Path:
    figures = {
        "date": "2026-01-01",
        "machine": {"latency_ms": 10.0},
        "batch_ms": {"1_groups": {"consumer": 110.0}, "10_groups": {"consumer": 30.0}},
        "own_cpu_ms": {"1_groups": {"consumer": 10.0}, "10_groups": {"consumer": 8.0}},
        "calls_per_message": {"consumer": {"PutItem": 1.0, "DeleteMessageBatch": 0.1}},
        "log_bytes_per_message": 800.0,
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(figures), encoding="utf-8")
    return path


def _capacity(*args: str) -> str:
    out = io.StringIO()
    assert main(["capacity", *args], stdout=out) == 0
    return out.getvalue()


def test_the_template_defaults_are_limited_first_by_the_event_source_concurrency(bench_figures: Path) -> None:
    # Given the measured figures; When the calculator describes one stack with template.yaml's defaults
    text = _capacity("--bench", str(bench_figures))

    # Then five invocations of 59.1 messages/s each sustain 296 messages/s, and that concurrency limits first
    defaults = text.split("template defaults:")[1]
    assert "a batch of one group takes 169 ms, 59.1 messages/s per invocation" in defaults
    assert "sustains                   296 messages/s, limited first by EventSourceMaxConcurrency 5" in defaults


def test_for_a_rate_it_sets_the_concurrency_with_headroom_and_says_what_it_costs(bench_figures: Path) -> None:
    # Given 1,000 messages/s over 100 message groups
    text = _capacity("--rate", "1000", "--groups", "100", "--bench", str(bench_figures))

    # Then 16.9 invocations are busy, and EventSourceMaxConcurrency is 22 (25% more), at the default memory
    plan = text.split("1,000 messages/s, 100 groups:")[1]
    assert "EventSourceMaxConcurrency  22  (16.9 invocations busy, + 25%)" in plan
    assert "FunctionMemory             256 MB" in plan
    assert "message groups             at least 17 active; 100 given" in plan
    # And the table's writes fit one partition and a new table's 4,000 write units/s, with no note
    assert "DynamoDB                   1,000 write units/s, 1 partition(s) of 1,000; warm throughput -" in plan
    assert "note:" not in plan
    # And the cost is bench/cost.py's: 0.625 DynamoDB; SQS 0.65, the consumer's 0.1 DeleteMessageBatch plus the
    # pipeline's send, and the mapping's receive and delete per batch; 800 bytes of logs at $0.50/GB; Lambda's
    # 16.9 ms x 0.25 GB per message at $0.0000133334 per GB-s plus a tenth of a $0.20-per-million request
    assert "cost per million messages  $1.75 (lambda 0.076, dynamodb 0.625, sqs 0.650, logs 0.400)" in plan


def test_past_a_new_tables_throughput_it_asks_for_warm_throughput_and_reserved_concurrency(
    bench_figures: Path,
) -> None:
    # Given 30,000 messages/s over 3,000 message groups
    text = _capacity("--rate", "30000", "--groups", "3000", "--bench", str(bench_figures))

    # Then 507 invocations are busy and 635 may run; the table needs 30 partitions and warm throughput
    plan = text.split("30,000 messages/s, 3,000 groups:")[1]
    assert "EventSourceMaxConcurrency  635  (507.3 invocations busy, + 25%)" in plan
    assert "DynamoDB                   30,000 write units/s, 30 partition(s) of 1,000; warm throughput 38,000" in plan
    assert "note: a new on-demand table serves 4,000 write units/s at once" in plan
    # And so many invocations call for reserved concurrency
    assert "note: 635 concurrent invocations is a large share of the account's 1,000" in plan


def test_too_few_message_groups_for_the_rate_is_said_plainly(bench_figures: Path) -> None:
    # Given 1,000 messages/s squeezed into 5 message groups: one group moves at most 59.1 (256 MB) to 90.9
    # (1,769 MB: a whole vCPU) messages/s
    text = _capacity("--rate", "1000", "--groups", "5", "--bench", str(bench_figures))

    # Then even the most memory cannot do it with one invocation per group, and the note says what is needed
    plan = text.split("1,000 messages/s, 5 groups:")[1]
    assert "FunctionMemory             1769 MB" in plan
    assert "sustains                   455 messages/s, limited first by EventSourceMaxConcurrency 5" in plan
    assert "note: one stack cannot: at most 455 messages/s" in plan
    assert "the producer needs at least 11 message groups" in plan


def test_the_capacity_tables_docs_quote_are_the_calculators_output() -> None:
    # Given docs/results/capacity.md (which docs/capacity.md quotes), naming the command that wrote it
    page = (ROOT / "docs" / "results" / "capacity.md").read_text(encoding="utf-8")
    ran = re.search(r"^- \*\*command\*\*: `\.venv/bin/python -m local (capacity .*)`$", page, flags=re.MULTILINE)
    assert ran is not None
    arguments = shlex.split(ran.group(1))
    assert "--results" in arguments

    # When that command runs now (printing, not writing), on the committed bench figures
    at = arguments.index("--results")
    printed = _capacity(*arguments[1:at], *arguments[at + 2 :])

    # Then it prints the tables exactly as the page has them
    assert printed == tables_of(page)
