"""Every command in the docs, and every command `make run ARGS=--keep-running` prints, works as pasted.

The commands are collected from the ```sh blocks of README.md and docs/*.md. Each must match one
rule below: the cheap ones run as pasted, from the repository root, in a shell with no PYTHONPATH and
no AWS configuration; the others are skipped for the reason their rule gives. A new command in the
docs without a rule fails the test, and so does a rule that matches nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue

import boto3
import pytest

from local import results

pytestmark = pytest.mark.slow  # each command is a fresh process, make run among them

ROOT = Path(__file__).resolve().parent.parent
REPORT_LABEL = re.compile(r"^([a-z][a-z ()]*?)\s{2,}", flags=re.MULTILINE)


@dataclass(frozen=True)
class Rule:
    pattern: str
    run: bool
    why: str


RULES = [
    Rule(r"make run", True, "the default run: about 200 messages on the embedded emulator"),
    Rule(r"make run ARGS=--json \| python3 -m json\.tool", True, "a default run, its report piped as JSON"),
    Rule(r"\.venv/bin/python -m (local run|local\.soak) --help", True, "help"),
    Rule(r"make run ARGS=--keep-running", False, "never ends: test_keep_running_prints_commands_that_work runs it"),
    Rule(r"make run ARGS=\"--messages \d+ .*\"", False, "the default run, bigger: minutes"),
    Rule(r"make run ARGS=\"--pollers \d+\"", True, "the default run, drained by poller processes at once"),
    Rule(r"make (check|test)", False, "the test suite itself"),
    Rule(r"make (build|validate)", False, "installs the SAM CLI and checkov: minutes; make test runs validate"),
    Rule(r"make bench( ARGS=--quick)?", False, "the benchmark: minutes; tests/test_bench.py runs its quick mode"),
    Rule(r"\.venv/bin/python -m bench --json out\.json", False, "the full benchmark: minutes"),
    Rule(r"make soak( ARGS=.*)?", False, "the soak: minutes; tests/test_soak.py runs a CI-sized one"),
    Rule(r"make capacity ARGS=\"--rate \d+ --groups \d+\"", True, "the capacity calculator: arithmetic"),
    Rule(
        r"\.venv/bin/python -m local capacity --markdown .* --results docs/results",
        False,
        "rewrites docs/results/capacity.md: tests/test_capacity.py checks it is the calculator's output",
    ),
    Rule(r"make (e2e|invoke)( .*)?", False, "builds the zip and starts MiniStack: make test runs make e2e"),
    Rule(r"\.venv-sam/bin/sam deploy.*", False, "needs an AWS account"),
    Rule(r"\.venv-sam/bin/sam local invoke .*", False, "needs Docker (and make build)"),
    Rule(
        r"(STACK=|TABLE=|while read |out\(\) |QUEUE_URL=|DLQ_ARN=|aws |python3 -c 'import json, sys; json\.dump).*",
        False,
        "needs a deployed stack",
    ),
    Rule(r"\.venv/bin/python -m local send --queue-url https://sqs\..*", False, "sends to a real AWS queue"),
]


# make run's default workload quarantines 5 invalid bodies and 1 of its 5 Extended Client pointers
# (the third of every ten names a payload that was never written).
IN_DLQ = "6"


def _without_comment(line: str) -> str:
    """The line up to a `#` that starts a shell comment (outside quotes, after a space)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every command of every ```sh block, continuation lines joined."""
    found = []
    for page in results.pages(ROOT):
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
            joined = re.sub(r"\\\n\s*", "", block)
            for line in joined.splitlines():
                command = _without_comment(line).strip()
                if command:
                    found.append((page.name, command))
    return found


def rule_for(command: str) -> Rule | None:
    return next((rule for rule in RULES if re.fullmatch(rule.pattern, command)), None)


def user_environment(tmp_path: Path) -> dict[str, str]:
    """A newcomer's shell: no PYTHONPATH, no AWS settings or credentials, not inside make."""
    drop = ("PYTHONPATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VIRTUAL_ENV")
    env = {name: value for name, value in os.environ.items() if name not in drop and not name.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "no-aws-credentials")
    return env


def paste(command: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_documented_command_has_a_rule_and_every_rule_a_command() -> None:
    # Given the commands of the docs
    commands = documented_commands()

    # Then each one is either run below or skipped for a stated reason, and no rule is dead
    assert len(commands) > 10
    assert [f"{page}: {command}" for page, command in commands if rule_for(command) is None] == []
    used = {rule_for(command) for _, command in commands}
    assert [rule.pattern for rule in RULES if rule not in used] == []


@pytest.mark.parametrize(
    "command",
    sorted({command for _, command in documented_commands() if (rule := rule_for(command)) and rule.run}),
)
def test_a_documented_command_works_as_pasted(command: str, tmp_path: Path) -> None:
    # When a newcomer pastes it at the repository root
    done = paste(command, user_environment(tmp_path))

    # Then it succeeds and prints what the docs say it prints
    assert done.returncode == 0, done.stderr[-3000:]
    if "--json" in command:
        report = json.loads(done.stdout)
        assert report["unaccounted"] == 0
        assert report["sent"] == report["sent_by_kind"]["valid"] + sum(
            report["sent_by_kind"][kind]
            for kind in ("large", "pointer", "duplicate", "conflicting_duplicate", "invalid")
        )
    elif command.startswith("make run"):
        # The sample report in the docs has the lines this one has, in the same order
        sample = (ROOT / "docs" / "results" / "run.md").read_text(encoding="utf-8")
        quoted = sample.split("```text\n", 1)[1].split("```", 1)[0]
        assert REPORT_LABEL.findall(done.stdout) == REPORT_LABEL.findall(quoted)
        assert "accounted             all: 0 unaccounted for" in done.stdout
        if pollers := re.search(r"--pollers (\d+)", command):
            assert f"by {pollers.group(1)} poller processes" in done.stdout
    elif command.startswith("make capacity"):
        # A plan for the rate asked, with the setting it needs and what it costs
        rate, groups = (int(number) for number in re.findall(r"--(?:rate|groups) (\d+)", command))
        plan = done.stdout.split(f"{rate:,} messages/s, {groups:,} groups:\n", 1)[1]
        assert re.search(r"^  EventSourceMaxConcurrency  \d+ ", plan, flags=re.MULTILINE)
        assert re.search(r"^  cost per million messages  \$\d+\.\d\d ", plan, flags=re.MULTILINE)
    else:
        assert done.stdout.startswith("usage:")


@pytest.fixture
def kept_running(tmp_path: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    """`make run ARGS=--keep-running` as the docs say, up until its commands are printed."""
    env = user_environment(tmp_path)
    process = subprocess.Popen(
        ["bash", "-c", "make run ARGS=--keep-running"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so Ctrl-C can be sent to all of it
    )
    lines: Queue[str] = Queue()
    assert process.stderr is not None
    stream = process.stderr

    def forward() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=forward, daemon=True).start()
    printed: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while not any(line.startswith("or:") for line in printed):
            assert time.monotonic() < deadline, "".join(printed[-20:])
            try:
                printed.append(lines.get(timeout=1))
            except Empty:
                assert process.poll() is None, "".join(printed[-20:])
        yield env, printed
    finally:
        # Then Ctrl-C stops it
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise


def test_keep_running_prints_commands_that_work_as_pasted(kept_running: tuple[dict[str, str], list[str]]) -> None:
    # Given `make run ARGS=--keep-running` is up, with the commands it printed
    env, printed = kept_running
    commands: dict[str, list[str]] = {}
    for line in printed:
        label, _, command = line.partition(":")
        if label in ("send", "table", "dlq", "or") and command.strip():
            commands.setdefault(label, []).append(command.strip())
    endpoint = re.search(r"emulator endpoint: (\S+)", "".join(printed))
    assert endpoint
    assert set(commands) == {"send", "table", "dlq", "or"}
    dlq_url = re.search(r"--queue-url (\S+)", commands["dlq"][0])
    assert dlq_url
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint.group(1))

    # When the producer command is pasted into another shell; Then it sends 20 messages and a duplicate
    sent = paste(commands["or"][0], env, timeout=120)
    assert sent.returncode == 0, sent.stderr[-3000:]
    assert json.loads(sent.stdout)["sent"] == 21

    if shutil.which("aws") is None:
        # Without the AWS CLI, read the DLQ as its command would: nothing the report browsed is hidden
        held = sqs.get_queue_attributes(QueueUrl=dlq_url.group(1), AttributeNames=["All"])["Attributes"]
        assert (held["ApproximateNumberOfMessages"], held["ApproximateNumberOfMessagesNotVisible"]) == (IN_DLQ, "0")
        pytest.skip("the AWS CLI is not installed: its printed commands were not pasted")

    # When the AWS CLI ones are pasted; Then each works, the DLQ holds its 6 messages, all visible, and
    # reading them hides none (a FIFO queue may hand out one message per group at a time), and the
    # message sent by hand reaches the table through the consumer
    for command in commands["send"] + commands["table"]:
        done = paste(command, env, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
    visible_five = {"ApproximateNumberOfMessages": IN_DLQ, "ApproximateNumberOfMessagesNotVisible": "0"}
    assert json.loads(paste(commands["dlq"][0], env, timeout=120).stdout)["Attributes"] == visible_five
    for _ in range(2):
        receive = paste(commands["dlq"][1], env, timeout=120)
        messages = json.loads(receive.stdout)["Messages"]
        assert messages
        assert all("quarantine_reason" in message["MessageAttributes"] for message in messages)
        assert json.loads(paste(commands["dlq"][0], env, timeout=120).stdout)["Attributes"] == visible_five
    table = re.search(r"--table-name (\S+)", commands["table"][0])
    assert table
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint.group(1))
    key = {"message_id": {"S": "11111111-2222-4333-8444-555555555555"}}
    deadline = time.monotonic() + 60
    while "Item" not in dynamodb.get_item(TableName=table.group(1), Key=key):
        assert time.monotonic() < deadline, "the pasted send-message never reached the table"
        time.sleep(0.5)
