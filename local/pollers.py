"""N event-source pollers in N processes, against one queue: Lambda's concurrent invocations, locally.

Lambda runs up to ``EventSourceMaxConcurrency`` containers at once, each a process of its own
(its own interpreter, clients and handler state) handling batches whose message groups SQS has
locked for it. Here each poller is a process started with ``spawn``, so it inherits nothing but
what it is given: the function's environment, then its own import of ``handler`` (its cold
start), its own clients from the consumer's bootstrap, and, for the soak, its own faults on
them. The parent keeps the emulator and the producer; pollers start polling together, once all
are ready, and stop when the producer is done and the queue is empty (nothing visible, in
flight or delayed). Each sends back its counts, the handler's metrics and quarantine lines,
and the writes the server accepted, for the parent to merge into one report.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local.faults import FaultPlan, WriteLedger
from local.poller import Poller, PollerStats

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

    from local.capture import HandlerOutput

READY, PROGRESS, DONE, FAILED = "ready", "progress", "done", "failed"
STARTUP_SECONDS = 120.0  # spawning and importing, on a busy machine
EXIT_GRACE_SECONDS = 5.0


class PollersFailed(RuntimeError):
    """A poller process raised, died, or never became ready: the run cannot be accounted for."""


@dataclass(frozen=True)
class PollerJob:
    """What one poller process is given: everything it knows comes from here."""

    environment: Mapping[str, str]
    queue_url: str
    queue_arn: str
    region: str
    batch_size: int
    function_timeout: float
    visibility_timeout: int
    deadline_seconds: float
    faults: FaultPlan | None = None
    logs: Path | None = None
    index: int = 0


@dataclass
class PollerReport:
    """What one poller process sends back when the queue is empty."""

    index: int
    pid: int
    stats: PollerStats
    metrics: Counter[str]
    steps: Counter[tuple[str, str]]
    lines: int
    quarantined: set[str]
    handed_back: set[str]
    faults_injected: Counter[str]
    writes: list[tuple[int, str]]
    seconds: float
    cpu_seconds: float
    drained: bool


@dataclass
class Progress:
    """The latest counts of each poller, for the parent's progress lines."""

    stats: dict[int, PollerStats] = field(default_factory=dict)
    metrics: dict[int, Counter[str]] = field(default_factory=dict)

    def merged(self) -> tuple[PollerStats, Counter[str]]:
        return PollerStats.merged(self.stats.values()), sum(self.metrics.values(), Counter())


@dataclass
class PollersRun:
    reports: list[PollerReport]
    seconds: float

    @property
    def stats(self) -> PollerStats:
        return PollerStats.merged(report.stats for report in self.reports)

    def output(self) -> HandlerOutput:
        """One HandlerOutput with every poller's metrics, step counts and quarantines."""
        from local.capture import HandlerOutput

        output = HandlerOutput()
        for report in self.reports:
            output.metrics.update(report.metrics)
            output.steps.update(report.steps)
            output.lines += report.lines
            output.quarantined |= report.quarantined
            output.handed_back |= report.handed_back
        return output

    def ledger(self) -> WriteLedger:
        return WriteLedger.merged(entry for report in self.reports for entry in report.writes)

    def faults_injected(self) -> Counter[str]:
        return sum((report.faults_injected for report in self.reports), Counter())


def logs_path(logs: Path, index: int) -> Path:
    """Each poller writes its own log file: ``handler.log`` becomes ``handler.poller0.log``, ..."""
    return logs.with_name(f"{logs.stem}.poller{index}{logs.suffix}")


def run_pollers(
    count: int,
    job: PollerJob,
    *,
    feed: Callable[[], bool],
    progress: Callable[[PollerStats, Counter[str]], None] | None = None,
    progress_every: float = 1.0,
    feed_every: float = 0.1,
) -> PollersRun:
    """Start ``count`` pollers, call ``feed()`` (True while it has more to send) until it is done, merge.

    ``feed`` runs every ``feed_every`` seconds: it asks the emulator for the queue's depth, and
    every request the parent sends is one the pollers wait for.

    Raises ``PollersFailed`` if a poller fails; the others are stopped.
    """
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
    start, producer_done = context.Event(), context.Event()
    processes = [
        context.Process(
            target=poll,
            args=(replace(job, index=index), start, producer_done, results),
            name=f"poller-{index}",
            daemon=True,
        )
        for index in range(count)
    ]
    for process in processes:
        process.start()
    reports: dict[int, PollerReport] = {}
    exited: dict[int, float] = {}
    latest = Progress()
    try:
        _wait_ready(processes, results)
        start.set()
        started = last_report = time.monotonic()
        feeding, last_feed = True, 0.0
        while len(reports) < count:
            if feeding and time.monotonic() - last_feed >= feed_every:
                feeding, last_feed = feed(), time.monotonic()
                if not feeding:
                    producer_done.set()
            try:
                kind, index, payload = results.get(timeout=0.05)
            except queue.Empty:
                _check_alive(processes, reports, exited)
            else:
                if kind == FAILED:
                    raise PollersFailed(f"poller {index} failed:\n{payload}")
                if kind == PROGRESS:
                    latest.stats[index], latest.metrics[index] = payload
                if kind == DONE:
                    reports[index] = payload
                    latest.stats[index], latest.metrics[index] = payload.stats, payload.metrics
            now = time.monotonic()
            if progress is not None and now - last_report >= progress_every:
                progress(*latest.merged())
                last_report = now
            if now - started > job.deadline_seconds + STARTUP_SECONDS:
                raise PollersFailed(f"pollers still running after {job.deadline_seconds:.0f} s")
        seconds = time.monotonic() - started
    finally:
        # After a failure the others are stopped at once: the run cannot be accounted for anyway.
        for process in processes:
            process.join(timeout=10 if len(reports) == count else 0)
            if process.is_alive():
                process.terminate()
                process.join()
        results.close()
    return PollersRun(reports=[reports[index] for index in sorted(reports)], seconds=seconds)


