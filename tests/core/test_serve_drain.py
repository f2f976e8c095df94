"""A worker told to stop by SIGTERM first says it is not ready, and serves on for
``shutdown_delay_seconds``, so a load balancer takes it out before it stops listening.

Before, SIGTERM closed the listening socket at once: the load balancer, which had not yet probed
``/readyz`` again, kept sending it connections, refused (or reset in its accept queue) until its next
probes failed, on every deploy and every scale-in."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

FULCRUM = str(Path(sys.executable).parent / "fulcrum")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def draining_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """``fulcrum serve`` on a migrated SQLite database with a 3 s shutdown delay, once ``/readyz`` is 200:
    the process, its base URL and its log file. Killed afterwards if it is still running."""
    env = {
        **os.environ, "FULCRUM_STATE_DIR": str(tmp_path), "FULCRUM_SHUTDOWN_DELAY_SECONDS": "3",
        "FULCRUM_REGISTRY_POLL_SECONDS": "60",
    }
    env.pop("FULCRUM_DATABASE_URL", None)
    subprocess.run([FULCRUM, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True)
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [FULCRUM, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=sink, stderr=sink
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield server, base, log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


@pytest.mark.slow
def test_sigterm_turns_readiness_off_and_serves_on_for_the_delay(
    draining_server: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    """After SIGTERM ``/readyz`` is 503 ``not-ready`` naming the stop while requests are still served;
    the worker stops once the delay is over, as SIGTERM ends it (status 143)."""
    server, base, log = draining_server
    server.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    time.sleep(0.3)
    ready = httpx.get(f"{base}/readyz", timeout=2)
    assert ready.status_code == 503, ready.text
    assert ready.json()["code"] == "not-ready"
    assert any(reason.startswith("stopping: ") for reason in ready.json()["reasons"]), ready.json()
    assert httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    assert server.wait(30) == -signal.SIGTERM
    assert time.monotonic() - stopped_at >= 2.5
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_a_second_sigterm_stops_at_once(draining_server: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    """A process manager that repeats the signal (or an operator who means it) does not wait the delay."""
    server, _, _ = draining_server
    server.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    server.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    server.wait(30)
    assert time.monotonic() - asked < 2
