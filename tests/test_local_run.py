"""`make run` end to end: moto's server over real HTTP, the producer, the poller, the report."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from consumer import bootstrap
from local.cli import environment, main, parser, run_local, run_options
from local.emulator import running_emulator
from local.faults import ERROR, Rule, WireFaults
from local.poller import Poller
from local.pollers import PollerJob, PollersFailed, run_pollers
from local.report import read_dlq
from local.template_resources import deploy_local


def test_make_run_accounts_for_every_message_and_reports_it() -> None:
    # Given a small workload: 40 orders over 4 groups, 4 duplicates and 5 invalid bodies, 2 bodies too large
    # for an item, and 5 Extended Client pointers (one payload large, one never written)
    stdout, stderr = io.StringIO(), io.StringIO()

    # When the `make run` entry point runs it on the embedded emulator
    code = main(
        [
            "run",
            "--messages",
            "40",
            "--groups",
            "4",
            "--duplicates",
            "4",
            "--invalid",
            "5",
            "--large",
            "2",
            "--pointers",
            "5",
            "--json",
            "--env-file",
            os.devnull,
        ],
        stdout=stdout,
        stderr=stderr,
    )

    # Then every message is accounted for and the report says where each went
    report = json.loads(stdout.getvalue())
    assert code == 0
    assert report["sent"] == 56
    assert report["saved"] == report["table_items"] == 40 + 2 + 4
    assert report["duplicates"] == 4
    assert report["quarantined"] == report["invalid"] == 6
    assert sum(report["dlq_by_reason"].values()) == 6
    assert set(report["dlq_by_reason"]) == {
        "invalid_json",
        "not_an_object",
        "invalid_key",
        "reserved_attribute",
        "payload_missing",
    }
    assert report["queue_left"] == report["unaccounted"] == 0
    # And the large bodies, its own and the large payload's, went to S3, one object each; four pointers were read
    assert report["offloaded"] == report["payload_objects"] == 3
    assert report["pointers_read"] == 4
    # And the metric totals come from the handler's EMF output
    assert report["metrics"]["MessagesSaved"] == 46
    assert report["metrics"]["MessagesDeleted"] == 56
    # And progress went to stderr, with the endpoint on loopback
    assert "http://127.0.0.1:" in stderr.getvalue()


def test_the_cli_describes_its_options() -> None:
    # Given the CLI; When asked for the run command's help; Then every option of the issue is there
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit):
        parser().parse_args(["run", "--help"])
    text = stdout.getvalue()
    for option in (
        "--messages",
        "--groups",
        "--duplicates",
        "--invalid",
        "--large",
        "--pointers",
        "--events",
        "--json",
    ):
        assert option in text
    for option in ("--keep-running", "--endpoint-url", "--queue-url", "--table", "--pollers", "--pointer-bucket"):
        assert option in text


def test_the_soak_and_the_bench_get_the_run_defaults_and_never_a_laptops_env_file() -> None:
    # Given the options a soak or a benchmark asks `run_local` for
    options = run_options(messages=40, pollers=2)

    # Then the rest are the CLI's defaults, no .env is read, and a misspelt option is refused by name
    assert (options.messages, options.pollers, options.groups, options.deadline) == (40, 2, 8, 600.0)
    assert options.env_file is None
    with pytest.raises(TypeError, match="mesages"):
        run_options(mesages=40)


def test_make_run_with_two_pollers_drains_from_two_processes_and_accounts_for_every_message(tmp_path: Path) -> None:
    # Given a workload over 40 groups (moto fills a batch from up to 10 groups, so both pollers find some
    # unlocked), and `make run --pollers 2` keeping the handler's logs
    logs = tmp_path / "handler.log"
    argv = ["run", "--messages", "80", "--groups", "40", "--duplicates", "4", "--invalid", "3", "--pollers", "2"]
    argv += ["--large", "0", "--pointers", "0"]  # large messages have their own tests
    options = parser().parse_args([*argv, "--env-file", os.devnull, "--logs", str(logs)])

    # When it runs on the embedded emulator
    run = run_local(options, err=io.StringIO())

    # Then two other processes invoked the handler, each after a cold start of its own, each logging to its file
    pids = {poller.pid for poller in run.poller_reports}
    assert len(pids) == 2
    assert os.getpid() not in pids
    assert all(poller.stats.invocations > 0 for poller in run.poller_reports)
    assert run.output.metrics["ColdStart"] == 2
    for index in (0, 1):
        assert '"_aws"' in (tmp_path / f"handler.poller{index}.log").read_text(encoding="utf-8")
    # And every message is accounted for, from the merged EMF metrics and the table
    report = run.report
    assert report.pollers == 2
    assert sum(report.invocations_by_poller) == report.invocations
    assert report.saved == report.table_items == report.metrics["MessagesSaved"] == 80
    assert report.duplicates == 4
    assert report.quarantined == 3
    assert report.unaccounted == report.queue_left == 0
    assert f"by 2 poller processes ({' + '.join(map(str, report.invocations_by_poller))})" in report.to_text()


def test_a_poller_process_that_fails_stops_the_run_with_its_error() -> None:
    # Given a poller process whose function environment has a setting the handler's bootstrap refuses
    job = PollerJob(
        environment={"AWS_REGION": "us-east-1", "MAX_CONCURRENCY": "0"},
        queue_url="http://127.0.0.1:9/queue.fifo",
        queue_arn="arn:aws:sqs:us-east-1:000000000000:queue.fifo",
        region="us-east-1",
        batch_size=10,
        function_timeout=60,
        visibility_timeout=1,
        deadline_seconds=30,
    )

    # When the pollers start; Then the run stops, and says which poller failed and why
    with pytest.raises(PollersFailed, match=r"(?s)poller 0 failed at start:.*MAX_CONCURRENCY=0 is out of range"):
        run_pollers(1, job, feed=lambda: False)


def test_keep_running_is_refused_with_several_pollers() -> None:
    # Given `make run` asked to keep running with two pollers
    # When it starts; Then it refuses before starting anything, naming the conflict
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit):
        main(["run", "--keep-running", "--pollers", "2", "--env-file", os.devnull])
    assert "--keep-running keeps one poller" in stderr.getvalue()


def test_failed_messages_come_back_and_end_where_they_must() -> None:
    # Given DynamoDB refuses the first 6 writes (two records, past boto3's 3 attempts)
    # and the DLQ refuses the first 3 sends (one invalid record, past its retries)
    puts = Rule("PutItem", ERROR, 0.0, code="ThrottlingException", status=400, remaining=6)
    sends = Rule("SendMessage", ERROR, 0.0, code="InternalError", status=500, remaining=3)
    injected: list[WireFaults] = []

    def install(_: Poller) -> None:
        clients = bootstrap.clients()
        injected.append(WireFaults([puts]).install(clients.dynamodb))
        injected.append(WireFaults([sends]).install(clients.sqs))

    argv = ["run", "--messages", "20", "--groups", "2", "--duplicates", "0", "--invalid", "2", "--large", "0"]
    options = parser().parse_args([*argv, "--pointers", "0"])
    options.visibility_timeout = 1

    # When the pipeline runs
    run = run_local(options, err=io.StringIO(), install_faults=install)

    # Then the failures were reported to the poller and the messages were delivered again
    report = run.report
    assert sum(w.injected.total() for w in injected) == 9
    assert report.batch_item_failures >= 3
    assert report.redeliveries >= 3
    assert report.metrics["DynamoDBSaveError"] >= 2
    # And they ended where they must: every order in the table, each invalid body in the DLQ with its reason
    assert report.saved == 20
    assert sorted(m.reason for m in run.dlq) == sorted(m.expected_reason or "" for m in run.sent if m.kind == "invalid")
    assert {m.body for m in run.dlq} == {m.body for m in run.sent if m.kind == "invalid"}
    assert report.unaccounted == report.queue_left == 0


def test_send_command_enqueues_producer_contract_messages() -> None:
    # Given an emulator with the template's queue
    with running_emulator() as endpoint, environment({"AWS_ENDPOINT_URL": endpoint}):
        sqs = boto3.client("sqs", region_name="us-east-1")
        deployed = deploy_local(sqs, boto3.client("dynamodb", region_name="us-east-1"), stack_name="send")
        out = io.StringIO()

        # When `send` enqueues 12 messages over 3 groups
        code = main(
            [
                "send",
                "--endpoint-url",
                endpoint,
                "--queue-url",
                deployed.queue_url,
                "--messages",
                "12",
                "--groups",
                "3",
                "--duplicates",
                "0",
                "--invalid",
                "0",
            ],
            stdout=out,
        )

        # Then they are in the queue, each following the message contract
        assert code == 0
        assert json.loads(out.getvalue())["sent"] == 12
        received = sqs.receive_message(QueueUrl=deployed.queue_url, MaxNumberOfMessages=10)["Messages"]
        body = json.loads(received[0]["Body"])
        assert set(body) == {"message_id", "timestamp", "source", "type", "dlq_retry", "payload"}
        assert "transaction" in body["payload"]


def test_make_run_takes_settings_from_the_environment_then_dotenv_over_the_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a key path in the environment, and in .env a key attribute, a concurrency and a table name
    monkeypatch.setenv("IDEMPOTENCY_KEY_JMESPATH", "join(':', [payload.transaction.account, message_id])")
    env_file = tmp_path / ".env"
    env_file.write_text(
        "DYNAMO_KEY_ATTRIBUTE=idempotency_key\nMAX_CONCURRENCY=3\nIDEMPOTENCY_KEY_JMESPATH=ignored\n"
        "DYNAMO_TABLE=messages_table\n",
        encoding="utf-8",
    )
    stdout, stderr = io.StringIO(), io.StringIO()

    # When `make run` runs a small workload
    argv = ["run", "--messages", "12", "--groups", "3", "--duplicates", "2", "--invalid", "1", "--json"]
    code = main([*argv, "--env-file", str(env_file)], stdout=stdout, stderr=stderr)

    # Then the report shows each setting's value and source, the environment winning over .env
    report = json.loads(stdout.getvalue())
    assert code == 0
    settings = report["settings"]
    assert settings["IDEMPOTENCY_KEY_JMESPATH"].endswith("(environment)")
    assert settings["DYNAMO_KEY_ATTRIBUTE"] == "idempotency_key (.env)"
    assert settings["MAX_CONCURRENCY"] == "3 (.env)"
    assert settings["LOG_MESSAGE_BODY"] == "false (template.yaml)"
    # And the stack was deployed with them: every order saved under account:message_id, all accounted for
    sent = report["sent_by_kind"]
    assert report["saved"] == report["table_items"] == 12 + sent["large"] + sent["pointer"]
    assert report["duplicates"] == 2
    assert report["unaccounted"] == 0
    # And the table name from .env was not read: the run used the stack it created, and said so
    assert "not read: DYNAMO_TABLE" in stderr.getvalue()


def test_make_run_refuses_a_bad_setting_before_sending_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given .env with a concurrency the consumer refuses
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_CONCURRENCY=0\n", encoding="utf-8")
    stdout, stderr = io.StringIO(), io.StringIO()

    # When `make run` starts
    code = main(["run", "--messages", "5", "--env-file", str(env_file)], stdout=stdout, stderr=stderr)

    # Then it stops with the handler's own error, before any emulator or message
    assert code == 2
    assert "MAX_CONCURRENCY=0 is out of range: use 1 to 100" in stderr.getvalue()
    assert "http://127.0.0.1:" not in stderr.getvalue()
    assert stdout.getvalue() == ""


def _sent_ids(sqs: Any, endpoint: str, queue_url: str, *extra: str) -> list[str]:
    """`python -m local send` 5 messages, then the message_ids they carried (the queue is emptied)."""
    arguments = ["send", "--endpoint-url", endpoint, "--queue-url", queue_url, "--messages", "5", "--groups", "1"]
    assert main([*arguments, "--duplicates", "0", "--invalid", "0", *extra], stdout=io.StringIO()) == 0
    return _message_ids(sqs, queue_url)


def _message_ids(sqs: Any, queue_url: str) -> list[str]:
    ids: list[str] = []
    while answer := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        ids += [json.loads(message["Body"])["message_id"] for message in answer]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(answer)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return ids


def test_send_makes_fresh_ids_unless_a_seed_is_given() -> None:
    # Given an emulator with the template's queue
    with running_emulator() as endpoint, environment({"AWS_ENDPOINT_URL": endpoint}):
        sqs = boto3.client("sqs", region_name="us-east-1")
        deployed = deploy_local(sqs, boto3.client("dynamodb", region_name="us-east-1"), stack_name="seeds")

        # When `send` runs twice without --seed, then twice with --seed 3
        fresh = [_sent_ids(sqs, endpoint, deployed.queue_url) for _ in range(2)]
        seeded = [_sent_ids(sqs, endpoint, deployed.queue_url, "--seed", "3") for _ in range(2)]

    # Then the unseeded runs share no message_id, and the seeded runs send the same ones again
    assert len(fresh[0]) == len(fresh[1]) == 5
    assert not set(fresh[0]) & set(fresh[1])
    assert seeded[0] == seeded[1]


def test_reading_the_dlq_without_consuming_leaves_every_message_visible() -> None:
    # Given a DLQ holding three quarantined bodies in three message groups
    with running_emulator() as endpoint, environment({"AWS_ENDPOINT_URL": endpoint}):
        sqs = boto3.client("sqs", region_name="us-east-1")
        deployed = deploy_local(sqs, boto3.client("dynamodb", region_name="us-east-1"), stack_name="browse")
        for number in range(3):
            sqs.send_message(
                QueueUrl=deployed.dlq_url,
                MessageBody=f"bad {number}",
                MessageGroupId=f"g{number}",
                MessageDeduplicationId=f"d{number}",
            )

        # When the report browses it (as with --keep-running or another endpoint)
        browsed = read_dlq(sqs, deployed.dlq_url, consume=False)

        # Then it saw all three, and an operator's receive right after sees all three too
        after = sqs.receive_message(QueueUrl=deployed.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        counts = sqs.get_queue_attributes(QueueUrl=deployed.dlq_url, AttributeNames=["All"])["Attributes"]
    assert sorted(m.body for m in browsed) == ["bad 0", "bad 1", "bad 2"]
    assert sorted(m["Body"] for m in after["Messages"]) == ["bad 0", "bad 1", "bad 2"]
    assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"
