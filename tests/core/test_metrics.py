"""``/metrics``: per-plugin latency histograms, outcome counters and breaker states, for staff only."""

from __future__ import annotations

from typing import Any

import pytest
from fulcrum_core.dispatch.breaker import BreakerConfig
from fulcrum_core.observability.metrics import Metrics
from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _staff(app: Any) -> str:
    token: str = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    return token


def test_metrics_count_outcomes_and_latency_per_plugin(make_app: Any, kit: Any) -> None:
    """After one page: ok and error counted per plugin, a latency observation for each, breakers closed."""

    def boom(ctx: Any) -> Any:
        raise RuntimeError("down")

    app = make_app(
        kit.plugin("good", home_slot_offers=lambda ctx: [kit.offer("home.banner", "b")]),
        kit.plugin("bad", home_slot_offers=boom),
    )
    assert app.get("/v1/home").status_code == 200
    response = app.get("/metrics", token=_staff(app))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    hook = ("hook", "home_slot_offers")
    calls = "fulcrum_plugin_calls_total"
    assert samples[(calls, frozenset({("plugin", "good"), hook, ("outcome", "ok")}))] == 1
    assert samples[(calls, frozenset({("plugin", "bad"), hook, ("outcome", "error")}))] == 1
    assert samples[("fulcrum_plugin_call_seconds_count", frozenset({("plugin", "good"), hook}))] == 1
    closed = frozenset({("plugin", "bad"), hook, ("state", "closed")})
    assert samples[("fulcrum_breaker_state", closed)] == 1


def test_breaker_open_is_its_own_outcome_and_state(make_app: Any, kit: Any) -> None:
    """A refused call counts as breaker_open (no latency), and the state gauge shows the breaker open."""

    def boom(ctx: Any) -> Any:
        raise RuntimeError("down")

    config = BreakerConfig(sliding_window_size=1, minimum_number_of_calls=1)
    app = make_app(kit.plugin("bad", home_slot_offers=boom), breaker=config)
    app.get("/v1/home")
    app.get("/v1/home")
    samples = _samples(app.get("/metrics", token=_staff(app)).text)
    labels = {("plugin", "bad"), ("hook", "home_slot_offers")}
    assert samples[("fulcrum_plugin_calls_total", frozenset({*labels, ("outcome", "breaker_open")}))] == 1
    assert samples[("fulcrum_plugin_call_seconds_count", frozenset(labels))] == 1
    assert samples[("fulcrum_breaker_state", frozenset({*labels, ("state", "open")}))] == 1
    assert samples[("fulcrum_breaker_state", frozenset({*labels, ("state", "closed")}))] == 0
    # Only the states a breaker reaches are exported (no "forced_open" that nothing sets).
    states = {dict(key[1])["state"] for key in samples if key[0] == "fulcrum_breaker_state"}
    assert states == {"closed", "open", "half_open"}


@pytest.mark.parametrize(("who", "status"), [("customer", 403), ("nobody", 401)])
def test_metrics_need_platform_read(make_app: Any, who: str, status: int) -> None:
    """A customer token is refused (403) and so is a request without a token (401)."""
    app = make_app()
    response = app.get("/metrics") if who == "customer" else app.client.get("/metrics")
    assert response.status_code == status


def test_each_app_has_its_own_registry() -> None:
    """Two Metrics objects never share counters (no process-global registry)."""
    one, two = Metrics(), Metrics()
    one.observe("p", "search", "ok", 0.01)
    assert b'fulcrum_plugin_calls_total{hook="search",outcome="ok",plugin="p"} 1.0' in one.render()
    assert b"fulcrum_plugin_calls_total{" not in two.render()


def test_each_plugins_storage_use_is_scraped_against_its_quota(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fulcrum_plugin_storage_documents``, ``_bytes`` and ``_counters`` with their ``_quota`` per
    plugin, so an alert can fire before a plugin is refused; a database that cannot be read leaves them
    out, says so in ``fulcrum_plugin_storage_up``, and the scrape still answers."""
    from fulcrum_core.data.storage import SqlPluginStorage
    from fulcrum_core.observability import storage_metrics
    from fulcrum_core.settings import PluginQuota, PluginSettings

    app = make_app(
        kit.plugin("keeper", home_slot_offers=lambda ctx: []),
        plugins={"keeper": PluginSettings(storage_quota=PluginQuota(documents=10))},
    )
    storage = SqlPluginStorage(app.runtime.db, "keeper")
    storage.put("a", {"n": 1})
    storage.add("c", 1)
    samples = _samples(app.get("/metrics", token=_staff(app)).text)
    keeper = frozenset({("plugin", "keeper")})
    assert samples[("fulcrum_plugin_storage_up", frozenset())] == 1
    assert samples[("fulcrum_plugin_storage_documents", keeper)] == 1
    assert samples[("fulcrum_plugin_storage_documents_quota", keeper)] == 10
    assert samples[("fulcrum_plugin_storage_bytes", keeper)] == len(b'a{"n":1}')
    assert samples[("fulcrum_plugin_storage_counters", keeper)] == 1
    assert samples[("fulcrum_plugin_storage_counters_quota", keeper)] == 20_000_000  # the host's

    def down(db: Any) -> Any:
        raise ConnectionError("database away")

    monkeypatch.setattr(storage_metrics, "usage", down)
    response = app.get("/metrics", token=_staff(app))
    assert response.status_code == 200
    samples = _samples(response.text)
    assert samples[("fulcrum_plugin_storage_up", frozenset())] == 0
    assert not [name for name, _ in samples if name.startswith("fulcrum_plugin_storage_documents")]


def test_a_slow_storage_read_is_left_out_of_the_scrape_in_time(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A usage read that does not come back (a locked or stalled database) is given up after the
    read's timeout: the scrape answers with the other metrics and ``fulcrum_plugin_storage_up 0``."""
    import threading
    import time

    from fulcrum_core.observability import storage_metrics

    release = threading.Event()

    def stalled(db: Any) -> Any:
        release.wait(10)
        return []

    asked: list[object] = []

    def stalled_counted(db: Any) -> Any:
        asked.append(db)
        return stalled(db)

    monkeypatch.setattr(storage_metrics, "usage", stalled_counted)
    monkeypatch.setattr(storage_metrics, "READ_TIMEOUT_S", 0.2)
    monkeypatch.setattr(storage_metrics, "_out", [])
    app = make_app(kit.plugin("keeper", home_slot_offers=lambda ctx: []))
    try:
        began = time.monotonic()
        response = app.get("/metrics", token=_staff(app))
        took = time.monotonic() - began
        # While that read is still out, the next scrape starts no second one and answers at once.
        again = app.get("/metrics", token=_staff(app))
    finally:
        release.set()
    assert response.status_code == 200
    assert _samples(response.text)[("fulcrum_plugin_storage_up", frozenset())] == 0
    assert took < 5.0  # the stalled read waits 10 s
    assert _samples(again.text)[("fulcrum_plugin_storage_up", frozenset())] == 0
    assert len(asked) == 1
