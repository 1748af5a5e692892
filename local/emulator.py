"""An AWS emulator (moto's server) on a free loopback port, for local runs and HTTP tests.

moto's backends are not thread-safe: two ``DeleteMessageBatch`` calls on one queue at once can
each rebuild the queue's message list from the same old copy, so one brings back what the other
deleted (moto 5.2.5, ``Queue.delete_message``). Real SQS and DynamoDB apply each request
atomically, and the consumer sends its calls concurrently, so the emulator applies one request
at a time: connections are still accepted in parallel, only moto's work is serialised.
The in-process mock (``mock_aws``) gets the same rule from ``one_request_at_a_time_in_process``.

moto's FIFO receive also delivers a group out of order once two or more of its messages
become visible again together (a batch that failed, or whose invocation died): it skips each
of them while another is still marked in flight, and hands out the last one first, then the
rest of the group after it (moto 5.2.5, ``SQSBackend.receive_message``; LocalStack had the
same bug, localstack/localstack#4287); the same happens when they come back a millisecond apart
while a receive runs. SQS never does: ``redeliver_in_order`` corrects both.

Because of that one lock the emulator has a ceiling of its own: ``EmulatorLoad`` counts the
requests it answered and the time it spent answering them, to tell when a run reached it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from moto.sqs import models as sqs_models
from moto.sqs.models import SQSBackend
from werkzeug.serving import make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class EmulatorLoad:
    """Requests answered, and seconds spent answering them: at most one second per second.

    ``busy_seconds`` is wall time with the lock held; ``cpu_seconds`` the CPU time of the threads
    answering. Busy near the run's length means requests queued for the lock; busy well above
    CPU means the answering thread was waiting for a core (or for this process's GIL).
    """

    requests: int = 0
    busy_seconds: float = 0.0
    cpu_seconds: float = 0.0


class OneRequestAtATime:
    """A WSGI app that lets one request at a time into the app it wraps, as SQS applies each atomically."""

    def __init__(self, app: WsgiApp, load: EmulatorLoad | None = None) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.load = load or EmulatorLoad()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                # The body is read inside the lock too: a lazy response may still touch the backend.
                return list(self._app(environ, start_response))
            finally:
                self.load.requests += 1
                self.load.busy_seconds += time.perf_counter() - started
                self.load.cpu_seconds += time.thread_time() - cpu_started


_stopped = threading.local()


def redeliver_in_order() -> None:
    """From now on, each pass of a receive sees one moment, and a message visible again is no longer in flight.

    moto reads the clock again for each message it looks at, so a message that comes back while a
    receive runs frees its group after the group's earlier messages were already passed over (seen in
    the soak: a group's held-back messages came back a millisecond apart, and the last ones were handed
    out first). So a receive's thread reads a clock stopped at its start, and a long poll is a series of
    such receives with the real clock between them. Installed once for the process; it only ever makes
    moto closer to SQS, and other threads, requests and services keep the real clock.
    """
    receive = SQSBackend.receive_message
    if getattr(receive, "redelivers_in_order", False):
        return
    clock = sqs_models.unix_time_millis  # type: ignore[attr-defined]

    def stoppable(dt: datetime | None = None) -> float:
        now: float | None = getattr(_stopped, "now", None)
        return clock(dt) if now is None or dt is not None else now

    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[sqs_models.Message]:
        queue = self.get_queue(queue_name)
        polling_end = time.monotonic() + (wait_seconds_timeout or 0)
        # A long poll is a series of short ones, each at one moment, with the real clock while it waits.
        while True:
            _stopped.now = clock()
            try:
                for message in [message for message in queue.pending_messages if message.visible]:
                    queue.pending_messages.discard(message)
                received = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            finally:
                _stopped.now = None
            left = polling_end - time.monotonic()
            if received or left <= 0:
                return received
            queue.wait_for_messages(min(1.0, left))  # type: ignore[arg-type]

    receive_message.redelivers_in_order = True  # type: ignore[attr-defined]
    sqs_models.unix_time_millis = stoppable  # type: ignore[attr-defined]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


@contextmanager
def running_emulator(load: EmulatorLoad | None = None) -> Iterator[str]:
    """Yields the endpoint URL; boto3 reaches it through AWS_ENDPOINT_URL. ``load`` is kept up to date."""
    redeliver_in_order()
    app = OneRequestAtATime(DomainDispatcherApplication(create_backend_app), load)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@contextmanager
def one_request_at_a_time_in_process() -> Iterator[None]:
    """While open, ``mock_aws`` applies one request at a time, whichever thread or client sends it.

    moto answers in-process requests from its ``before-send`` stub; serialising that stub keeps
    every hook in front of it (fault injection, test rendezvous points) concurrent.
    """
    lock = threading.RLock()
    answer = BotocoreStubber.__call__

    def serialised(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            return answer(self, event_name, request, **kwargs)

    BotocoreStubber.__call__ = serialised  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.__call__ = answer  # type: ignore[method-assign]
