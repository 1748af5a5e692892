"""``python -m local run`` (``make run``) and ``python -m local send``.

``run`` starts moto's server on a free loopback port, creates the queue, DLQ and table from
template.yaml, sends a workload with the producer, drains the queue with the event source
mapping poller invoking ``handler.lambda_handler`` in-process, and prints a report. With
``--pollers N`` (N > 1), N pollers drain it at once, each in its own process as Lambda's
containers are (local/pollers.py). With ``--endpoint-url`` and/or ``--queue-url``/``--table``
it runs against another emulator or a real AWS account instead. ``send`` only enqueues
producer-contract messages; ``capacity`` is the capacity calculator (local/capacity.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shlex
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3

from consumer.exceptions import ConfigurationError
from local import capacity, results
from local.faults import FaultPlan, WriteLedger
from local.poller import DEFAULT_VISIBILITY_TIMEOUT, Poller, PollerStats
from local.producer import Feeder, Outgoing, demo_workload, file_workload, send_all
from local.report import DlqMessage, Report, build_report, read_dlq, read_payload_objects, scan_table
from local.run_settings import DOTENV_PATH, RunSettings, read_settings
from local.template_resources import load_template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from local.capture import HandlerOutput
    from local.emulator import EmulatorLoad
    from local.pollers import PollerReport

STACK_NAME = "sqs-fifo-consumer-local"
# The producer's own bucket for Extended Client payloads, which the embedded run creates.
PRODUCER_BUCKET = f"{STACK_NAME}-producer-payloads"
DEFAULT_REGION = "us-east-1"
REAL_AWS = "AWS"  # Target.endpoint without --endpoint-url: boto3's own endpoints
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}


@dataclass(frozen=True)
class Target:
    """Where the run happens: the queue, the DLQ, the table, and the function's settings."""

    endpoint: str
    region: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    table_name: str
    environment: Mapping[str, str]
    batch_size: int
    function_timeout: int
    max_receive_count: int
    embedded: bool
    payload_bucket: str | None = None
    pointer_bucket: str | None = None


@dataclass(frozen=True)
class RunLoad:
    """Where the time went while the queue drained (the report's ``seconds``)."""

    seconds: float
    # The embedded emulator's: requests answered, seconds spent answering them one at a time, and their CPU time.
    emulator_requests: int
    emulator_busy_seconds: float
    emulator_cpu_seconds: float
    # This process (emulator, producer, an in-process poller) and the poller processes together.
    cpu_seconds: float


@dataclass
class Run:
    """What a finished run leaves: the report, and the pieces the soak checks read."""

    report: Report
    sent: list[Outgoing]
    target: Target
    output: HandlerOutput
    items: dict[str, dict[str, Any]]
    dlq: list[DlqMessage]
    load: RunLoad
    # With a FaultPlan: every PutItem the server accepted, from every poller, and the faults met.
    ledger: WriteLedger = field(default_factory=WriteLedger)
    faults_injected: Counter[str] = field(default_factory=Counter)
    poller_reports: list[PollerReport] = field(default_factory=list)
    # The payload bucket's objects: key -> the SHA-256 of each version.
    payload_objects: dict[str, list[str]] = field(default_factory=dict)


