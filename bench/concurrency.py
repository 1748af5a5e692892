"""Section 7 of `make bench`: throughput with 1, 2 and 4 pollers, and where the emulator saturates.

Each run takes `make run --pollers N`'s path (``local.cli.run_local``) with every poller in a
process of its own, one poller too, so the runs compare: the embedded emulator (moto's server
on loopback) and the producer in this process, N poller processes invoking the handler. The
workload is valid messages only. All share the emulator, which answers one request at a time
and counts its requests, the time it spends answering them and their CPU time, and the
machine's CPUs. For comparison, 1, 2 and 4 client processes then send the cheapest request
there is (``ReceiveMessage`` on an empty queue) to an emulator as fast as they can.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

POLLERS = (1, 2, 4)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}


def measure(quick: bool) -> dict[str, Any]:
    messages, groups = (40, 4) if quick else (600, 24)
    pollers = POLLERS[:2] if quick else POLLERS
    runs = {str(count): pollers_run(count, messages, groups) for count in pollers}
    seconds = 0.5 if quick else 3.0
    alone = {str(count): emulator_alone(count, seconds) for count in pollers}
    return {"workload": {"messages": messages, "groups": groups}, "runs": runs, "emulator_alone": alone}


def pollers_run(pollers: int, messages: int, groups: int) -> dict[str, float]:
    from local.cli import run_local, run_options

    options = run_options(
        messages=messages,
        groups=groups,
        duplicates=0,
        invalid=0,
        large=0,
        pointers=0,
        seed=7,
        deadline=600.0,
        pollers=pollers,
    )
    run = run_local(options, err=io.StringIO(), in_processes=True)
    report, load = run.report, run.load
    if report.unaccounted or report.queue_left or report.saved != messages:
        raise RuntimeError(f"the {pollers}-poller run lost track of messages: {report.to_text()}")
    cpus = os.cpu_count() or 1
    return {
        "messages": report.sent,
        "seconds": load.seconds,
        "messages_per_second": report.sent / load.seconds,
        "invocations": report.invocations,
        "emulator_requests_per_message": load.emulator_requests / report.sent,
        "emulator_busy_share": load.emulator_busy_seconds / load.seconds,
        "emulator_cpu_ms_per_message": 1000 * load.emulator_cpu_seconds / report.sent,
        "cpus_used": load.cpu_seconds / load.seconds,
        "cpu_share": load.cpu_seconds / load.seconds / cpus,
    }


def emulator_alone(clients: int, seconds: float) -> dict[str, float]:
    """Requests per second the emulator answers when ``clients`` processes send it nothing but empty receives."""
    import logging

    import boto3

    from local.emulator import EmulatorLoad, running_emulator

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    load = EmulatorLoad()
    with running_emulator(load) as endpoint:
        sqs = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        attributes: dict[Any, str] = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        queue_url = sqs.create_queue(QueueName=f"alone-{clients}.fifo", Attributes=attributes)["QueueUrl"]
        context = multiprocessing.get_context("spawn")
        ready, done = context.Queue(), context.Queue()
        start = context.Event()
        processes = [
            context.Process(target=hammer, args=(endpoint, queue_url, seconds, start, ready, done), daemon=True)
            for _ in range(clients)
        ]
        for process in processes:
            process.start()
        for _ in processes:
            ready.get(timeout=120)
        before, started = replace(load), time.monotonic()
        start.set()
        for _ in processes:
            done.get(timeout=120 + seconds)
        elapsed = time.monotonic() - started
        after = replace(load)
        for process in processes:
            process.join(timeout=10)
    requests = after.requests - before.requests
    return {
        "requests_per_second": requests / elapsed,
        "busy_share": (after.busy_seconds - before.busy_seconds) / elapsed,
        "cpu_ms_per_request": 1000 * (after.cpu_seconds - before.cpu_seconds) / max(requests, 1),
    }


def hammer(
    endpoint: str,
    queue_url: str,
    seconds: float,
    start: Event,
    ready: multiprocessing.Queue[int],
    done: multiprocessing.Queue[int],
) -> None:
    """One client process: empty receives, back to back, for ``seconds``."""
    os.environ.update(CREDENTIALS)
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint)
    sqs.get_queue_attributes(QueueUrl=queue_url)  # connected, and botocore's models loaded
    ready.put(os.getpid())
    start.wait()
    sent, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        sent += 1
    done.put(sent)


def render(results: dict[str, Any], cpus: int) -> list[str]:
    workload, runs, alone = results["workload"], results["runs"], results["emulator_alone"]
    lines = [
        "7. Concurrent pollers: `make run --pollers N`, each poller a process of its own, moto's server over HTTP",
        f"   {workload['messages']} new messages over {workload['groups']} groups per run; the emulator, the producer "
        f"and the pollers share {cpus} CPUs",
        f"   {'pollers':<9}{'msg/s':>8}{'x 1 poller':>12}{'invocations':>13}{'emulator busy':>15}"
        f"{'its CPU ms/msg':>16}{'requests/msg':>14}{'CPUs used':>11}",
    ]
    single = runs["1"]["messages_per_second"]
    for count, run in runs.items():
        lines.append(
            f"   {count:<9}{run['messages_per_second']:>8.1f}{run['messages_per_second'] / single:>11.2f}x"
            f"{run['invocations']:>13.0f}{100 * run['emulator_busy_share']:>14.0f}%"
            f"{run['emulator_cpu_ms_per_message']:>16.1f}{run['emulator_requests_per_message']:>14.2f}"
            f"{run['cpus_used']:>11.2f}"
        )
    lines.append(
        "   the emulator alone, empty ReceiveMessage calls back to back from "
        + ", ".join(
            f"{count} process{'es' if count != '1' else ''}: {figures['requests_per_second']:.0f} requests/s "
            f"(busy {100 * figures['busy_share']:.0f}%)"
            for count, figures in alone.items()
        )
    )
    cheapest = min(run["emulator_cpu_ms_per_message"] for run in runs.values())
    most = max(runs, key=lambda count: runs[count]["emulator_busy_share"])
    lines += [
        f"   where it saturates: the emulator answers one request at a time and spends at least {cheapest:.1f} ms of "
        "CPU per message",
        f"   (moto's FIFO send and receive cost most): it cannot pass about {1000 / cheapest:.0f} messages/s, however "
        "many pollers.",
        f"   With {most} poller{'s' if most != '1' else ''} it was answering requests "
        f"{100 * runs[most]['emulator_busy_share']:.0f}% of the time, and all processes together used "
        f"{runs[most]['cpus_used']:.1f} of {cpus} CPUs.",
        "   These are the emulator's and this machine's limits, not Lambda's: docs/capacity.md scales from section 2.",
    ]
    return lines
