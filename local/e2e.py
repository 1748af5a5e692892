"""``python -m local.e2e run|invoke``: the built zip (build/consumer.zip) run by MiniStack, Docker-free.

``run`` (``make e2e``) is the check that what ``sam deploy`` ships works: it imports the zip on
the emulator's Python with nothing but boto3 beside it, starts MiniStack (local/ministack.py),
creates the queue, DLQ, table, function and event source mapping from template.yaml, sends the
producer's workload and lets MiniStack's event source mapping drain it through the function.
Then it accounts for every message from what the emulator holds: the table, the DLQ, the queue,
and the function's log lines and EMF metrics read back from its CloudWatch Logs. Exits 1 if
anything is unaccounted for.

``invoke`` (``make invoke EVENT=...``) is the Docker-free ``sam local invoke``: the event's
bodies are enqueued and received, so the records the function gets carry real message ids and
receipt handles, and the function is invoked once through Lambda's ``Invoke`` API.

See docs/e2e.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig

from consumer.config import Config
from local.capture import HandlerOutput
from local.e2e_checks import Check, LogView, check_run
from local.lambda_runtime import sqs_event
from local.ministack import LAMBDA_DIFFERENCES, LOG_NAME, MAPPING_DIFFERENCES, Emulator, running_ministack, tail
from local.producer import Outgoing, count_kinds, demo_workload, send_all
from local.report import DlqMessage, read_dlq, scan_table
from local.template_resources import Deployed, FunctionSettings, deploy_local, function_settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

ROOT = Path(__file__).resolve().parent.parent
ZIP_PATH = ROOT / "build" / "consumer.zip"
MINISTACK = ROOT / ".venv-ministack" / "bin" / "ministack"
WORKDIR = ROOT / "build" / "ministack"
STACK_NAME = "sqs-fifo-consumer-e2e"
REGION = "us-east-1"
# MiniStack's default account; a 12-digit access key names the account the calls act in.
ACCOUNT = "000000000000"
# What Lambda's Python runtime puts beside a function's code: boto3 and the packages boto3 needs.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
SETTLE_SECONDS = 5.0


@dataclass
class Clients:
    sqs: SQSClient
    dynamodb: DynamoDBClient
    # No type stubs for these two in the test stack: only a few calls are made on them.
    lambda_: Any
    logs: Any


# ---------------------------------------------------------------------------------------------
# Setting up: the import check, the clients, the resources from template.yaml
# ---------------------------------------------------------------------------------------------


def import_check(zip_path: Path, python: Path, settings: FunctionSettings) -> str:
    """Import the handler from the zip as Lambda would: only the zip and boto3 on ``sys.path``.

    MiniStack's interpreter also sees MiniStack's own packages; this run does not, so a package
    missing from the zip fails here. Returns the Python version; raises with the error otherwise.
    """
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="consumer-import-") as scratch:
        task, runtime = Path(scratch, "task"), Path(scratch, "runtime")
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(task)
        runtime.mkdir()
        for name in RUNTIME_PACKAGES:
            for candidate in (Path(site, name), Path(site, f"{name}.py")):
                if candidate.exists():
                    (runtime / candidate.name).symlink_to(candidate)
        module, function = settings.handler.rsplit(".", 1)
        script = (
            "import importlib, platform, sys\n"
            f"sys.path[:0] = [{str(task)!r}, {str(runtime)!r}]\n"
            f"handler = getattr(importlib.import_module({module!r}), {function!r})\n"
            "assert callable(handler), 'the handler is not callable'\n"
            "print(platform.python_version())\n"
        )
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            **settings.environment,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCOUNT,
            "AWS_SECRET_ACCESS_KEY": "local",
        }
        # -I -S: no site-packages, no user site, no PYTHON* variables: the stdlib, the zip and boto3.
        answer = subprocess.run(
            [str(python), "-I", "-S", "-c", script], capture_output=True, text=True, env=environment, cwd=task
        )
    if answer.returncode != 0:
        raise RuntimeError(f"{settings.handler} does not import from {zip_path}:\n{answer.stderr.strip()}")
    return answer.stdout.strip()


def make_clients(endpoint: str) -> Clients:
    session = boto3.Session(aws_access_key_id=ACCOUNT, aws_secret_access_key="local", region_name=REGION)
    config = BotoConfig(retries={"mode": "standard", "max_attempts": 5})
    return Clients(
        sqs=session.client("sqs", endpoint_url=endpoint, config=config),
        dynamodb=session.client("dynamodb", endpoint_url=endpoint, config=config),
        lambda_=session.client("lambda", endpoint_url=endpoint, config=config),
        logs=session.client("logs", endpoint_url=endpoint, config=config),
    )


def create_function(clients: Clients, settings: FunctionSettings, zip_bytes: bytes) -> None:
    """The function from the zip, with the template's settings; waits until it is Active."""
    if settings.log_group:
        clients.logs.create_log_group(logGroupName=settings.log_group)
    logging_config: dict[str, str] = {}
    if settings.log_format:
        logging_config["LogFormat"] = settings.log_format
    if settings.log_group:
        logging_config["LogGroup"] = settings.log_group
    clients.lambda_.create_function(
        FunctionName=settings.name,
        Runtime=settings.runtime,
        # Not enforced by MiniStack (see LAMBDA_DIFFERENCES); the template's role has no local twin.
        Role=f"arn:aws:iam::{ACCOUNT}:role/{settings.name}-role",
        Handler=settings.handler,
        Code={"ZipFile": zip_bytes},
        Timeout=settings.timeout,
        MemorySize=settings.memory_size,
        Architectures=list(settings.architectures),
        Environment={"Variables": dict(settings.environment)},
        **({"LoggingConfig": logging_config} if logging_config else {}),
    )
    if settings.reserved_concurrency is not None:
        clients.lambda_.put_function_concurrency(
            FunctionName=settings.name, ReservedConcurrentExecutions=settings.reserved_concurrency
        )
    deadline = time.monotonic() + 30
    while clients.lambda_.get_function_configuration(FunctionName=settings.name).get("State") != "Active":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{settings.name} did not become Active")
        time.sleep(0.1)