def run_options(**changes: Any) -> argparse.Namespace:
    """The options of ``python -m local run`` at their defaults, with ``changes``: for callers that are not its CLI.

    No ``.env`` is read unless ``env_file`` is given: a soak or a benchmark must not take a laptop's settings.
    """
    options = parser().parse_args(["run"])
    unknown = sorted(set(changes) - set(vars(options)))
    if unknown:
        raise TypeError(f"not options of `python -m local run`: {', '.join(unknown)}")
    options.env_file = None
    for name, value in changes.items():
        setattr(options, name, value)
    return options


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m local",
        description="Run the SQS FIFO consumer end to end on a laptop, or send producer-contract messages.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="embedded emulator from template.yaml + producer + event source mapping poller + report",
        description="Start moto's server on 127.0.0.1, create the queue, DLQ and table from template.yaml, send a "
        "workload, drain it through handler.lambda_handler as Lambda's event source mapping would, and report. "
        "Exits 1 if any message is unaccounted for.",
    )
    _workload_options(run, large=3, pointers=5)
    _target_options(run)
    run.add_argument("--json", action="store_true", help="print the report as JSON")
    run.add_argument(
        "--pollers",
        type=positive,
        default=1,
        help="event source pollers draining the queue at once, each in its own process invoking the handler, as "
        "Lambda's concurrent invocations would (default 1, in this process)",
    )
    run.add_argument(
        "--keep-running",
        action="store_true",
        help="after the report, keep the emulator and the poller up, print the endpoint and AWS CLI commands; "
        "Ctrl-C stops",
    )
    run.add_argument(
        "--visibility-timeout",
        type=int,
        default=DEFAULT_VISIBILITY_TIMEOUT,
        help="seconds the messages an invocation failed stay hidden after it ends (the poller's own; Lambda's come "
        "back after the queue's visibility timeout, 360 s from template.yaml, counted from the receive)",
    )
    run.add_argument(
        "--logs",
        type=Path,
        help="write the handler's JSON log lines and EMF blobs to this file (with --pollers N, one file per poller: "
        "NAME.poller0.EXT, ...)",
    )
    run.add_argument("--deadline", type=float, default=600.0, help="give up draining after this many seconds")
    run.add_argument(
        "--env-file",
        type=Path,
        default=DOTENV_PATH,
        help="the consumer's settings (as .env.sample shows), under those of the environment and over template.yaml's "
        "(default: .env at the repository's root, if there is one)",
    )
    run.add_argument(
        "--results", type=Path, metavar="DIR", help="also write the report to DIR/run.md, with command, machine, date"
    )
    send = commands.add_parser("send", help="only send producer-contract messages (e.g. to a real queue)")
    _workload_options(send, large=0, pointers=0)
    _target_options(send)
    capacity.add_arguments(
        commands.add_parser(
            "capacity",
            help="what one stack sustains, and what to set for a rate (docs/capacity.md)",
            description="A capacity plan from the measured batch times of `make bench` (docs/results/bench.json) "
            "and AWS's published quotas: what the template's defaults sustain, which setting limits first, what to "
            "set for --rate messages a second over --groups message groups, and the cost per million messages.",
        )
    )
    return top


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _workload_options(command: argparse.ArgumentParser, *, large: int, pointers: int) -> None:
    command.add_argument("--messages", type=int, default=200, help="valid messages (default 200)")
    command.add_argument("--groups", type=int, default=8, help="message groups (default 8)")
    command.add_argument(
        "--duplicates", type=int, help="same message_id, new dedup id (default: 1 per 20 messages, 10 for 200)"
    )
    command.add_argument(
        "--invalid", type=int, help="bodies that can never be stored (default: 1 per 40 messages, 5 for 200)"
    )
    command.add_argument(
        "--large", type=int, default=large, help=f"bodies over DynamoDB's 400 KB item, which go to S3 (default {large})"
    )
    command.add_argument(
        "--pointers",
        type=int,
        default=pointers,
        help=f"SQS Extended Client messages: payload in S3, pointer in SQS (default {pointers}; some name a missing "
        "object: the third of every ten). Needs --pointer-bucket outside the embedded run",
    )
    command.add_argument(
        "--pointer-bucket", help="the producer's bucket for pointer payloads (the embedded run creates its own)"
    )
    command.add_argument("--events", type=Path, help="send these bodies instead (Lambda event, JSON array or lines)")
    command.add_argument(
        "--seed", type=int, help="seed of the workload: the same seed sends the same ids (default: a fresh one)"
    )


def _target_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--endpoint-url", help="another emulator instead of the embedded one (e.g. LocalStack)")
    command.add_argument("--queue-url", help="an existing FIFO queue (its RedrivePolicy names the DLQ)")
    command.add_argument("--table", help="an existing table (with --queue-url)")
    command.add_argument("--region", default=None, help="AWS region (default: AWS_REGION or us-east-1)")


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    top = parser()
    options = top.parse_args(arguments)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if options.command == "send":
        return _send_command(options, out)
    if options.command == "capacity":
        return capacity.capacity_command(options, out, arguments)
    if options.keep_running and options.pollers > 1:
        top.error("--keep-running keeps one poller: leave out --pollers")
    try:
        run = run_local(options, err=err, out=out)
    except ConfigurationError as error:
        _say(err, f"configuration refused, nothing was sent: {error}")
        return 2
    if not options.keep_running:  # with --keep-running, the report was printed before the wait
        out.write((run.report.to_json() if options.json else run.report.to_text()) + "\n")
    if options.results:
        ran = results.command("local", arguments)
        text = "\n".join([results.header(ran, run.report.seconds), "", "```text", run.report.to_text(), "```"])
        _say(err, f"wrote {results.write(options.results, 'run.md', text)}")
    return 0 if run.report.unaccounted == 0 else 1


