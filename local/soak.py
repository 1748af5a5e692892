"""The soak: thousands of messages through the poller and the handler, with faults on the wire.

Faults (seeded, ``local.faults``) on the consumer's own clients: throttling and 5xx bursts on
``PutItem`` longer than boto3's retries, writes that land but whose answer is lost, read
timeouts, ``DeleteMessageBatch`` failures and partial failures, ``SendMessage`` to the DLQ
failing, and invocations that die between the write and the delete; on S3, ``PutObject``
(large bodies) and ``GetObject`` (Extended Client payloads) throttled, failing, timing out or
losing their answers. At the end each invariant is a number of violations; all must be 0. With
``--pollers N`` the queue is drained by N poller processes at once, each with its own faults, as
Lambda's concurrent invocations.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from local import results
from local.cli import Run, positive, run_local, run_options
from local.faults import DIE, ERROR, LOST_ANSWER, PARTIAL, TIMEOUT, FaultPlan, Rule, WriteLedger
from local.producer import INVALID, LARGE, POINTER, STORED_KINDS, VALID
from local.report import REDRIVEN


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
    pollers: int
    messages_sent: int
    valid: int
    large: int
    pointers: int
    invalid: int
    duplicates: int
    seconds: float
    faults_injected: dict[str, int]
    invocations_by_poller: list[int]
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
        width = max([32, *(len(name) + 3 for name in self.faults_injected)])
        lines = ["== soak =="]
        for name, value in asdict(self).items():
            if name == "faults_injected":
                lines.append(f"{name:{width}} {sum(self.faults_injected.values())}")
                lines.extend(f"  {fault:{width - 2}} {count}" for fault, count in sorted(self.faults_injected.items()))
            else:
                lines.append(f"{name:{width}} {value}")
        return "\n".join([*lines, f"{'violations':{width}} {self.violations()}"])


def check(run: Run, ledger: WriteLedger) -> dict[str, int]:
    """The invariants, each as a number of violations."""
    valid = [m for m in run.sent if m.kind in STORED_KINDS]
    keys = {m.key for m in valid}
    # SQS moves a message that failed maxReceiveCount deliveries to the DLQ itself: not lost, and never
    # written (a pointer whose every S3 read met a fault, or one held back behind it). It is counted in
    # redriven_by_sqs; written once or more, it would still be a violation. An invalid message is only
    # excused if the handler never judged it alone: held back behind its group, or its DLQ send failed.
    redriven_bodies = {(m.original_id, m.body) for m in run.dlq if m.reason == REDRIVEN}
    redriven = {original_id for original_id, _ in redriven_bodies}
    moved_by_sqs = {m.key for m in valid if m.sqs_message_id in redriven}
    wrong_counts = sum(
        1
        for key in keys
        if ledger.writes.get(str(key), 0) != 1 and not (key in moved_by_sqs and ledger.writes.get(str(key), 0) == 0)
    )
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
        "invalid_not_in_dlq_with_reason": sum(
            1
            for m in invalid
            if (m.body, m.expected_reason) not in dlq
            and not ((m.sqs_message_id, m.body) in redriven_bodies and m.sqs_message_id in run.output.handed_back)
        ),
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
    pollers: int = 1,
    err: IO[str],
) -> SoakResult:
    dynamodb_rules, sqs_rules, s3_rules = consumer_faults(scale)
    plan = FaultPlan(tuple(dynamodb_rules), tuple(sqs_rules), seed=seed, s3=tuple(s3_rules))
    options = run_options(
        messages=messages,
        groups=groups,
        duplicates=duplicates,
        invalid=invalid,
        large=large,
        pointers=pointers,
        seed=seed,
        visibility_timeout=1,
        deadline=3600.0,
        pollers=pollers,
    )
    run = run_local(options, err=err, faults=plan)
    figures = check(run, run.ledger)
    report = run.report
    return SoakResult(
        pollers=pollers,
        messages_sent=report.sent,
        valid=report.sent_by_kind[VALID],
        large=report.sent_by_kind[LARGE],
        pointers=report.sent_by_kind[POINTER],
        invalid=report.sent_by_kind[INVALID],
        duplicates=report.sent - sum(report.sent_by_kind[kind] for kind in (*STORED_KINDS, INVALID)),
        seconds=report.seconds,
        faults_injected=dict(run.faults_injected),
        invocations_by_poller=report.invocations_by_poller,
        invocation_errors=report.invocation_errors,
        batch_item_failures=report.batch_item_failures,
        redeliveries=report.redeliveries,
        redriven_by_sqs=report.redriven,
        **figures,
    )


def markdown(result: SoakResult, ran: str) -> str:
    """docs/results/soak.md: the command, machine and date, then what the soak printed."""
    return "\n".join([results.header(ran, result.seconds), "", "```text", result.to_text(), "```"])


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    top = argparse.ArgumentParser(prog="python -m local.soak", description="Soak the consumer with faults injected.")
    top.add_argument("--messages", type=int, default=20_000, help="valid messages (default 20,000)")
    top.add_argument("--groups", type=int, default=48, help="message groups (default 48)")
    top.add_argument("--duplicates", type=int, help="default: 1 per 20 messages (1,000 for 20,000)")
    top.add_argument("--invalid", type=int, help="default: 1 per 50 messages (400 for 20,000)")
    top.add_argument("--large", type=int, default=60, help="bodies over DynamoDB's item limit (S3, then the item)")
    top.add_argument("--pointers", type=int, default=200, help="Extended Client pointers (payloads in S3)")
    top.add_argument("--seed", type=int, default=11)
    top.add_argument("--scale", type=float, default=1.0, help="multiplies every fault rate")
    top.add_argument("--pollers", type=positive, default=1, help="poller processes at once (default 1: in-process)")
    top.add_argument("--json", action="store_true")
    top.add_argument(
        "--results",
        metavar="DIR",
        type=Path,
        help="also write soak.md there, soak-pollers-N.md with --pollers N (make soak: docs/results)",
    )
    options = top.parse_args(arguments)
    result = soak(
        options.messages,
        options.groups,
        options.messages // 20 if options.duplicates is None else options.duplicates,
        options.messages // 50 if options.invalid is None else options.invalid,
        large=options.large,
        pointers=options.pointers,
        seed=options.seed,
        scale=options.scale,
        pollers=options.pollers,
        err=sys.stderr,
    )
    print(json.dumps(asdict(result), indent=2) if options.json else result.to_text())
    if options.results:
        name = "soak.md" if options.pollers == 1 else f"soak-pollers-{options.pollers}.md"
        written = results.write(options.results, name, markdown(result, results.command("local.soak", arguments)))
        print(f"wrote {written}", file=sys.stderr)
    return 0 if result.violations() == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
