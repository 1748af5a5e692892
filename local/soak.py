"""The soak: thousands of messages through the poller and the handler, with faults on the wire.

Faults (seeded, ``local.faults``) on the consumer's own clients: throttling and 5xx bursts on
``PutItem`` longer than boto3's retries, writes that land but whose answer is lost, read
timeouts, ``DeleteMessageBatch`` failures and partial failures, ``SendMessage`` to the DLQ
failing, and invocations that die between the write and the delete; on S3, ``PutObject``
(large bodies) and ``GetObject`` (Extended Client payloads) throttled, failing, timing out or
losing their answers. At the end each invariant is a number of violations; all must be 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import IO

from local.cli import Run, run_local
from local.faults import DIE, ERROR, LOST_ANSWER, PARTIAL, TIMEOUT, Rule, WireFaults, WriteLedger
from local.poller import Poller
from local.producer import INVALID, LARGE, POINTER, STORED_KINDS, VALID


def consumer_faults(scale: float = 1.0) -> tuple[list[Rule], list[Rule], list[Rule]]:
    """(DynamoDB rules, SQS rules, S3 rules) for the consumer's clients; ``scale`` multiplies every rate."""
    dynamodb = [
        Rule("PutItem", ERROR, 0.006 * scale, (1, 5), code="ThrottlingException", status=400),
        Rule("PutItem", ERROR, 0.004 * scale, (1, 4), code="InternalServerError", status=500),
        Rule("PutItem", LOST_ANSWER, 0.004 * scale, (1, 3)),
        Rule("PutItem", TIMEOUT, 0.003 * scale, (1, 2)),
    ]
    sqs = [
        Rule("DeleteMessageBatch", DIE, 0.01 * scale),
        Rule("DeleteMessageBatch", ERROR, 0.02 * scale, (3, 3), code="InternalError", status=500),
        Rule("DeleteMessageBatch", PARTIAL, 0.03 * scale),
        Rule("SendMessage", ERROR, 0.05 * scale, (1, 4), code="InternalError", status=500),
    ]
    # S3 calls are few (large bodies and pointers only), so their rates are higher to be met at all.
    s3 = [
        Rule("PutObject", ERROR, 0.05 * scale, (1, 4), code="SlowDown", status=503),
        Rule("PutObject", LOST_ANSWER, 0.05 * scale, (1, 3)),
        Rule("PutObject", TIMEOUT, 0.03 * scale, (1, 2)),
        Rule("GetObject", ERROR, 0.05 * scale, (1, 4), code="InternalError", status=500),
        Rule("GetObject", TIMEOUT, 0.03 * scale, (1, 3)),
    ]
    return dynamodb, sqs, s3


@dataclass
class SoakResult:
    messages_sent: int
    valid: int
    large: int
    pointers: int
    invalid: int
    duplicates: int
    seconds: float
    faults_injected: dict[str, int]
    invocation_errors: int
    batch_item_failures: int
    redeliveries: int
    redriven_by_sqs: int
    # Invariants: each is a count of violations.
    not_written_exactly_once: int
    lost: int
    groups_out_of_order: int
    invalid_not_in_dlq_with_reason: int
    invalid_in_table: int
    left_in_queue: int
    # Items naming an S3 object that is not there, or holds another body; keys written more than once.
    items_naming_no_body: int
    body_objects_written_twice: int

    def violations(self) -> int:
        return (
            self.not_written_exactly_once
            + self.lost
            + self.groups_out_of_order
            + self.invalid_not_in_dlq_with_reason
            + self.invalid_in_table
            + self.left_in_queue
            + self.items_naming_no_body
            + self.body_objects_written_twice
        )

    def to_text(self) -> str:
        lines = [f"{name:32} {value}" for name, value in asdict(self).items() if name != "faults_injected"]
        lines.insert(8, f"{'faults_injected':32} {sum(self.faults_injected.values())}")
        lines[9:9] = [f"  {name:30} {count}" for name, count in sorted(self.faults_injected.items())]
        return "\n".join(["== soak ==", *lines, f"{'violations':32} {self.violations()}"])