def create_event_source_mapping(clients: Clients, settings: FunctionSettings, queue_arn: str) -> str:
    request: dict[str, Any] = {
        "FunctionName": settings.name,
        "EventSourceArn": queue_arn,
        "BatchSize": settings.batch_size,
        "FunctionResponseTypes": list(settings.function_response_types),
    }
    if settings.maximum_concurrency is not None:
        request["ScalingConfig"] = {"MaximumConcurrency": settings.maximum_concurrency}
    answer = clients.lambda_.create_event_source_mapping(**request)
    return str(answer["UUID"])


def queue_depth(sqs: SQSClient, queue_url: str) -> int:
    """Messages visible, in flight, or delayed."""
    names: list[Any] = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes: dict[Any, str] = dict(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"])
    return sum(int(attributes.get(name, "0")) for name in names)


def read_logs(logs: Any, group: str) -> LogView:
    """Every event of every stream of the group; MiniStack writes one stream per invocation."""
    streams: list[dict[str, Any]] = []
    request: dict[str, Any] = {"logGroupName": group}
    while True:
        try:
            page = logs.describe_log_streams(**request)
        except logs.exceptions.ResourceNotFoundException:
            return LogView()
        streams.extend(page.get("logStreams", []))
        if not page.get("nextToken"):
            break
        request["nextToken"] = page["nextToken"]
    view = LogView()
    for stream in sorted(streams, key=lambda s: (s.get("creationTime", 0), s.get("firstEventTimestamp", 0))):
        lines: list[str] = []
        events_request: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream["logStreamName"],
            "startFromHead": True,
        }
        while True:
            page = logs.get_log_events(**events_request)
            lines.extend(str(event["message"]) for event in page.get("events", []))
            token = page.get("nextForwardToken")
            if not page.get("events") or token == events_request.get("nextToken"):
                break
            events_request["nextToken"] = token
        view.invocations.append(lines)
    return view


# ---------------------------------------------------------------------------------------------
# The two commands
# ---------------------------------------------------------------------------------------------


