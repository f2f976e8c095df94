"""Fixtures for the end-to-end tests: the real app, the three scenario plugins from their entry points,
the demo bank's seeded customers and consents, and a migrated SQLite database per test.

The plugins read the time from ``ctx.now``; the ``demo`` fixture pins it to a fixed instant (late
November in China: year-end pension reminders on, the seeded coupons valid) so what each customer
sees does not depend on the day the tests run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.demo import prepare_demo
from fulcrum_core.runtime import Runtime
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_sdk.scopes import APP_SCOPES
from litestar.testing import TestClient

NOW = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
"""14:00 on Saturday 28 November 2026 in China."""


class Demo:
    """The running demo: an HTTP client, the host's runtime, and per-customer requests."""

    def __init__(self, client: TestClient[Any], runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime
        self.now = NOW
        """The instant the plugins see (``ctx.now``) and the popup's cap counts from; a test may move it."""

    def headers(self, customer: str, **extra: str) -> dict[str, str]:
        """``Authorization`` for ``customer`` with the app's customer scopes, plus ``extra`` headers."""
        return {"Authorization": f"Bearer {self.runtime.tokens.issue(customer, APP_SCOPES)}", **extra}

    def get(self, customer: str, path: str, **params: Any) -> Any:
        """GET ``path`` as ``customer``; asserts 200 and returns the decoded body."""
        response = self.client.get(path, params=params, headers=self.headers(customer))
        assert response.status_code == 200, response.text
        return response.json()

    def transact(self, customer: str, type_: str, params: dict[str, Any], *, key: str) -> Any:
        """POST a transaction as ``customer`` with idempotency key ``key``; returns the response."""
        body = msgspec.json.encode({"type": type_, "params": params})
        headers = self.headers(customer, **{"Idempotency-Key": key, "Content-Type": "application/json"})
        return self.client.post("/v1/transactions", content=body, headers=headers)


@pytest.fixture
def demo_settings(tmp_path: Path) -> Settings:
    """The demo's settings (a test module may override this fixture to tune them)."""
    return Settings(
        state_dir=str(tmp_path / "state"),
        database_url=f"sqlite:///{tmp_path / 'fulcrum.db'}",
        pairwise_secret="e2e-pairwise-secret",
        # Every approved plugin on for everyone; the shipped branches/ are exercised in test_branches.py.
        branches_dir=str(tmp_path / "no-branches"),
        # What is under test is what each customer sees, not latency: on a loaded CI machine the
        # default 150 ms deadline would drop plugins at random, and the 300 ms of a page fail it (a 503;
        # a report page that notes the report was read ran 312 ms on a loaded two-core machine). Timing
        # lives in tests/core/test_chaos.py.
        deadlines=Deadlines(home_slot_offers=10_000, search=10_000, feed_items=10_000, page=10_000),
        home_budget_ms=20_000,
        data_budget_ms=10_000,  # a cold consent read must not leave the partner out at random either
    )


@pytest.fixture
def demo(
    demo_settings: Settings, monkeypatch: pytest.MonkeyPatch, anyio_backend: tuple[str, dict[str, bool]]
) -> Iterator[Demo]:
    """The demo as ``fulcrum demo`` prepares it: migrated database, seeded consents, installed plugins."""
    settings = demo_settings
    prepare_demo(settings)
    runtime = build_runtime(settings)  # the demo provider and every installed plugin's entry point
    for_request = runtime.contexts.for_request
    running: list[Demo] = []

    def pinned(customer_ref: str, *, request_id: str, now: datetime | None = None, **rest: Any) -> Any:
        return for_request(customer_ref, request_id=request_id, now=running[0].now, **rest)

    monkeypatch.setattr(runtime.contexts, "for_request", pinned)
    backend, options = anyio_backend  # uvloop, as served
    app = create_app(settings, runtime=runtime)
    with TestClient(app, backend=backend, backend_options=options) as client:
        running.append(Demo(client, runtime))
        yield running[0]
