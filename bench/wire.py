"""A fixed latency on every AWS call, and a count of calls by operation, at botocore's boundary.

Like tests/faults.py, this takes moto's ``before-send`` stub off one client and stands in
front of it: each request waits ``latency`` seconds (without holding the GIL), then reaches moto.

With ``answer_put_item``, PutItem is answered here as DynamoDB answers a new item (HTTP 200,
``{}``) and never reaches moto: moto's item store re-sums the item's size on every attribute it
adds, quadratic in the attributes, minutes for an item of 20,000 of them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import botocore_stubber


class Wire:
    """Calls by operation across every client it is put in front of."""

    def __init__(self, latency_seconds: float, *, answer_put_item: bool = False) -> None:
        self.latency_seconds = latency_seconds
        self.answer_put_item = answer_put_item
        self.calls: Counter[str] = Counter()
        # CPU seconds moto spent answering: real AWS spends them on its side, not in the function.
        self.service_seconds = 0.0
        self._lock = threading.Lock()

    def attach(self, *clients: Any) -> Wire:
        for client in clients:
            client.meta.events.unregister("before-send", botocore_stubber)
            client.meta.events.register("before-send", self._send)
        return self

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.service_seconds = 0.0

    def _send(self, event_name: str, request: Any, **kwargs: Any) -> AWSResponse | None:
        with self._lock:
            self.calls[event_name.rsplit(".", 1)[-1]] += 1
        if self.latency_seconds:
            time.sleep(self.latency_seconds)
        if self.answer_put_item and event_name.endswith(".PutItem"):
            headers = HTTPHeaders.from_dict({"Content-Type": "application/x-amz-json-1.0"})
            return AWSResponse(request.url, 200, headers, MockRawResponse(b"{}"))
        started = time.thread_time()
        answer: AWSResponse | None = botocore_stubber(event_name=event_name, request=request, **kwargs)
        with self._lock:
            self.service_seconds += time.thread_time() - started
        return answer
