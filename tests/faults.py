"""Faults injected at botocore's boundary, in front of moto: never inside our own code.

``WireFaults`` takes moto's ``before-send`` stub off one client and puts itself in
front of it. Each request then either reaches moto untouched, or meets a fault:
an error answer in the service's own protocol (JSON, or S3's XML; retried by boto3 like a real
one, nothing written), a lost answer (moto applies the request, the caller sees a read timeout),
a slow answer (it arrives after a delay, or, past the attempt's read timeout, never: the request
is applied and the caller sees a read timeout, as a socket would make it), or a failed connection.
``refuse`` short-circuits ``before-call``: one error after retries, nothing sent.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber

from local.faults import error_answer, xml_error_answer


def _operation(event_name: str) -> str:
    return event_name.rsplit(".", 1)[-1]


@dataclass
class _Rule:
    kind: str
    remaining: float
    code: str = ""
    status: int = 400
    when: Callable[[dict[str, Any]], bool] | None = None
    delay: tuple[float, float] = (0.0, 0.0)


@dataclass
class WireFaults:
    """Faults for one client's requests; counts what reached the wire, by operation."""

    client: Any
    sent: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    _rules: dict[str, list[_Rule]] = field(default_factory=dict)
    _random: random.Random = field(default_factory=lambda: random.Random(9))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client.meta.events.unregister("before-send", botocore_stubber)
        self.client.meta.events.register("before-send", self._dispatch)

    def error(
        self,
        operation: str,
        code: str,
        *,
        status: int = 400,
        times: float = float("inf"),
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> WireFaults:
        """The service answers with this error; nothing is applied."""
        return self._add(operation, _Rule("error", times, code=code, status=status, when=when))

    def lose_answer(
        self, operation: str, *, times: float = float("inf"), when: Callable[[dict[str, Any]], bool] | None = None
    ) -> WireFaults:
        """The request is applied by the service, but the answer never arrives (read timeout)."""
        return self._add(operation, _Rule("lose_answer", times, when=when))

    def slow(
        self,
        operation: str,
        seconds: tuple[float, float],
        *,
        times: float = float("inf"),
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> WireFaults:
        """Each attempt's answer takes between ``seconds[0]`` and ``seconds[1]`` (seeded draws).

        An answer slower than the attempt's read timeout (botocore's per-request one if set, else
        the client's) never arrives: the request is applied, and the caller sees a read timeout
        after exactly that timeout, as a real socket would make it.
        """
        return self._add(operation, _Rule("slow", times, when=when, delay=seconds))

    def cut_connection(self, operation: str, *, times: float = float("inf")) -> WireFaults:
        """The connection fails before the request reaches the service."""
        return self._add(operation, _Rule("cut", times))

    def _add(self, operation: str, rule: _Rule) -> WireFaults:
        self._rules.setdefault(operation, []).append(rule)
        return self

    def _dispatch(self, event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
        operation = _operation(event_name)
        with self._lock:
            self.sent[operation] += 1
            rule = self._active_rule(operation, request)
            if rule is not None:
                self.injected[operation] += 1
                delay = self._random.uniform(*rule.delay)
        if rule is None:
            return botocore_stubber(event_name=event_name, request=request, **kwargs)
        if rule.kind == "slow":
            timeout = request.context.get("read_timeout") or self.client.meta.config.read_timeout
            time.sleep(min(delay, timeout))
            answer = botocore_stubber(event_name=event_name, request=request, **kwargs)
            if delay > timeout:
                raise ReadTimeoutError(endpoint_url=request.url)
            return answer
        if rule.kind == "error":
            if self.client.meta.service_model.protocol == "rest-xml":
                return xml_error_answer(request.url, rule.code, rule.status)
            return error_answer(request.url, rule.code, rule.status)
        if rule.kind == "lose_answer":
            botocore_stubber(event_name=event_name, request=request, **kwargs)
            raise ReadTimeoutError(endpoint_url=request.url)
        raise EndpointConnectionError(endpoint_url=request.url)

    def _active_rule(self, operation: str, request: Any) -> _Rule | None:
        for rule in self._rules.get(operation, []):
            if rule.remaining <= 0:
                continue
            if rule.when is not None and not rule.when(_json_body(request)):
                continue
            rule.remaining -= 1
            return rule
        return None


def _json_body(request: Any) -> dict[str, Any]:
    """A JSON-protocol request's parameters; S3's requests carry the object instead, so they have none."""
    try:
        parsed = json.loads(request.body or b"{}")
    except (ValueError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def refuse(client: Any, operation: str, code: str, *, status: int = 400) -> Counter[str]:
    """Every call of this operation fails at once with this error code; nothing is sent."""
    calls: Counter[str] = Counter()

    def short_circuit(**kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        calls[operation] += 1
        parsed = {"Error": {"Code": code, "Message": "injected fault"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return AWSResponse("https://injected", status, HTTPHeaders(), MockRawResponse(b"")), parsed

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}.{operation}", short_circuit)
    return calls