@dataclass
class Stopwatch:
    started: float = field(default_factory=time.monotonic)
    laps: dict[str, float] = field(default_factory=dict)
    _last: float = field(default=0.0)

    def lap(self, name: str) -> None:
        now = time.monotonic() - self.started
        self.laps[name] = now - self._last
        self._last = now

    def text(self) -> str:
        laps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.laps.items())
        return f"{time.monotonic() - self.started:.1f} s ({laps})"


def _setup(stack: ExitStack, options: argparse.Namespace, err: IO[str]) -> tuple[Emulator, Clients, Deployed]:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="run-", dir=WORKDIR)))
    # Once MiniStack has stopped, its log is kept beside its removed working directory, for a look after a failure.
    stack.callback(_keep_log, workdir / LOG_NAME, WORKDIR / LOG_NAME)
    emulator = stack.enter_context(running_ministack(options.ministack, workdir, region=REGION))
    _say(err, f"MiniStack {emulator.version} on {emulator.endpoint} (Python {emulator.python}, pid {emulator.pid})")
    clients = make_clients(emulator.endpoint)
    deployed = deploy_local(clients.sqs, clients.dynamodb, stack_name=STACK_NAME, region=REGION, account=ACCOUNT)
    return emulator, clients, deployed


def _keep_log(source: Path, target: Path) -> None:
    if source.exists():
        target.write_bytes(source.read_bytes())


def _announce(err: IO[str], settings: FunctionSettings, python: str, zip_path: Path) -> None:
    _say(
        err,
        f"function {settings.name} from {_shown(zip_path)}: {settings.handler}, {settings.runtime} "
        f"(runs on MiniStack's Python {python}), {'/'.join(settings.architectures)} (not emulated), "
        f"{settings.memory_size} MB, {settings.timeout} s, log group {settings.log_group}",
    )
    runtime_python = settings.runtime.removeprefix("python")
    if not python.startswith(runtime_python + "."):
        _say(err, f"note: the template's runtime is {settings.runtime}; MiniStack's Python here is {python}")


