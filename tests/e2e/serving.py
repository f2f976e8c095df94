"""``fulcrum serve`` for real in the end-to-end tests: a free port, a server process until it is ready,
and its log checked for tracebacks when it stops."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

FULCRUM = str(Path(sys.executable).parent / "fulcrum")
"""The ``fulcrum`` command of the environment running the tests."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(args: list[str], port: int, env: dict[str, str], cwd: Path) -> Iterator[tuple[int, Path]]:
    """Run ``fulcrum serve --port PORT *args`` in ``cwd`` until ``/readyz`` answers 200 (at most 60 s);
    its pid and log file while it runs. Stopped with SIGTERM afterwards; its log must hold no traceback."""
    log = cwd / f"serve-{port}.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [FULCRUM, "serve", "--port", str(port), *args],
            env=env,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not become ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield server.pid, log
    finally:
        server.terminate()
        server.wait(30)
    assert "Traceback" not in log.read_text()
