"""The dispatcher records calls that ended ``ok`` in one batch: the batch counts what one-by-one would."""

from __future__ import annotations

import io

from fulcrum_core.devhost.echo import EchoStats
from fulcrum_core.dispatch.stats import CallStats
from fulcrum_core.observability.metrics import Metrics

CALLS = [("alpha", 0.002), ("beta", 0.0004), ("alpha", 0.2)]


def test_call_stats_batch_equals_one_by_one() -> None:
    batched, single = CallStats(), CallStats()
    single.record("alpha", "search", "error", 0.01, "boom")
    batched.record("alpha", "search", "error", 0.01, "boom")
    batched.record_ok("search", CALLS)
    for plugin, seconds in CALLS:
        single.record(plugin, "search", "ok", seconds)
    assert batched.snapshot() == single.snapshot()
    alpha = next(s for s in batched.snapshot() if s.plugin == "alpha")
    assert (alpha.calls, alpha.ok, alpha.error, alpha.max_ms) == (3, 2, 1, 200.0)
    assert alpha.last_problem == "error: boom"  # an ok batch does not clear the last problem


def test_metrics_batch_equals_one_by_one() -> None:
    batched, single = Metrics(), Metrics()
    batched.observe_ok("home_slot_offers", CALLS)
    for plugin, seconds in CALLS:
        single.observe(plugin, "home_slot_offers", "ok", seconds)
    assert batched.render() == single.render()
    text = batched.render().decode()
    assert 'fulcrum_plugin_calls_total{hook="home_slot_offers",outcome="ok",plugin="alpha"} 2.0' in text
    bucket = 'fulcrum_plugin_call_seconds_bucket{hook="home_slot_offers",le="0.0025",plugin="alpha"} 1.0'
    assert bucket in text


def test_the_dev_echo_prints_the_watched_plugins_ok_calls_from_a_batch() -> None:
    out = io.StringIO()
    stats = EchoStats("alpha", stream=out)
    stats.record_ok("search", iter(CALLS))  # any iterable, consumed once
    assert out.getvalue().splitlines() == ["[hook] alpha search ok 2.0 ms", "[hook] alpha search ok 200.0 ms"]
    assert next(s for s in stats.snapshot() if s.plugin == "beta").ok == 1
