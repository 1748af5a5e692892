"""`make bench` still runs: every section is printed and every figure is a positive number (no timing limits)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "1. AWS calls per message",
    "2. Milliseconds per batch of 10",
    "3. Cold start",
    "4. Peak memory",
    "5. Dollars per million messages",
    "6. Large messages",
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
    # Given the bench in quick mode, writing its figures as JSON too
    figures = tmp_path / "bench.json"

    # When it runs as `python -m bench`
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--json", str(figures)],
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
