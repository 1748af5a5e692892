"""An AWS emulator (moto's server) on a free loopback port, for local runs and HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from moto.moto_server.threaded_moto_server import ThreadedMotoServer


@contextmanager
def running_emulator() -> Iterator[str]:
    """Yields the endpoint URL; boto3 reaches it through AWS_ENDPOINT_URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