def workload(options: argparse.Namespace, pointer_bucket: str | None = None) -> list[Outgoing]:
    """The messages to send; without ``--seed`` a fresh seed (recorded in ``options.seed``), so fresh ids."""
    if options.seed is None:
        options.seed = secrets.randbelow(2**31)
    if options.events:
        return file_workload(options.events, options.groups, seed=options.seed)
    duplicates = options.messages // 20 if options.duplicates is None else options.duplicates
    invalid = options.messages // 40 if options.invalid is None else options.invalid
    bucket = pointer_bucket or getattr(options, "pointer_bucket", None)
    return demo_workload(
        options.messages,
        options.groups,
        duplicates,
        invalid,
        seed=options.seed,
        large=getattr(options, "large", 0),
        pointers=getattr(options, "pointers", 0) if bucket else 0,
        pointer_bucket=bucket,
    )


def _send_command(options: argparse.Namespace, out: IO[str]) -> int:
    if not options.queue_url:
        raise SystemExit("send needs --queue-url (and --endpoint-url for an emulator)")
    region = options.region or os.environ.get("AWS_REGION") or DEFAULT_REGION
    sqs = boto3.client("sqs", region_name=region, endpoint_url=options.endpoint_url)
    s3 = boto3.client("s3", region_name=region, endpoint_url=options.endpoint_url)
    sent = send_all(sqs, options.queue_url, workload(options), s3)
    kinds: dict[str, int] = {}
    for item in sent:
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    summary = {"sent": len(sent), "by_kind": kinds, "queue_url": options.queue_url, "seed": options.seed}
    out.write(json.dumps(summary) + "\n")
    return 0


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """These variables for the run, the previous environment afterwards."""
    before = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def run_local(
    options: argparse.Namespace,
    *,
    err: IO[str],
    out: IO[str] | None = None,
    install_faults: Callable[[Poller], None] | None = None,
    faults: FaultPlan | None = None,
    in_processes: bool | None = None,
) -> Run:
    """The whole pipeline.

    ``install_faults`` runs once the in-process consumer's clients exist; ``faults`` is installed on
    the consumer's clients of every poller, in or out of process. ``in_processes`` runs the pollers
    in processes of their own even when there is one (default: when ``options.pollers`` > 1).
    """
    from consumer import bootstrap
    from local.emulator import EmulatorLoad

    pollers = getattr(options, "pollers", 1)
    separate = pollers > 1 if in_processes is None else in_processes
    if separate and install_faults is not None:
        raise ValueError("install_faults reaches in-process clients only: give a FaultPlan to poller processes")
    region = options.region or os.environ.get("AWS_REGION") or DEFAULT_REGION
    env_file = getattr(options, "env_file", None)
    settings = read_settings(os.environ, region, env_file) if env_file else read_settings({}, region, Path(os.devnull))
    load = EmulatorLoad()
    with ExitStack() as stack:
        endpoint = options.endpoint_url
        embedded = endpoint is None and options.queue_url is None
        if embedded:
            from local.emulator import running_emulator

            # The emulator's access log would drown the progress lines.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)

            endpoint = stack.enter_context(running_emulator(load))
            # moto's state is per process, not per server: start from an empty account.
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
            stack.enter_context(environment(DUMMY_CREDENTIALS))
        base = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
        if endpoint:
            base["AWS_ENDPOINT_URL"] = endpoint
        stack.enter_context(environment(base))
        sqs = boto3.client("sqs", region_name=region)
        dynamodb = boto3.client("dynamodb", region_name=region)
        s3 = boto3.client("s3", region_name=region)
        target = _target(options, sqs, dynamodb, s3, region, endpoint or REAL_AWS, embedded, settings)
        stack.enter_context(environment(dict(target.environment)))
        bootstrap.reset()
        from consumer.telemetry import metrics

        metrics.clear_metrics()
        _say(err, f"{'embedded emulator' if embedded else 'target'} {target.endpoint}: queue {target.queue_url}")
        _say(err, f"table {target.table_name}, DLQ {target.dlq_url}")
        effective = settings.effective(target.environment)
        _say(err, "settings: " + ", ".join(f"{name}={value}" for name, value in effective.items()))
        if settings.not_read:
            _say(err, f"not read: {', '.join(settings.not_read)} (the run uses the stack it creates or is pointed at)")
        _say(
            err,
            f"poller: batch {target.batch_size}, function timeout {target.function_timeout} s, failed messages "
            f"visible again {options.visibility_timeout} s after their invocation (the queue's own visibility timeout "
            f"is longer), maxReceiveCount {target.max_receive_count}",
        )
        if separate:
            _say(err, f"pollers: {pollers}, each in its own process (spawned, importing the handler)")

        import handler

        # This poller drains the queue itself, or only measures its depth for the poller processes.
        poller = Poller(
            sqs=sqs,
            queue_url=target.queue_url,
            queue_arn=target.queue_arn,
            handler=handler.lambda_handler,
            region=region,
            batch_size=target.batch_size,
            function_timeout=target.function_timeout,
            visibility_timeout=options.visibility_timeout,
        )
        # 50 queued keep 4 pollers' batches of 10 full; moto's FIFO calls cost time per message queued.
        feeder = Feeder(sqs, target.queue_url, workload(options, target.pointer_bucket), s3=s3)
        _say(err, f"workload: seed {options.seed} (--seed {options.seed} sends the same messages again)")
        if separate:
            drained = _drain_in_processes(options, target, poller, feeder, pollers, faults, load, err)
        else:
            drained = _drain_here(options, poller, feeder, faults, install_faults, load, stack, err)
        # Only the embedded emulator's DLQ is emptied to be read whole: it stops right after.
        consume_dlq = embedded and not options.keep_running
        items = scan_table(dynamodb, target.table_name, target.environment.get("DYNAMO_KEY_ATTRIBUTE", "message_id"))
        dlq = read_dlq(sqs, target.dlq_url, consume=consume_dlq)
        objects = read_payload_objects(s3, target.payload_bucket) if target.payload_bucket else {}
        report = build_report(
            sent=feeder.sent,
            metrics=drained.output.metrics,
            stats=drained.stats,
            items=items,
            dlq=dlq,
            config=bootstrap.settings(),
            queue_left=poller.queue_depth(),
            seconds=drained.load.seconds,
            visibility_timeout=options.visibility_timeout,
            endpoint=target.endpoint,
            quarantined=() if consume_dlq else drained.output.quarantined,
            payload_objects=objects,
        )
        report.settings = effective
        report.pollers = pollers
        report.invocations_by_poller = [r.stats.invocations for r in drained.reports] or [drained.stats.invocations]
        if embedded:
            report.emulator_requests = drained.load.emulator_requests
            report.emulator_busy_percent = round(100 * drained.load.emulator_busy_seconds / drained.load.seconds, 1)
            report.emulator_cpu_percent = round(100 * drained.load.emulator_cpu_seconds / drained.load.seconds, 1)
        if not consume_dlq:
            report.notes.append("FIFO DLQ read at each group's head only; quarantines also counted from the logs")
        if not embedded:
            report.notes.append("the table may hold items from earlier runs; only this run's messages are accounted")
        if getattr(options, "keep_running", False):
            _keep_running(options, target, poller, drained.output, report, out or sys.stdout, err)
        return Run(
            report=report,
            sent=feeder.sent,
            target=target,
            output=drained.output,
            items=items,
            dlq=dlq,
            load=drained.load,
            ledger=drained.ledger,
            faults_injected=drained.faults_injected,
            poller_reports=drained.reports,
            payload_objects=objects,
        )
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Drained:
    stats: PollerStats
    output: HandlerOutput
    load: RunLoad
    ledger: WriteLedger
    faults_injected: Counter[str]
    reports: list[PollerReport] = field(default_factory=list)


