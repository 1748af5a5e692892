"""MiniStack, the emulator ``make e2e`` and ``make invoke`` run the built zip on: started, reached, stopped.

MiniStack (PyPI ``ministack``, MIT) lives in its own virtualenv (``.venv-ministack``, made by the
Makefile from infra/requirements-ministack.txt). Its Lambda service runs a zip function without
Docker, in a subprocess of that virtualenv's interpreter. It is started here on 127.0.0.1 only, on
a free port, with a minimal environment (the function inherits MiniStack's) and its state, worker
directories and log under one temporary directory; it is stopped with its whole process group,
also on an error or Ctrl-C.

``LAMBDA_DIFFERENCES`` and ``MAPPING_DIFFERENCES`` list where it differs from AWS for this function,
as read in MiniStack 1.5.33's source (``ministack/services/lambda_svc.py``, ``core/lambda_runtime.py``,
``services/sqs.py``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

SERVICES = "sqs,dynamodb,lambda,logs"
LOG_NAME = "ministack.log"
STARTUP_SECONDS = 60.0
STOP_SECONDS = 5.0

# Where MiniStack 1.5.33 differs from AWS for this function (Lambda itself) ...
LAMBDA_DIFFERENCES = (
    "the handler runs on MiniStack's own interpreter (its sys.executable), whatever Runtime says: "
    "the Python printed above",
    "Architectures is ignored: the arm64 zip runs on this machine's CPU (the zip is pure Python; this would "
    "matter if a compiled wheel were added)",
    "the function could import what MiniStack's virtualenv holds (hypercorn, PyYAML, ...) and Lambda lacks; "
    "the import check runs the zip with only the zip and boto3 on sys.path instead",
    "MiniStack adds AWS_ENDPOINT_URL to the function's environment, which is how the unchanged code reaches "
    "it (boto3 honours the variable; nothing in src/ knows the emulator)",
    "IAM is not enforced (MiniStack's AUTH is off): the template's role and its policy are not exercised",
    "MemorySize is reported, not enforced, and buys no CPU share; Timeout is enforced by killing the worker",
    "platform log lines (START, END, REPORT) are plain text although LoggingConfig.LogFormat is JSON; the "
    "handler's output is collected for at most 250 ms after it returns, a later line lands in the next "
    "invocation's log stream",
)
# ... and for its SQS event source mapping.
MAPPING_DIFFERENCES = (
    "FIFO: one batch in flight at a time for the whole queue; MaximumConcurrency (the template's "
    "ScalingConfig) is ignored, so invocations never overlap as they do in AWS (message groups still run "
    "concurrently inside an invocation)",
    "a batchItemFailures entry naming no record of the batch is ignored (AWS fails the whole batch)",
    "a failed invocation backs the mapping off for 1 s; its batch comes back after the queue's visibility "
    "timeout, as in AWS",
)


@dataclass(frozen=True)
class Emulator:
    endpoint: str
    version: str
    python: str
    log_path: Path
    pid: int


def interpreter_of(executable: Path) -> str:
    """The version of the Python that runs MiniStack (and so the function), e.g. ``3.13.0``."""
    python = executable.parent / "python"
    answer = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MiniStackExited(RuntimeError):
    """MiniStack ended before answering: most likely its port was taken after ``free_port`` chose it."""


@contextmanager
def running_ministack(executable: Path, workdir: Path, *, region: str, attempts: int = 3) -> Iterator[Emulator]:
    """MiniStack on 127.0.0.1 and a free port; yields once it answers its health check."""
    log_path = workdir / LOG_NAME
    for attempt in range(1, attempts + 1):
        port = free_port()
        process = _start(executable, workdir, port, region, log_path)
        try:
            health = _wait_healthy(f"http://127.0.0.1:{port}", process, log_path)
        except MiniStackExited:
            _stop(process)
            if attempt == attempts:
                raise
            continue
        except BaseException:
            _stop(process)
            raise
        break
    try:
        yield Emulator(
            endpoint=f"http://127.0.0.1:{port}",
            version=str(health.get("version", "?")),
            python=interpreter_of(executable),
            log_path=log_path,
            pid=process.pid,
        )
    finally:
        _stop(process)


def _start(executable: Path, workdir: Path, port: int, region: str, log_path: Path) -> subprocess.Popen[bytes]:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(workdir)),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "TMPDIR": str(workdir),
        "STATE_DIR": str(workdir / "state"),
        "GATEWAY_PORT": str(port),
        "BIND_HOST": "127.0.0.1",
        "SERVICES": SERVICES,
        "MINISTACK_REGION": region,
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }
    with log_path.open("w", encoding="utf-8") as log:
        # Its own session: a Ctrl-C reaches this process only, which then stops MiniStack's whole group.
        return subprocess.Popen(
            [str(executable.absolute())],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            start_new_session=True,
        )


def _wait_healthy(endpoint: str, process: subprocess.Popen[bytes], log_path: Path) -> dict[str, object]:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MiniStackExited(f"MiniStack exited with {process.returncode}: {tail(log_path)}")
        try:
            with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=2) as answer:
                health: dict[str, object] = json.loads(answer.read())
                return health
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"MiniStack did not answer on {endpoint} within {STARTUP_SECONDS:.0f} s: {tail(log_path)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to MiniStack's process group (it and the function's workers), then SIGKILL to what is left."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_SECONDS)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
