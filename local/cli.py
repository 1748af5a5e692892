"""``python -m local run`` (``make run``) and ``python -m local send``.

``run`` starts moto's server on a free loopback port, creates the queue, DLQ and table from
template.yaml, sends a workload with the producer, drains the queue with the event source
mapping poller invoking ``handler.lambda_handler`` in-process, and prints a report. With
``--endpoint-url`` and/or ``--queue-url``/``--table`` it runs against another emulator or
a real AWS account instead. ``send`` only enqueues producer-contract messages.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import boto3

from consumer.exceptions import ConfigurationError
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

STACK_NAME = "sqs-fifo-consumer-local"
# The producer's own bucket for Extended Client payloads, which the embedded run creates.
PRODUCER_BUCKET = f"{STACK_NAME}-producer-payloads"
DEFAULT_REGION = "us-east-1"
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


@dataclass
class Run:
    """What a finished run leaves: the report, and the pieces the soak checks read."""

    report: Report
    sent: list[Outgoing]
    target: Target
    output: HandlerOutput
    items: dict[str, dict[str, Any]]
    dlq: list[DlqMessage]
    # The payload bucket's objects: key -> the SHA-256 of each version.
    payload_objects: dict[str, list[str]] = field(default_factory=dict)


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
        "--keep-running",
        action="store_true",
        help="after the report, keep the emulator and the poller up, print the endpoint and AWS CLI commands; "
        "Ctrl-C stops",
    )
    run.add_argument(
        "--visibility-timeout",
        type=int,
        default=DEFAULT_VISIBILITY_TIMEOUT,
        help="seconds a received message stays hidden (the poller's own; the queue's from template.yaml is 360)",
    )
    run.add_argument("--logs", type=Path, help="write the handler's JSON log lines and EMF blobs to this file")
    run.add_argument("--deadline", type=float, default=600.0, help="give up draining after this many seconds")
    run.add_argument(
        "--env-file",
        type=Path,
        default=DOTENV_PATH,
        help="the consumer's settings (as .env.sample shows), under those of the environment and over template.yaml's "
        "(default: .env at the repository's root, if there is one)",
    )
    send = commands.add_parser("send", help="only send producer-contract messages (e.g. to a real queue)")
    _workload_options(send, large=0, pointers=0)
    _target_options(send)
    return top


def _workload_options(command: argparse.ArgumentParser, *, large: int, pointers: int) -> None:
    command.add_argument("--messages", type=int, default=200, help="valid messages (default 200)")
    command.add_argument("--groups", type=int, default=8, help="message groups (default 8)")
    command.add_argument("--duplicates", type=int, default=10, help="same message_id, new dedup id (default 10)")
    command.add_argument("--invalid", type=int, default=5, help="bodies that can never be stored (default 5)")
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
    command.add_argument("--seed", type=int, default=7, help="seed of the demo workload")


def _target_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--endpoint-url", help="another emulator instead of the embedded one (e.g. LocalStack)")
    command.add_argument("--queue-url", help="an existing FIFO queue (its RedrivePolicy names the DLQ)")
    command.add_argument("--table", help="an existing table (with --queue-url)")
    command.add_argument("--region", default=None, help="AWS region (default: AWS_REGION or us-east-1)")


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    options = parser().parse_args(argv)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    if options.command == "send":
        return _send_command(options, out)
    try:
        run = run_local(options, err=err, out=out)
    except ConfigurationError as error:
        _say(err, f"configuration refused, nothing was sent: {error}")
        return 2
    if not options.keep_running:  # with --keep-running, the report was printed before the wait
        out.write((run.report.to_json() if options.json else run.report.to_text()) + "\n")
    return 0 if run.report.unaccounted == 0 else 1


def workload(options: argparse.Namespace, pointer_bucket: str | None = None) -> list[Outgoing]:
    if options.events:
        return file_workload(options.events, options.groups, seed=options.seed)
    bucket = pointer_bucket or getattr(options, "pointer_bucket", None)
    return demo_workload(
        options.messages,
        options.groups,
        options.duplicates,
        options.invalid,
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
    out.write(json.dumps({"sent": len(sent), "by_kind": kinds, "queue_url": options.queue_url}) + "\n")
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
) -> Run:
    """The whole pipeline; ``install_faults`` runs once the consumer's clients exist."""
    from consumer import bootstrap
    from local.capture import HandlerOutput, capturing

    region = options.region or os.environ.get("AWS_REGION") or DEFAULT_REGION
    env_file = getattr(options, "env_file", None)
    settings = read_settings(os.environ, region, env_file) if env_file else read_settings({}, region, Path(os.devnull))
    with ExitStack() as stack:
        endpoint = options.endpoint_url
        embedded = endpoint is None and options.queue_url is None
        if embedded:
            from local.emulator import running_emulator

            # The emulator's access log would drown the progress lines.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)

            endpoint = stack.enter_context(running_emulator())
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
        target = _target(options, sqs, dynamodb, s3, region, endpoint or "AWS", embedded, settings)
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
            f"poller: batch {target.batch_size}, function timeout {target.function_timeout} s, visibility timeout "
            f"{options.visibility_timeout} s (the queue's own is longer), maxReceiveCount {target.max_receive_count}",
        )

        started = time.monotonic()
        feeder = Feeder(sqs, target.queue_url, workload(options, target.pointer_bucket), s3=s3)

        import handler

        logs = stack.enter_context(options.logs.open("w", encoding="utf-8")) if options.logs else None
        output = HandlerOutput(keep=logs)
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
        bootstrap.clients()
        if install_faults is not None:
            install_faults(poller)

        def progress(stats: PollerStats, depth: int) -> None:
            saved = int(output.metrics.get("MessagesSaved", 0))
            quarantined = int(output.metrics.get("MessagesQuarantined", 0))
            _say(
                err,
                f"[{time.monotonic() - started:6.1f}s] sent {len(feeder.sent)}, received {stats.received}, "
                f"invocations {stats.invocations}, "
                f"saved {saved}, duplicates {int(output.metrics.get('DuplicateMessages', 0))}, quarantined "
                f"{quarantined}, item failures {stats.item_failures}, invocation errors {stats.invocation_errors}, "
                f"queue {depth}",
            )

        with capturing(output):
            poller.drain(deadline_seconds=options.deadline, progress=progress, feed=feeder.feed)
        sent = feeder.sent
        seconds = time.monotonic() - started
        # Only the embedded emulator's DLQ is emptied to be read whole: it stops right after.
        consume_dlq = embedded and not options.keep_running
        items = scan_table(dynamodb, target.table_name, target.environment.get("DYNAMO_KEY_ATTRIBUTE", "message_id"))
        dlq = read_dlq(sqs, target.dlq_url, consume=consume_dlq)
        objects = read_payload_objects(s3, target.payload_bucket) if target.payload_bucket else {}
        report = build_report(
            sent=sent,
            metrics=output.metrics,
            stats=poller.stats,
            items=items,
            dlq=dlq,
            config=bootstrap.settings(),
            queue_left=poller.queue_depth(),
            seconds=seconds,
            visibility_timeout=options.visibility_timeout,
            endpoint=target.endpoint,
            quarantined=() if consume_dlq else output.quarantined,
            payload_objects=objects,
        )
        report.settings = effective
        if not consume_dlq:
            report.notes.append("FIFO DLQ read at each group's head only; quarantines also counted from the logs")
        if not embedded:
            report.notes.append("the table may hold items from earlier runs; only this run's messages are accounted")
        if getattr(options, "keep_running", False):
            _keep_running(options, target, poller, output, report, out or sys.stdout, err)
        return Run(
            report=report, sent=sent, target=target, output=output, items=items, dlq=dlq, payload_objects=objects
        )
    raise AssertionError("unreachable")  # pragma: no cover


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
    aws = f"aws --endpoint-url {target.endpoint} --region {target.region}" if target.embedded else "aws"
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
    lines = [
        f"emulator endpoint: {target.endpoint} (the poller keeps draining; Ctrl-C stops)",
        "credentials: any, e.g. AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local",
        f"send:  {aws} sqs send-message --queue-url {target.queue_url} --message-group-id cli "
        f"--message-deduplication-id $(uuidgen) --message-body {shlex.quote(body)}",
        f"table: {aws} dynamodb scan --table-name {target.table_name}",
        f"dlq:   {aws} sqs receive-message --queue-url {target.dlq_url} --message-attribute-names All",
        f"or:    .venv/bin/python -m local send --endpoint-url {target.endpoint} --queue-url {target.queue_url} "
        "--messages 20",
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
