"""An AWS emulator (moto's server) on a free loopback port, for local runs and HTTP tests.

moto's backends are not thread-safe: two ``DeleteMessageBatch`` calls on one queue at once can
each rebuild the queue's message list from the same old copy, so one brings back what the other
deleted (moto 5.2.5, ``Queue.delete_message``). Real SQS and DynamoDB apply each request
atomically, and the consumer sends its calls concurrently, so the emulator applies one request
at a time: connections are still accepted in parallel, only moto's work is serialised.
The in-process mock (``mock_aws``) gets the same rule from ``one_request_at_a_time_in_process``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.core.botocore_stubber import BotocoreStubber
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class OneRequestAtATime:
    """A WSGI app that lets one request at a time into the app it wraps, as SQS applies each atomically."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            # The body is read inside the lock too: a lazy response may still touch the backend.
            return list(self._app(environ, start_response))


@contextmanager
def running_emulator() -> Iterator[str]:
    """Yields the endpoint URL; boto3 reaches it through AWS_ENDPOINT_URL."""
    app = OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
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