def _wait_ready(processes: list[Any], results: multiprocessing.Queue[tuple[str, int, Any]]) -> None:
    ready: set[int] = set()
    exited: dict[int, float] = {}
    deadline = time.monotonic() + STARTUP_SECONDS
    while len(ready) < len(processes):
        try:
            kind, index, payload = results.get(timeout=0.5)
        except queue.Empty:
            _check_alive(processes, {}, exited)
            if time.monotonic() > deadline:
                missing = len(processes) - len(ready)
                raise PollersFailed(f"{missing} pollers not ready after {STARTUP_SECONDS:.0f} s") from None
            continue
        if kind == FAILED:
            raise PollersFailed(f"poller {index} failed at start:\n{payload}")
        ready.add(index)


def _check_alive(processes: list[Any], finished: Mapping[int, PollerReport], exited: dict[int, float]) -> None:
    """Raises for a poller that exited without its last word. What it sent just before exiting may
    still be on its way, so a clean exit (first seen at ``exited[index]``) gets a few seconds."""
    for index, process in enumerate(processes):
        if index in finished or process.exitcode is None:
            continue
        seen = exited.setdefault(index, time.monotonic())
        if process.exitcode != 0 or time.monotonic() - seen > EXIT_GRACE_SECONDS:
            raise PollersFailed(f"poller {index} exited with code {process.exitcode} before it was done")


def poll(
    job: PollerJob,
    start: Event,
    producer_done: Event,
    results: multiprocessing.Queue[tuple[str, int, Any]],
) -> None:
    """One poller process: a Lambda container and its share of the event source mapping."""
    try:
        _poll(job, start, producer_done, results)
    except BaseException:  # noqa: BLE001 - whatever it is, the parent must hear of it
        results.put((FAILED, job.index, traceback.format_exc()))


def _poll(
    job: PollerJob,
    start: Event,
    producer_done: Event,
    results: multiprocessing.Queue[tuple[str, int, Any]],
) -> None:
    # The function's environment first: Powertools reads it when the handler is imported.
    os.environ.clear()
    os.environ.update(job.environment)
    import boto3

    import handler
    from consumer import bootstrap
    from local.capture import HandlerOutput, capturing

    poller = Poller(
        sqs=boto3.client("sqs", region_name=job.region),
        queue_url=job.queue_url,
        queue_arn=job.queue_arn,
        handler=handler.lambda_handler,
        region=job.region,
        batch_size=job.batch_size,
        function_timeout=job.function_timeout,
        visibility_timeout=job.visibility_timeout,
    )
    clients = bootstrap.clients()
    ledger = WriteLedger()
    s3 = bootstrap.s3_client() if job.faults and job.faults.s3 else None
    injectors = job.faults.install(clients.dynamodb, clients.sqs, ledger, stream=job.index, s3=s3) if job.faults else []
    results.put((READY, job.index, None))
    start.wait()
    started, cpu_started = time.monotonic(), time.process_time()
    with ExitStack() as stack:
        keep = stack.enter_context(logs_path(job.logs, job.index).open("w", encoding="utf-8")) if job.logs else None
        output = HandlerOutput(keep=keep)
        stack.enter_context(capturing(output))

        def report_progress() -> None:
            results.put((PROGRESS, job.index, (replace(poller.stats, errors=[]), Counter(output.metrics))))

        drained = drain_with_others(poller, producer_done.is_set, job.deadline_seconds, report_progress)
    results.put(
        (
            DONE,
            job.index,
            PollerReport(
                index=job.index,
                pid=os.getpid(),
                stats=poller.stats,
                metrics=output.metrics,
                steps=output.steps,
                lines=output.lines,
                quarantined=output.quarantined,
                handed_back=output.handed_back,
                faults_injected=sum((injector.injected for injector in injectors), Counter()),
                writes=ledger.entries(),
                seconds=time.monotonic() - started,
                cpu_seconds=time.process_time() - cpu_started,
                drained=drained,
            ),
        )
    )


def drain_with_others(
    poller: Poller,
    producer_done: Callable[[], bool],
    deadline_seconds: float,
    progress: Callable[[], None],
    progress_every: float = 1.0,
) -> bool:
    """Poll until the producer is done and the queue is empty; other pollers share the queue.

    Empty means nothing visible, in flight or delayed: a message another poller holds may yet
    come back. Returns True if the queue emptied before the deadline.
    """
    started = last_report = time.monotonic()
    while time.monotonic() - started < deadline_seconds:
        handled = poller.poll_once()
        if time.monotonic() - last_report >= progress_every:
            progress()
            last_report = time.monotonic()
        if handled:
            continue
        if producer_done() and poller.queue_depth() == 0:
            return True
        time.sleep(poller.idle_sleep)
    return False