def _drain_here(
    options: argparse.Namespace,
    poller: Poller,
    feeder: Feeder,
    faults: FaultPlan | None,
    install_faults: Callable[[Poller], None] | None,
    load: EmulatorLoad,
    stack: ExitStack,
    err: IO[str],
) -> _Drained:
    """One poller, in this process, as ``make run`` has always run."""
    from consumer import bootstrap
    from local.capture import HandlerOutput, capturing

    logs = stack.enter_context(options.logs.open("w", encoding="utf-8")) if options.logs else None
    output = HandlerOutput(keep=logs)
    clients = bootstrap.clients()
    ledger = WriteLedger()
    s3 = bootstrap.s3_client() if faults and faults.s3 else None
    injectors = faults.install(clients.dynamodb, clients.sqs, ledger, s3=s3) if faults else []
    if install_faults is not None:
        install_faults(poller)
    started, cpu_started, before = time.monotonic(), time.process_time(), replace(load)

    def progress(stats: PollerStats, depth: int) -> None:
        _progress(err, time.monotonic() - started, len(feeder.sent), stats, output.metrics, depth)

    with capturing(output):
        poller.drain(deadline_seconds=options.deadline, progress=progress, feed=feeder.feed)
    return _Drained(
        stats=poller.stats,
        output=output,
        load=_load(time.monotonic() - started, load, before, time.process_time() - cpu_started),
        ledger=ledger,
        faults_injected=sum((injector.injected for injector in injectors), Counter()),
    )


