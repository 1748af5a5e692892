"""What the handler prints, captured during local runs: JSON log lines and EMF blobs.

Powertools' Logger writes to the stream it saw at import, so its handler is re-pointed
here; EMF blobs are printed to ``sys.stdout``, which is redirected per invocation.
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from typing import IO, Any

from consumer import telemetry

# A record's outcome ``error`` when its forward to the DLQ failed or had no time left.
UNSENT_TO_DLQ = frozenset({"QuarantineError", "OutOfTime"})


class HandlerOutput(io.TextIOBase):
    """A text stream that sums EMF metrics, counts log lines by action and status, and may keep them."""

    def __init__(self, keep: IO[str] | None = None) -> None:
        super().__init__()
        self.metrics: Counter[str] = Counter()
        self.steps: Counter[tuple[str, str]] = Counter()
        self.lines = 0
        self.quarantined: set[str] = set()
        # Ids given back to SQS with no verdict of their own: held back behind their group, or their DLQ send failed.
        self.handed_back: set[str] = set()
        self._keep = keep
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._partial += text
            *complete, self._partial = self._partial.split("\n")
            for line in complete:
                self._line(line)
        return len(text)

    def flush(self) -> None:
        if self._keep is not None:
            self._keep.flush()

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        self.lines += 1
        if self._keep is not None:
            self._keep.write(line + "\n")
        if not line.startswith("{"):
            return
        try:
            parsed: dict[str, Any] = json.loads(line)
        except ValueError:
            return
        if "_aws" in parsed:
            self.metrics.update(emf_metrics(parsed))
        elif "action" in parsed:
            step = (str(parsed["action"]), str(parsed.get("status", "")))
            self.steps[step] += 1
            details = parsed.get("details") or {}
            if step[0] == "message_outcome":
                message_id = str(details.get("sqs_message_id"))
                if details.get("outcome") == "quarantined":
                    self.quarantined.add(message_id)
                if details.get("outcome") == "held_back" or details.get("error") in UNSENT_TO_DLQ:
                    self.handed_back.add(message_id)


def emf_metrics(blob: Mapping[str, Any]) -> dict[str, float]:
    """The metric values of one EMF blob, by name; a list of values counts as its sum."""
    values: dict[str, float] = {}
    for directive in blob["_aws"].get("CloudWatchMetrics", []):
        for metric in directive.get("Metrics", []):
            value = blob.get(metric["Name"], 0)
            values[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return values


@contextmanager
def capturing(output: HandlerOutput) -> Iterator[HandlerOutput]:
    """The handler's log lines and EMF blobs go to ``output`` while this is open."""
    handler = telemetry.logger.registered_handler
    previous = handler.setStream(output)  # type: ignore[attr-defined]
    try:
        with redirect_stdout(output):
            yield output
    finally:
        handler.setStream(previous)  # type: ignore[attr-defined]
