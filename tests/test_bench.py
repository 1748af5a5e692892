"""`make bench` still runs: every section is printed and every figure is a positive number (no timing limits).

The quick run's concurrency section drains its queue with 1 and 2 poller processes (4 only in the full run).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.hostile import SHAPES

pytestmark = pytest.mark.slow  # not in `make check`; `make test` runs it

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "1. AWS calls per message",
    "2. Milliseconds per batch of 10",
    "3. Cold start",
    "4. Peak memory",
    "5. Dollars per million messages",
    "6. Hostile bodies",
    "7. Concurrent pollers",
    "8. Large messages",
]


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [number for inner in value.values() for number in _numbers(inner)]
    return []


def test_the_quick_bench_prints_every_section_with_positive_figures(tmp_path: Path) -> None:
    # Given the bench in quick mode, writing its figures as JSON too, and asked for its results files
    figures = tmp_path / "bench.json"
    results_dir = tmp_path / "results"

    # When it runs as `python -m bench`
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(figures), "--results", str(results_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Then it succeeds and prints every section, with a verdict for each target
    assert done.returncode == 0, done.stderr
    for section in SECTIONS:
        assert section in done.stdout
    verdicts = re.findall(r"(?<![A-Za-z])(?:NOT MET|met)(?![A-Za-z])", done.stdout)
    assert len(verdicts) >= 8, done.stdout
    # And every figure is a finite number, none negative, and the headline ones positive
    results = json.loads(figures.read_text(encoding="utf-8"))
    assert all(math.isfinite(number) and number >= 0 for number in _numbers(results))
    for name in ("consumer", "reference"):
        assert sum(results["calls_per_message"][name].values()) > 0
        assert results["batch_ms"]["10_groups"][name] > 0
        assert results["batch_ms"]["1_groups"][name] > 0
        assert results["import_ms"][name] > 0
        assert all(value > 0 for value in results["first_record_ms"][name].values())
        assert results["batch_peak_mb"][name] > 0
        assert results["cost_per_million"][name]["total"] > 0
    assert results["baseline_rss_mb"] > 0
    for which in ("bodies", "pointers"):
        assert results["large_batch"][which]["batch_peak_mb"] > results["large_batch"][which]["rss_before_mb"] > 0
    assert results["calls_per_message"]["consumer"]["PutItem"] == 1
    assert results["own_cpu_ms"]["1_groups"]["consumer"] > 0
    # And the concurrency section drained its queue with each number of pollers (1 and 2 when quick),
    # every message saved, and measured the emulator alone
    concurrency = results["concurrency"]
    assert set(concurrency["runs"]) == {"1", "2"}
    for run in concurrency["runs"].values():
        assert run["messages"] == concurrency["workload"]["messages"]
        assert run["messages_per_second"] > 0
        assert 0 < run["emulator_busy_share"] <= 1
    assert all(alone["requests_per_second"] > 0 for alone in concurrency["emulator_alone"].values())
    # And a quick run's figures, not to be quoted, are not written where the docs quote from
    assert not results_dir.exists()
    assert "quick run" in done.stderr
    # And every hostile shape was settled at both sizes, stored or quarantined with a reason
    for shapes in results["hostile"].values():
        assert set(shapes) == set(SHAPES)
        assert all(figure["checks_ms"] > 0 and figure["settle_ms"] > 0 for figure in shapes.values())
        assert all(figure["outcome"] for figure in shapes.values())