def _drain_in_processes(
    options: argparse.Namespace,
    target: Target,
    poller: Poller,
    feeder: Feeder,
    pollers: int,
    faults: FaultPlan | None,
    load: EmulatorLoad,
    err: IO[str],
) -> _Drained:
    """``pollers`` poller processes; this one keeps the emulator and the producer."""
    from local.pollers import PollerJob, run_pollers

    job = PollerJob(
        # What the function sees in Lambda, and where the emulator is.
        environment=dict(os.environ),
        queue_url=target.queue_url,
        queue_arn=target.queue_arn,
        region=target.region,
        batch_size=target.batch_size,
        function_timeout=target.function_timeout,
        visibility_timeout=options.visibility_timeout,
        deadline_seconds=options.deadline,
        faults=faults,
        logs=options.logs,
    )
    marks: dict[str, Any] = {}

    def feed() -> bool:
        if not marks:  # the pollers are ready: the clock starts with the first message sent
            marks.update(started=time.monotonic(), cpu=time.process_time(), before=replace(load))
        return feeder.feed(poller.queue_depth())

    def progress(stats: PollerStats, metrics: Counter[str]) -> None:
        depth = poller.queue_depth()
        _progress(err, time.monotonic() - marks["started"], len(feeder.sent), stats, metrics, depth)

    result = run_pollers(pollers, job, feed=feed, progress=progress)
    cpu = time.process_time() - marks["cpu"] + sum(report.cpu_seconds for report in result.reports)
    return _Drained(
        stats=result.stats,
        output=result.output(),
        load=_load(result.seconds, load, marks["before"], cpu),
        ledger=result.ledger(),
        faults_injected=result.faults_injected(),
        reports=result.reports,
    )


def _load(seconds: float, load: EmulatorLoad, before: EmulatorLoad, cpu_seconds: float) -> RunLoad:
    return RunLoad(
        seconds=seconds,
        emulator_requests=load.requests - before.requests,
        emulator_busy_seconds=load.busy_seconds - before.busy_seconds,
        emulator_cpu_seconds=load.cpu_seconds - before.cpu_seconds,
        cpu_seconds=cpu_seconds,
    )


def _progress(
    err: IO[str], elapsed: float, sent: int, stats: PollerStats, metrics: Mapping[str, float], depth: int
) -> None:
    _say(
        err,
        f"[{elapsed:6.1f}s] sent {sent}, received {stats.received}, invocations {stats.invocations}, "
        f"saved {int(metrics.get('MessagesSaved', 0))}, duplicates {int(metrics.get('DuplicateMessages', 0))}, "
        f"quarantined {int(metrics.get('MessagesQuarantined', 0))}, item failures {stats.item_failures}, "
        f"invocation errors {stats.invocation_errors}, queue {depth}",
    )


