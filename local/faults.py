"""Faults injected at botocore's ``before-send`` boundary of real HTTP clients, seeded.

Nothing here touches the consumer's code: a hook registered on a boto3 client sees each
request just before it would leave for the wire, and either lets it go, answers it
with an error (nothing reaches the server), sends it and loses the answer (the server
applies it, the caller sees a read timeout), sends part of it (a partial
``DeleteMessageBatch``), or raises so the invocation dies.

``WriteLedger`` sends every ``PutItem`` itself and records the ones the server accepted,
with the moment each was sent: the soak's "written exactly once" and "per-group order"
invariants read it. ``FaultPlan`` is what a poller process needs to fault its own clients.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

ERROR = "error"
LOST_ANSWER = "lost_answer"
TIMEOUT = "timeout"
PARTIAL = "partial"
DIE = "die"


class InvocationDied(RuntimeError):
    """Raised inside the handler, as if the runtime were killed: the whole batch comes back."""


class _Raw:
    """The raw body of an answer made here, in the shape botocore reads it."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _answer(url: str, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> AWSResponse:
    all_headers = HTTPHeaders()
    all_headers["Content-Type"] = "application/x-amz-json-1.0"
    for name, value in (headers or {}).items():
        all_headers[name] = value
    return AWSResponse(url, status, all_headers, _Raw(json.dumps(body).encode()))


def error_answer(url: str, code: str, status: int) -> AWSResponse:
    """An AWS JSON-protocol error answer, as the service sends it: botocore parses and retries it."""
    fault = "Receiver" if status >= 500 else "Sender"
    body = {"__type": f"com.amazonaws.injected#{code}", "message": "injected fault"}
    return _answer(url, status, body, {"x-amzn-query-error": f"{code};{fault}"})


def xml_error_answer(url: str, code: str, status: int) -> AWSResponse:
    """An error in S3's REST-XML shape: botocore parses its code and retries it as it would S3's own."""
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>injected fault</Message></Error>"
    headers = HTTPHeaders()
    headers["Content-Type"] = "application/xml"
    return AWSResponse(url, status, headers, _Raw(body.encode()))


@dataclass
class Rule:
    """On ``operation``, with probability ``rate`` per call, a burst of ``burst`` calls meets ``kind``."""

    operation: str
    kind: str
    rate: float
    burst: tuple[int, int] = (1, 1)
    code: str = "InternalServerError"
    status: int = 500
    remaining: int = 0


@dataclass
class WriteLedger:
    """Every PutItem the server accepted (HTTP 200), each with the moment it was sent.

    The order of first writes per message group is what the soak checks, and with several
    poller processes it is read from the send times (``time.monotonic_ns``, one clock for
    every process of the machine), not from the order the answers came back. Whoever writes
    a group's key k first has seen the key before it in the table (its own write, or a
    conditional check that failed because another process had written it), so k is sent
    after that earlier key was sent, whichever processes sent them. Answer times carry no
    such guarantee: a process may be descheduled between the server's answer and its record.
    """

    order: list[str] = field(default_factory=list)
    writes: Counter[str] = field(default_factory=Counter)
    sent_at: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, key: str, sent_at: int | None = None) -> None:
        with self.lock:
            self.order.append(key)
            self.writes[key] += 1
            self.sent_at.append(time.monotonic_ns() if sent_at is None else sent_at)

    def entries(self) -> list[tuple[int, str]]:
        """(sent at, key) of each accepted write: what a poller process sends back to its parent."""
        with self.lock:
            return list(zip(self.sent_at, self.order, strict=True))

    @classmethod
    def merged(cls, entries: Iterable[tuple[int, str]]) -> WriteLedger:
        """One ledger from the entries of several processes, in the order their writes were sent."""
        ledger = cls()
        for sent_at, key in sorted(entries):
            ledger.record(key, sent_at)
        return ledger


