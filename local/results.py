"""Figures written by the command that measured them, never retyped: ``docs/results/*.md``.

A results file opens with its command, the machine and the date. A docs page quotes one
between ``<!-- include docs/results/NAME.md -->`` and ``<!-- end include -->``; writing a
results file into ``docs/results`` refreshes every such block in README.md and docs/*.md,
and tests/test_docs.py checks that no block has drifted from its file.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "docs" / "results"
INCLUDE = re.compile(
    r"(?P<start><!-- include (?P<path>docs/results/[\w.-]+\.md) -->\n)(?P<body>.*?)(?P<end><!-- end include -->)",
    re.DOTALL,
)
PACKAGES = ("boto3", "moto", "aws-lambda-powertools")


def _first(path: str, pattern: str) -> str | None:
    try:
        match = re.search(pattern, Path(path).read_text(encoding="utf-8"), re.MULTILINE)
    except OSError:
        return None
    return match.group(1).strip() if match else None


def machine() -> str:
    """CPUs, memory, OS and Python of this machine, with the versions the figures depend on."""
    model = _first("/proc/cpuinfo", r"^model name\s*:\s*(.+)$") or platform.processor() or platform.machine()
    memory_kb = _first("/proc/meminfo", r"^MemTotal:\s*(\d+) kB")
    memory = f", {int(memory_kb) / 2**20:.0f} GB RAM" if memory_kb else ""
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in PACKAGES)
    # Timings depend on what else the machine runs: the load says how busy it was.
    load = f", load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    return (
        f"{os.cpu_count()} CPUs ({model}){memory}{load}, {platform.platform()}, "
        f"Python {platform.python_version()}; {versions}"
    )


def command(module: str, argv: Sequence[str]) -> str:
    """The command as typed from the repository root."""
    return " ".join([".venv/bin/python", "-m", module, *(shlex.quote(argument) for argument in argv)])


def header(ran: str, seconds: float, *, now: datetime | None = None) -> str:
    date = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "<!-- Written by the command below; do not edit, run it again. -->",
            f"- **command**: `{ran}`",
            f"- **machine**: {machine()}",
            f"- **date**: {date} (took {seconds:.0f} s)",
        ]
    )


def write(directory: Path, name: str, text: str) -> Path:
    """Write ``directory/name``; when that is docs/results, refresh the pages that include it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    if directory.resolve() == RESULTS_DIR.resolve():
        refresh_includes(ROOT)
    return path


def pages(root: Path) -> list[Path]:
    """The pages that may include results: README.md and docs/*.md (not the results themselves)."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def included(text: str) -> list[tuple[str, str]]:
    """(results path, quoted text) for every include block of a page."""
    return [(match.group("path"), match.group("body")) for match in INCLUDE.finditer(text)]


def refresh_includes(root: Path) -> list[Path]:
    """Copy each included results file into its blocks; returns the pages that changed."""
    changed = []
    for page in pages(root):
        if not page.exists():
            continue
        before = page.read_text(encoding="utf-8")

        def body(match: re.Match[str]) -> str:
            source = root / match.group("path")
            quoted = source.read_text(encoding="utf-8") if source.exists() else match.group("body")
            return match.group("start") + quoted + match.group("end")

        after = INCLUDE.sub(body, before)
        if after != before:
            page.write_text(after, encoding="utf-8")
            changed.append(page)
    return changed