def _keep_running(
    options: argparse.Namespace,
    target: Target,
    poller: Poller,
    output: HandlerOutput,
    report: Report,
    out: IO[str],
    err: IO[str],
) -> None:
    from local.capture import capturing

    out.write((report.to_json() if options.json else report.to_text()) + "\n")
    out.flush()
    # Each line works pasted into a shell with no AWS configuration: an emulator takes any credentials.
    emulated = target.endpoint != REAL_AWS
    credentials = "AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local " if emulated else ""
    where = f" --endpoint-url {target.endpoint}" if emulated else ""
    where += f" --region {target.region}"
    aws = f"{credentials}aws{where}"
    body = json.dumps(
        {
            "message_id": "11111111-2222-4333-8444-555555555555",
            "timestamp": "2025-01-01T00:00:00.000Z",
            "source": "cli",
            "type": "transaction.created",
            "dlq_retry": 0,
            "payload": {"transaction": {"account": "cli", "sequence": 1, "amount": 12.5, "currency": "EUR"}},
        }
    )
    # A fresh deduplication id per paste: SQS takes the message again and the consumer counts a duplicate.
    dedup = "\"$(python3 -c 'import uuid; print(uuid.uuid4())')\""
    lines = [
        f"emulator endpoint: {target.endpoint} (the poller keeps draining; Ctrl-C stops)",
        "paste any of these into another shell, from the repository root (the aws ones need the AWS CLI):",
        f"send:  {aws} sqs send-message --queue-url {target.queue_url} --message-group-id cli "
        f"--message-deduplication-id {dedup} --message-body {shlex.quote(body)}",
        f"table: {aws} dynamodb scan --table-name {target.table_name}",
        f"dlq:   {aws} sqs get-queue-attributes --queue-url {target.dlq_url} "
        "--attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible",
        # Visibility timeout 0: looking does not hide the messages (nor hold back their groups).
        f"dlq:   {aws} sqs receive-message --queue-url {target.dlq_url} --max-number-of-messages 10 "
        "--visibility-timeout 0 --message-attribute-names All",
        f"or:    {credentials}.venv/bin/python -m local send{where} --queue-url {target.queue_url} --messages 20",
    ]
    for line in lines:
        _say(err, line)
    try:
        with capturing(output):
            poller.drain(until_empty=False, deadline_seconds=float("inf"))
    except KeyboardInterrupt:
        _say(err, "stopped")


def _target(
    options: argparse.Namespace,
    sqs: SQSClient,
    dynamodb: DynamoDBClient,
    s3: S3Client,
    region: str,
    endpoint: str,
    embedded: bool,
    settings: RunSettings,
) -> Target:
    if options.queue_url is None:
        from local.template_resources import deploy_local

        template = settings.template(load_template())
        # The producer's bucket is not the stack's: made here, and named to the stack as ProducerPayloadBucket.
        pointer_bucket = getattr(options, "pointer_bucket", None) or PRODUCER_BUCKET
        if not getattr(options, "pointer_bucket", None):
            _create_bucket(s3, pointer_bucket, region)
        template["Parameters"]["ProducerPayloadBucket"]["Default"] = pointer_bucket
        deployed = deploy_local(sqs, dynamodb, stack_name=STACK_NAME, region=region, template=template, s3=s3)
        return Target(
            endpoint=endpoint,
            region=region,
            queue_url=deployed.queue_url,
            queue_arn=deployed.queue_arn,
            dlq_url=deployed.dlq_url,
            table_name=deployed.table_name,
            environment=deployed.environment,
            batch_size=deployed.batch_size,
            function_timeout=deployed.function_timeout,
            max_receive_count=deployed.max_receive_count,
            embedded=embedded,
            payload_bucket=deployed.payload_bucket,
            pointer_bucket=pointer_bucket,
        )
    if not options.table:
        raise SystemExit("--queue-url needs --table")
    names: list[Any] = ["QueueArn", "RedrivePolicy"]
    attributes = sqs.get_queue_attributes(QueueUrl=options.queue_url, AttributeNames=names)["Attributes"]
    policy = json.loads(attributes.get("RedrivePolicy", "{}"))
    if "deadLetterTargetArn" not in policy:
        raise SystemExit(f"{options.queue_url} has no RedrivePolicy: the consumer needs a DLQ")
    dlq_name = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
    dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
    template = load_template()
    function = template["Resources"]["ConsumerFunction"]["Properties"]
    batch = next(e for e in function["Events"].values() if e["Type"] == "SQS")["Properties"].get("BatchSize", 10)
    return Target(
        endpoint=endpoint,
        region=region,
        queue_url=options.queue_url,
        queue_arn=attributes["QueueArn"],
        dlq_url=dlq_url,
        table_name=options.table,
        environment={
            **settings.chosen,
            "DYNAMO_TABLE": options.table,
            "DLQ_URL": dlq_url,
            "REGION": region,
            **({"POINTER_BUCKETS": options.pointer_bucket} if getattr(options, "pointer_bucket", None) else {}),
        },
        batch_size=int(batch),
        function_timeout=int(template["Parameters"]["FunctionTimeout"]["Default"]),
        max_receive_count=int(policy.get("maxReceiveCount", 0)),
        embedded=False,
        pointer_bucket=getattr(options, "pointer_bucket", None),
    )


def _create_bucket(s3: S3Client, name: str, region: str) -> None:
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]


def _say(err: IO[str], text: str) -> None:
    err.write(text + "\n")
    err.flush()