class WireFaults:
    """Seeded faults for the requests of the clients it is installed on."""

    def __init__(self, rules: list[Rule], *, seed: int = 1, ledger: WriteLedger | None = None) -> None:
        self.rules = rules
        self.ledger = ledger
        self.injected: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._session = URLLib3Session(timeout=30, max_pool_connections=32)

    def install(self, client: Any) -> WireFaults:
        client.meta.events.register_first("before-send", self._before_send)
        return self

    def _pick(self, operation: str) -> Rule | None:
        with self._lock:
            self.sent[operation] += 1
            for rule in self.rules:
                if rule.operation != operation:
                    continue
                if rule.remaining <= 0 and self._random.random() < rule.rate:
                    rule.remaining = self._random.randint(*rule.burst)
                if rule.remaining > 0:
                    rule.remaining -= 1
                    self.injected[f"{operation}:{rule.kind}:{rule.code if rule.kind == ERROR else ''}".rstrip(":")] += 1
                    return rule
            return None

    def _before_send(self, request: AWSPreparedRequest, event_name: str = "", **_: Any) -> AWSResponse | None:
        # JSON-protocol calls name their operation in a header; S3's REST calls only in the event's name.
        target = request.headers.get("X-Amz-Target", b"")
        name = target.decode() if isinstance(target, bytes) else str(target)
        operation = (name or event_name).rsplit(".", 1)[-1]
        rule = self._pick(operation)
        if rule is None:
            return self._send(operation, request) if self._observed(operation) else None
        if rule.kind == ERROR:
            if event_name.startswith("before-send.s3."):
                return xml_error_answer(request.url, rule.code, rule.status)
            return error_answer(request.url, rule.code, rule.status)
        if rule.kind == TIMEOUT:
            raise ReadTimeoutError(endpoint_url=request.url)
        if rule.kind == LOST_ANSWER:
            self._send(operation, request)
            raise ReadTimeoutError(endpoint_url=request.url)
        if rule.kind == PARTIAL:
            return self._partial_delete(request)
        raise InvocationDied(f"injected: the invocation died before {operation}")

    def _observed(self, operation: str) -> bool:
        return self.ledger is not None and operation == "PutItem"

    def _send(self, operation: str, request: AWSPreparedRequest) -> AWSResponse:
        sent_at = time.monotonic_ns()
        response = self._session.send(request)
        content = response.content
        if operation == "PutItem" and self.ledger is not None and response.status_code == 200:
            body = json.loads(_body(request))
            self.ledger.record(str(body["Item"]["message_id"]["S"]), sent_at)
        headers = HTTPHeaders()
        for name, value in response.headers.items():
            headers[name] = value
        return AWSResponse(request.url, response.status_code, headers, _Raw(content))

    def _partial_delete(self, request: AWSPreparedRequest) -> AWSResponse:
        """Half the entries reach SQS; the others come back as failed entries."""
        body = json.loads(_body(request))
        entries = body["Entries"]
        with self._lock:
            kept = [entry for entry in entries if self._random.random() < 0.5]
        withheld = [entry for entry in entries if entry not in kept]
        successful: list[dict[str, Any]] = []
        if kept:
            payload = json.dumps({**body, "Entries": kept}).encode()
            headers = HTTPHeaders()
            for name, value in request.headers.items():
                if name.lower() != "content-length":
                    headers[name] = value
            partial = AWSPreparedRequest(request.method, request.url, headers, payload, stream_output=False)
            partial.headers["Content-Length"] = str(len(payload))
            answer = json.loads(self._session.send(partial).content or b"{}")
            successful = answer.get("Successful", [])
            withheld.extend(entry for entry in kept if entry["Id"] in {f["Id"] for f in answer.get("Failed", [])})
        failed = [
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected partial failure"}
            for entry in withheld
        ]
        return _answer(request.url, 200, {"Successful": successful, "Failed": failed})


@dataclass(frozen=True)
class FaultPlan:
    """Rules for the consumer's DynamoDB and SQS clients, and a seed: picklable, so each poller
    process builds its own injectors from it (``stream`` keeps their random draws apart)."""

    dynamodb: tuple[Rule, ...]
    sqs: tuple[Rule, ...]
    seed: int = 1
    s3: tuple[Rule, ...] = ()

    def install(
        self, dynamodb: Any, sqs: Any, ledger: WriteLedger, stream: int = 0, s3: Any = None
    ) -> list[WireFaults]:
        """Injectors on these clients, each with its own copy of the rules (a rule keeps its burst's state)."""
        seed = self.seed + 3 * stream
        injectors = [
            WireFaults([replace(rule) for rule in self.dynamodb], seed=seed, ledger=ledger).install(dynamodb),
            WireFaults([replace(rule) for rule in self.sqs], seed=seed + 1).install(sqs),
        ]
        if s3 is not None and self.s3:
            injectors.append(WireFaults([replace(rule) for rule in self.s3], seed=seed + 2).install(s3))
        return injectors


def _body(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if isinstance(body, str):
        return body.encode()
    return bytes(body) if isinstance(body, bytes | bytearray) else b"{}"
