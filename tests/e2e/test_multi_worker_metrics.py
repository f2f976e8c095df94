"""``fulcrum serve --workers 2``, for real: every scrape reports the calls both workers made.

Each request opens its own connection, so the supervisor's workers share them; without a shared
metrics directory a scrape would report only the calls of the worker that accepted it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.settings import Settings
from prometheus_client.parser import text_string_to_metric_families

PAGES = 24


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ok_calls(body: str, plugin: str) -> float:
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "fulcrum_plugin_calls_total"
                and labels == {"plugin": plugin, "hook": "home_slot_offers", "outcome": "ok"}
            ):
                return sample.value
    return 0.0


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    """Serve a migrated, seeded SQLite demo with two workers; the base URL and the settings to sign for."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FULCRUM_STATE_DIR": str(tmp_path / "state"),
        "FULCRUM_ISSUER": base,
        "FULCRUM_BRANCHES_DIR": str(tmp_path / "no-branches"),
    }
    env.pop("FULCRUM_METRICS_DIR", None)
    cli = [str(Path(sys.executable).parent / "fulcrum")]
    subprocess.run([*cli, "demo", "--no-serve"], env=env, check=True, capture_output=True, cwd=tmp_path)
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*cli, "serve", "--workers", "2", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the workers did not become ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield base, Settings(state_dir=str(tmp_path / "state"), issuer=base)
    finally:
        server.terminate()
        server.wait(30)
    assert "Traceback" not in log.read_text()
    assert "died" not in log.read_text()  # no worker was killed and replaced


def test_every_scrape_reports_both_workers_calls(two_workers: tuple[str, Settings]) -> None:
    base, settings = two_workers
    tokens = TokenService.from_settings(settings)
    customer = tokens.issue("c-0755-001", ["home:read"], kind="customer")
    staff = tokens.issue("ops", ["platform:read"], kind="staff")
    for _ in range(PAGES):
        response = httpx.get(f"{base}/v1/home", headers={"Authorization": f"Bearer {customer}"})
        assert response.status_code == 200
        assert "wealth-checkup" not in response.json()["degraded"]
    time.sleep(1.5)  # each worker writes its counts every metrics_share_seconds (1 s)
    seen = set()
    for _ in range(6):
        body = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {staff}"}).text
        seen.add(_ok_calls(body, "wealth-checkup"))
    assert seen == {PAGES}