def run(options: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    watch = Stopwatch()
    zip_path: Path = options.zip
    with ExitStack() as stack:
        emulator, clients, deployed = _setup(stack, options, err)
        watch.lap("start")
        settings = function_settings(deployed)
        imported_on = import_check(zip_path, options.ministack.parent / "python", settings)
        _say(err, f"import check: {settings.handler} imports on Python {imported_on} with only the zip and boto3")
        _announce(err, settings, emulator.python, zip_path)
        create_function(clients, settings, zip_path.read_bytes())
        mapping = create_event_source_mapping(clients, settings, deployed.queue_arn)
        _say(
            err,
            f"event source mapping {mapping}: batch {settings.batch_size}, "
            f"{', '.join(settings.function_response_types)}, MaximumConcurrency {settings.maximum_concurrency} "
            "(MiniStack: one FIFO batch at a time)",
        )
        watch.lap("deploy")
        plan = demo_workload(options.messages, options.groups, options.duplicates, options.invalid, seed=options.seed)
        sent = send_all(clients.sqs, deployed.queue_url, plan)
        kinds = ", ".join(f"{count} {kind}" for kind, count in count_kinds(sent).items() if count)
        _say(err, f"sent {len(sent)} messages over {options.groups} groups ({kinds})")
        drained = _wait_drained(clients.sqs, deployed.queue_url, options.deadline, err)
        watch.lap("drain")
        logs, flushed = _settled_logs(clients, settings, sent)
        watch.lap("logs")
        items = scan_table(clients.dynamodb, deployed.table_name)
        dlq = read_dlq(clients.sqs, deployed.dlq_url, consume=True)
        left = queue_depth(clients.sqs, deployed.queue_url)
        config = Config.from_env({**deployed.environment, "AWS_REGION": REGION})
        checks = check_run(sent, items, dlq, left, logs, config)
        if not drained:
            checks.insert(0, Check(False, "the queue drained", (f"not within {options.deadline:.0f} s",)))
        output = logs.output()
        out.write(_run_report(emulator, settings, sent, items, dlq, left, logs, output, checks, watch, flushed) + "\n")
        failed = [check for check in checks if not check.ok]
        if failed:
            out.write(f"MiniStack's log (kept in {_shown(WORKDIR / LOG_NAME)}):\n{tail(emulator.log_path, 15)}\n")
        return 1 if failed else 0
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_drained(sqs: SQSClient, queue_url: str, deadline: float, err: IO[str]) -> bool:
    started = time.monotonic()
    last_report = 0.0
    while True:
        depth = queue_depth(sqs, queue_url)
        elapsed = time.monotonic() - started
        if depth == 0:
            _say(err, f"[{elapsed:5.1f}s] queue drained")
            return True
        if elapsed > deadline:
            return False
        if elapsed - last_report >= 2:
            _say(err, f"[{elapsed:5.1f}s] {depth} messages on the queue")
            last_report = elapsed
        time.sleep(0.2)


def _settled_logs(clients: Clients, settings: FunctionSettings, sent: Sequence[Outgoing]) -> tuple[LogView, bool]:
    """The log group once every invocation's output is in; True if a flush invocation was needed.

    The queue empties when the last batch is deleted, a moment before its invocation returns and
    MiniStack writes its log stream. MiniStack keeps a line the handler wrote too late for its own
    invocation's stream for the next one: if output is still missing, one invocation with no
    records brings it in.
    """
    wanted = {message.sqs_message_id for message in sent}

    def complete(view: LogView) -> bool:
        received = {
            str(step.get("details", {}).get("sqs_message_id"))
            for step in view.steps()
            if step.get("action") == "message_outcome"
        }
        return wanted <= received and view.metric_blobs() >= len(view.invocations)

    def read() -> LogView:
        return read_logs(clients.logs, str(settings.log_group))

    view = _read_until(read, complete, SETTLE_SECONDS)
    if complete(view):
        return view, False
    clients.lambda_.invoke(FunctionName=settings.name, Payload=json.dumps({"Records": []}).encode())
    return _read_until(read, complete, 4 * SETTLE_SECONDS), True


def _run_report(
    emulator: Emulator,
    settings: FunctionSettings,
    sent: Sequence[Outgoing],
    items: Mapping[str, Any],
    dlq: Sequence[DlqMessage],
    left: int,
    logs: LogView,
    output: HandlerOutput,
    checks: Sequence[Check],
    watch: Stopwatch,
    flushed: bool,
) -> str:
    kinds = ", ".join(f"{count} {kind}" for kind, count in count_kinds(sent).items() if count)
    reasons = Counter(message.reason for message in dlq)
    cold = int(output.metrics.get("ColdStart", 0))
    lines = [
        "== make e2e: build/consumer.zip on MiniStack ==",
        f"emulator          MiniStack {emulator.version}, {emulator.endpoint}, Python {emulator.python} "
        f"(template: {settings.runtime})",
        f"sent              {len(sent)} ({kinds})",
        f"table             {len(items)} items",
        "dlq               " + (", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items())) or "empty"),
        f"queue left        {left}",
        f"invocations       {len(logs.invocations) - flushed} by the event source mapping ({cold} cold start)"
        + (", and 1 with no records that brought in the late output of the last" if flushed else ""),
        f"logs              {len(logs.lines)} lines in {settings.log_group}",
        "metrics (EMF)     " + ", ".join(f"{name} {value:g}" for name, value in sorted(output.metrics.items())),
        f"time              {watch.text()}",
        "checks:",
    ]
    for check in checks:
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'}  {check.what}")
        lines.extend(f"          {problem}" for problem in check.problems[:10])
    failed = sum(1 for check in checks if not check.ok)
    lines.append(f"result            {'all accounted for' if not failed else f'{failed} checks FAILED'}")
    lines.append("where MiniStack differs from AWS (not checked here):")
    lines.extend(f"  - {difference}" for difference in (*LAMBDA_DIFFERENCES, *MAPPING_DIFFERENCES))
    return "\n".join(lines)


def invoke(options: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    event_path: Path = options.event
    document = json.loads(event_path.read_text(encoding="utf-8"))
    records: list[dict[str, Any]] = list(document.get("Records", []))
    if not records or len(records) > 10:
        raise SystemExit(f"{event_path}: an SQS event with 1 to 10 Records, as Lambda sends")
    zip_path: Path = options.zip
    with ExitStack() as stack:
        emulator, clients, deployed = _setup(stack, options, err)
        settings = function_settings(deployed)
        imported_on = import_check(zip_path, options.ministack.parent / "python", settings)
        _say(err, f"import check: {settings.handler} imports on Python {imported_on} with only the zip and boto3")
        _announce(err, settings, emulator.python, zip_path)
        create_function(clients, settings, zip_path.read_bytes())
        fifo = any("MessageGroupId" in (record.get("attributes") or {}) for record in records)
        queue_url, queue_arn = (deployed.queue_url, deployed.queue_arn) if fifo else _standard_queue(clients.sqs)
        sent_ids, messages = _enqueue_and_receive(clients.sqs, queue_url, records)
        event = sqs_event(messages, queue_arn, REGION)
        answer = clients.lambda_.invoke(FunctionName=settings.name, Payload=json.dumps(event).encode())
        payload = answer["Payload"].read().decode("utf-8", "replace")
        logs = _read_until(lambda: read_logs(clients.logs, str(settings.log_group)), _has_metrics)
        items = scan_table(clients.dynamodb, deployed.table_name)
        dlq = read_dlq(clients.sqs, deployed.dlq_url, consume=True)
        left = queue_depth(clients.sqs, queue_url)
        out.write(
            _invoke_report(
                event_path, emulator, queue_url, fifo, records, sent_ids, messages, answer, payload, logs, items, dlq
            )
            + f"queue             {left} messages left (a record listed in batchItemFailures stays in flight until "
            "the queue's visibility timeout: nothing acts on the answer of a direct Invoke)\n"
        )
        return 0 if not answer.get("FunctionError") else 1
    raise AssertionError("unreachable")  # pragma: no cover


def _invoke_report(
    event_path: Path,
    emulator: Emulator,
    queue_url: str,
    fifo: bool,
    records: Sequence[Mapping[str, Any]],
    sent_ids: Sequence[str],
    messages: Sequence[Mapping[str, Any]],
    answer: Mapping[str, Any],
    payload: str,
    logs: LogView,
    items: Mapping[str, Any],
    dlq: Sequence[DlqMessage],
) -> str:
    try:
        response = json.dumps(json.loads(payload), indent=2)
    except ValueError:
        response = payload
    lines = [
        f"== make invoke EVENT={event_path}: build/consumer.zip on MiniStack {emulator.version} ==",
        f"queue             {queue_url}{'' if fifo else ' (a standard queue made for this event)'}",
        f"records           {len(records)} in the file, {len(set(sent_ids))} enqueued, {len(messages)} received "
        "and invoked with, in the order SQS handed them out",
        *(f"  {record['messageId']} -> SQS message {sqs_id}" for record, sqs_id in zip(records, sent_ids, strict=True)),
        f"status            {answer.get('StatusCode')}"
        + (f", FunctionError {answer['FunctionError']}" if answer.get("FunctionError") else ""),
        f"response          {response}",
        f"log lines         {len(logs.lines)} from the function's log group:",
        *(f"  {line}" for line in logs.lines),
        f"table             {len(items)} items" + (": " if items else "") + ", ".join(sorted(items)),
        f"dlq               {len(dlq)} messages"
        + (": " if dlq else "")
        + ", ".join(f"{message.reason} (from {message.original_id})" for message in dlq),
        "not real here:",
        "  - the records are built from MiniStack's ReceiveMessage answer: messageId, receiptHandle, SequenceNumber, "
        "SentTimestamp and the other attributes are the emulator's; the file gives the bodies, MessageGroupId, "
        "MessageDeduplicationId and messageAttributes",
        "  - one direct Invoke stands in for the event source mapping: nothing deletes or retries after it",
        *(f"  - {difference}" for difference in LAMBDA_DIFFERENCES),
    ]
    return "\n".join(lines) + "\n"


def _has_metrics(view: LogView) -> bool:
    return view.metric_blobs() >= len(view.invocations) > 0


def _standard_queue(sqs: SQSClient) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=f"{STACK_NAME}-standard")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _enqueue_and_receive(
    sqs: SQSClient, queue_url: str, records: Sequence[Mapping[str, Any]]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Send each record's body (with its group, deduplication id and attributes), then receive them all.

    Returns the SQS message id of each record, and the messages as received.
    """
    sent_ids: list[str] = []
    for record in records:
        attributes = record.get("attributes") or {}
        request: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": record["body"]}
        if "MessageGroupId" in attributes:
            request["MessageGroupId"] = attributes["MessageGroupId"]
            request["MessageDeduplicationId"] = attributes.get("MessageDeduplicationId") or uuid.uuid4().hex
        message_attributes = _message_attributes(record.get("messageAttributes") or {})
        if message_attributes:
            request["MessageAttributes"] = message_attributes
        sent_ids.append(sqs.send_message(**request)["MessageId"])
    received: dict[str, dict[str, Any]] = {}
    empty = 0
    while len(received) < len(set(sent_ids)) and empty < 3:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        batch = answer.get("Messages", [])
        empty = 0 if batch else empty + 1
        for message in batch:
            received[message["MessageId"]] = dict(message)
    return sent_ids, list(received.values())


def _message_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Lambda's camelCase message attributes back into SendMessage's shape."""
    converted: dict[str, dict[str, Any]] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {"DataType": value["dataType"]}
        if value.get("stringValue") is not None:
            entry["StringValue"] = value["stringValue"]
        if value.get("binaryValue") is not None:
            entry["BinaryValue"] = base64.b64decode(value["binaryValue"])
        converted[name] = entry
    return converted


def _read_until(read: Callable[[], LogView], done: Callable[[LogView], bool], seconds: float = 5.0) -> LogView:
    deadline = time.monotonic() + seconds
    view = read()
    while not done(view) and time.monotonic() < deadline:
        time.sleep(0.2)
        view = read()
    return view


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _say(err: IO[str], text: str) -> None:
    err.write(text + "\n")
    err.flush()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m local.e2e",
        description="Run the built zip (build/consumer.zip) on MiniStack, Docker-free: see docs/e2e.md.",
    )
    commands = top.add_subparsers(dest="command", required=True)
    run_command = commands.add_parser(
        "run",
        help="make e2e: the producer workload through MiniStack's event source mapping and the zip, accounted for",
    )
    run_command.add_argument("--messages", type=int, default=300, help="valid messages (default 300)")
    run_command.add_argument("--groups", type=int, default=8, help="message groups (default 8)")
    run_command.add_argument("--duplicates", type=int, default=30, help="duplicates, every 5th conflicting")
    run_command.add_argument("--invalid", type=int, default=15, help="bodies that can never be stored (default 15)")
    run_command.add_argument("--seed", type=int, default=7)
    run_command.add_argument("--deadline", type=float, default=240.0, help="seconds to wait for the queue to drain")
    invoke_command = commands.add_parser("invoke", help="make invoke: one Invoke of the zip with a sample event")
    invoke_command.add_argument("--event", type=Path, required=True, help="a Lambda SQS event, e.g. events/*.json")
    for command in (run_command, invoke_command):
        command.add_argument("--zip", type=Path, default=ZIP_PATH, help="the function's zip (make build)")
        command.add_argument("--ministack", type=Path, default=MINISTACK, help="MiniStack's executable")
    return top


def _terminate(signum: int, _frame: FrameType | None) -> None:
    # Unwinds like Ctrl-C does, so MiniStack is stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    options = parser().parse_args(argv)
    out, err = out or sys.stdout, err or sys.stderr
    signal.signal(signal.SIGTERM, _terminate)
    for needed in (options.zip, options.ministack):
        if not needed.exists():
            raise SystemExit(f"{needed} is missing: run `make e2e` or `make invoke`, which build it")
    try:
        return run(options, out, err) if options.command == "run" else invoke(options, out, err)
    except RuntimeError as error:
        _say(err, f"FAILED: {error}")
        return 1
    except KeyboardInterrupt:
        _say(err, "interrupted: MiniStack stopped")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