def check(run: Run, ledger: WriteLedger) -> dict[str, int]:
    """The invariants, each as a number of violations."""
    valid = [m for m in run.sent if m.kind in STORED_KINDS]
    keys = {m.key for m in valid}
    wrong_counts = sum(1 for key in keys if ledger.writes.get(str(key), 0) != 1)
    wrong_counts += sum(1 for key in ledger.writes if key not in keys)
    first: dict[str, int] = {}
    for position, key in enumerate(ledger.order):
        first.setdefault(key, position)
    out_of_order = 0
    for group in {m.group for m in valid}:
        expected = [m.key for m in sorted(valid, key=lambda m: m.sent_index) if m.group == group]
        written = sorted((k for k in expected if k in first), key=lambda k: first[str(k)])
        if written != [k for k in expected if k in first]:
            out_of_order += 1
    dlq = {(m.body, m.reason) for m in run.dlq}
    invalid = [m for m in run.sent if m.kind == INVALID]
    invalid_ids = {m.sqs_message_id for m in invalid}
    return {
        "not_written_exactly_once": wrong_counts,
        "lost": run.report.unaccounted,
        "groups_out_of_order": out_of_order,
        "invalid_not_in_dlq_with_reason": sum(1 for m in invalid if (m.body, m.expected_reason) not in dlq),
        "invalid_in_table": sum(
            1 for item in run.items.values() if item.get("_meta", {}).get("sqs_message_id") in invalid_ids
        ),
        "left_in_queue": run.report.queue_left,
        "items_naming_no_body": sum(
            1
            for item in run.items.values()
            if "body_s3" in item.get("_meta", {})
            and item["_meta"]["body_s3"]["sha256"] not in run.payload_objects.get(item["_meta"]["body_s3"]["key"], [])
        ),
        "body_objects_written_twice": sum(1 for versions in run.payload_objects.values() if len(versions) > 1),
    }


def soak(
    messages: int,
    groups: int,
    duplicates: int,
    invalid: int,
    *,
    large: int = 0,
    pointers: int = 0,
    seed: int = 11,
    scale: float = 1.0,
    err: IO[str],
) -> SoakResult:
    ledger = WriteLedger()
    dynamodb_rules, sqs_rules, s3_rules = consumer_faults(scale)
    injectors: list[WireFaults] = []

    def install(_poller: Poller) -> None:
        from consumer import bootstrap

        clients = bootstrap.clients()
        injectors.append(WireFaults(dynamodb_rules, seed=seed, ledger=ledger).install(clients.dynamodb))
        injectors.append(WireFaults(sqs_rules, seed=seed + 1).install(clients.sqs))
        injectors.append(WireFaults(s3_rules, seed=seed + 2).install(bootstrap.s3_client()))

    options = argparse.Namespace(
        messages=messages,
        groups=groups,
        duplicates=duplicates,
        invalid=invalid,
        large=large,
        pointers=pointers,
        pointer_bucket=None,
        events=None,
        seed=seed,
        endpoint_url=None,
        queue_url=None,
        table=None,
        region=None,
        json=False,
        keep_running=False,
        visibility_timeout=1,
        logs=None,
        deadline=3600.0,
    )
    run = run_local(options, err=err, install_faults=install)
    injected: dict[str, int] = {}
    for injector in injectors:
        injected.update(injector.injected)
    figures = check(run, ledger)
    report = run.report
    return SoakResult(
        messages_sent=report.sent,
        valid=report.sent_by_kind[VALID],
        large=report.sent_by_kind[LARGE],
        pointers=report.sent_by_kind[POINTER],
        invalid=report.sent_by_kind[INVALID],
        duplicates=report.sent - sum(report.sent_by_kind[kind] for kind in (*STORED_KINDS, INVALID)),
        seconds=report.seconds,
        faults_injected=injected,
        invocation_errors=report.invocation_errors,
        batch_item_failures=report.batch_item_failures,
        redeliveries=report.redeliveries,
        redriven_by_sqs=report.redriven,
        **figures,
    )


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m local.soak", description="Soak the consumer with faults injected.")
    top.add_argument("--messages", type=int, default=20_000)
    top.add_argument("--groups", type=int, default=48)
    top.add_argument("--duplicates", type=int, default=1_000)
    top.add_argument("--invalid", type=int, default=400)
    top.add_argument("--large", type=int, default=60, help="bodies over DynamoDB's item limit (S3, then the item)")
    top.add_argument("--pointers", type=int, default=200, help="Extended Client pointers (payloads in S3)")
    top.add_argument("--seed", type=int, default=11)
    top.add_argument("--scale", type=float, default=1.0, help="multiplies every fault rate")
    top.add_argument("--json", action="store_true")
    options = top.parse_args(argv)
    result = soak(
        options.messages,
        options.groups,
        options.duplicates,
        options.invalid,
        large=options.large,
        pointers=options.pointers,
        seed=options.seed,
        scale=options.scale,
        err=sys.stderr,
    )
    print(json.dumps(asdict(result), indent=2) if options.json else result.to_text())
    return 0 if result.violations() == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
