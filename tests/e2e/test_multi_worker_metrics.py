"""``fulcrum serve --workers 2``, for real: every scrape reports the calls both workers made.

Each request opens its own connection, so the supervisor's workers share them; without a shared
metrics directory a scrape would report only the calls of the worker that accepted it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.settings import Settings
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.serving import FULCRUM, free_port, serving

PAGES = 24


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
def two_workers(tmp_path: Path) -> Iterator[tuple[str, Settings, Path]]:
    """Serve a migrated, seeded SQLite demo with two workers logging JSON; the base URL, the settings to
    sign for and the server's log file."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "FULCRUM_STATE_DIR": str(tmp_path / "state"),
        "FULCRUM_ISSUER": base,
        "FULCRUM_BRANCHES_DIR": str(tmp_path / "no-branches"),
        "FULCRUM_LOG_JSON": "1",
    }
    env.pop("FULCRUM_METRICS_DIR", None)
    subprocess.run([FULCRUM, "demo", "--no-serve"], env=env, check=True, capture_output=True, cwd=tmp_path)
    with serving(["--workers", "2"], port, env, tmp_path) as (_pid, log):
        yield base, Settings(state_dir=str(tmp_path / "state"), issuer=base), log
    assert "died" not in log.read_text()  # no worker was killed and replaced


def test_every_scrape_reports_both_workers_calls(two_workers: tuple[str, Settings, Path]) -> None:
    base, settings, _ = two_workers
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


def test_with_log_json_the_supervisor_logs_json_too(two_workers: tuple[str, Settings, Path]) -> None:
    """Every log line of ``serve --workers 2`` is JSON with ``log_json``: the supervisor's own (started,
    its workers' pids) as well as its workers'; only the command's one line about the server stack is
    not a log line."""
    _, _, log = two_workers
    lines = [line for line in log.read_text().splitlines() if line and not line.startswith("HTTP: ")]
    messages = []
    for line in lines:
        try:
            messages.append(json.loads(line)["message"])
        except ValueError:
            pytest.fail(f"a log line that is not JSON: {line!r}")
    assert any("parent process" in message for message in messages), messages
