"""Prometheus metrics of one app, in its own registry: plugin call latency, outcomes, breaker states.

Each app owns a ``CollectorRegistry`` (never the process-global one), so tests and several apps in
one process do not share counters. The dispatcher reports every call through :meth:`observe`, on
the event loop's thread only; the counts are kept in plain lists and turned into metric families
when ``/metrics`` is scraped. prometheus_client's own ``Histogram`` takes a lock and walks its
buckets in Python on every observation, which measured as the largest part of the dispatcher's
per-call cost (``bench/README.md``); a single-threaded bisect into a list does the same job for
a fraction of it. Breaker states are read from the dispatcher's guards at scrape time, so a
breaker that has not changed for hours still shows. The app's HTTP requests are counted alike, through
:meth:`Metrics.observe_request` (``requests.py`` says which and how).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from fulcrum_core.dispatch.breaker import BreakerSnapshot, BreakerState

__all__ = [
    "BREAKER_HELP",
    "CALLS_HELP",
    "CALL_BUCKETS",
    "CONTENT_TYPE",
    "LATENCY_HELP",
    "LEFTOVERS_HELP",
    "REQUESTS_HELP",
    "REQUEST_BUCKETS",
    "REQUEST_LATENCY_HELP",
    "STALLED_HELP",
    "STALLS_HELP",
    "Metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4"
"""The Prometheus text exposition format. litestar adds ``charset=utf-8`` to every ``text/`` type it
answers, so it is not said here: given twice, a strict parser (Go's ``mime.ParseMediaType``, which
Prometheus reads the scrape's ``Content-Type`` with) refuses the header."""

CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Latency bucket upper bounds in seconds, with edges at the default deadlines (150 ms, 300 ms, 5 s)."""

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
"""HTTP request latency bucket upper bounds in seconds: fine up to and around the home page's 400 ms
budget (a p99 near it is read between 0.3, 0.4 and 0.5), an edge at the transaction's 5 s deadline."""

LATENCY_HELP = "Duration of plugin hook calls that ran, by plugin and hook."
CALLS_HELP = "Plugin hook calls by outcome: ok, error, timeout, invalid, rejected, breaker_open."
LEFTOVERS_HELP = (
    "Tasks a plugin's hook call started and left behind, by outcome: cancelled (still running at the"
    " call's deadline), error (it raised and nobody retrieved the exception)."
)
STALLS_HELP = (
    "Times the event loop was held loop_stall_ms or more, by culprit: the plugin whose code held it, host,"
    " or unknown (no sample caught the code)."
)
STALLED_HELP = "Seconds the event loop was held in stalls of loop_stall_ms or more, by culprit."
REQUESTS_HELP = "HTTP requests answered, by route template (or unmatched), method and status."
REQUEST_LATENCY_HELP = (
    "Duration of HTTP requests, from the app receiving one to its last byte sent, by route template"
    " and method."
)
BREAKER_HELP = (
    "Circuit breaker state per plugin and hook: how many workers' breakers are in that state"
    " (one worker: 1 for its current state, 0 otherwise)."
)

_UNTIMED = frozenset({"rejected", "breaker_open"})


class _Latency:
    """One plugin × hook histogram: per-bucket counts (the last is +Inf) and the sum, and how many of
    its calls ended ``ok`` (kept here, next to the histogram, so an ``ok`` call costs one lookup)."""

    __slots__ = ("buckets", "ok", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(CALL_BUCKETS) + 1)
        self.total = 0.0
        self.ok = 0


class _Requests:
    """One route × method histogram of request durations (the last bucket is +Inf), its sum, and its
    requests by status."""

    __slots__ = ("buckets", "statuses", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(REQUEST_BUCKETS) + 1)
        self.total = 0.0
        self.statuses: dict[int, int] = {}


class _CallCollector(Collector):
    """``fulcrum_plugin_call_seconds`` and ``fulcrum_plugin_calls_total`` from a :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "fulcrum_plugin_call_seconds",
            LATENCY_HELP,
            labels=["plugin", "hook"],
        )
        for (plugin, hook), series in sorted(self._metrics.latency.items()):
            buckets = _cumulative(CALL_BUCKETS, series.buckets)
            latency.add_metric([plugin, hook], buckets, sum_value=series.total)
        yield latency
        calls = CounterMetricFamily(
            "fulcrum_plugin_calls",
            CALLS_HELP,
            labels=["plugin", "hook", "outcome"],
        )
        for key, count in sorted(self._metrics.call_counts().items()):
            calls.add_metric(list(key), float(count))
        yield calls
        leftovers = CounterMetricFamily(
            "fulcrum_plugin_leftover_tasks",
            LEFTOVERS_HELP,
            labels=["plugin", "hook", "outcome"],
        )
        for key, count in sorted(self._metrics.leftovers.items()):
            leftovers.add_metric(list(key), float(count))
        yield leftovers
        stalls = CounterMetricFamily("fulcrum_event_loop_stalls", STALLS_HELP, labels=["culprit"])
        stalled = CounterMetricFamily("fulcrum_event_loop_stalled_seconds", STALLED_HELP, labels=["culprit"])
        for culprit, (count, seconds) in sorted(self._metrics.stalls.items()):
            stalls.add_metric([culprit], float(count))
            stalled.add_metric([culprit], seconds)
        yield stalls
        yield stalled


def _cumulative(bounds: tuple[float, ...], buckets: list[int]) -> list[tuple[str, float]]:
    """A histogram's ``le`` buckets from per-bucket counts (the last one +Inf)."""
    running, cumulative = 0, []
    for bound, count in zip((*bounds, float("inf")), buckets, strict=True):
        running += count
        cumulative.append((_bound(bound), float(running)))
    return cumulative


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


class _RequestCollector(Collector):
    """``fulcrum_http_request_seconds`` and ``fulcrum_http_requests_total`` from a :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "fulcrum_http_request_seconds", REQUEST_LATENCY_HELP, labels=["route", "method"]
        )
        for (route, method), series in sorted(self._metrics.requests.items()):
            buckets = _cumulative(REQUEST_BUCKETS, series.buckets)
            latency.add_metric([route, method], buckets, sum_value=series.total)
        yield latency
        requests = CounterMetricFamily(
            "fulcrum_http_requests", REQUESTS_HELP, labels=["route", "method", "status"]
        )
        for key, count in sorted(self._metrics.request_counts().items()):
            requests.add_metric(list(key), float(count))
        yield requests


class _BreakerCollector(Collector):
    """``fulcrum_breaker_state{plugin,hook,state}``: 1 for each breaker's current state, 0 otherwise."""

    def __init__(self, source: Callable[[], Iterable[BreakerSnapshot]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "fulcrum_breaker_state",
            BREAKER_HELP,
            labels=["plugin", "hook", "state"],
        )
        for snap in self._source():
            plugin, _, hook = snap.name.partition(":")
            for state in BreakerState:
                family.add_metric([plugin, hook, state.value], 1.0 if snap.state is state else 0.0)
        yield family


class Metrics:
    """The app's metrics; ``observe`` is the dispatcher's ``CallObserver``, ``render()`` the scrape body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency: dict[tuple[str, str], _Latency] = {}
        # Outcomes other than ok (ok calls are counted in their _Latency).
        self.outcomes: dict[tuple[str, str, str], int] = {}
        # Tasks plugins left behind, by (plugin, hook, "cancelled" or "error") (``dispatch/leftovers.py``).
        self.leftovers: dict[tuple[str, str, str], int] = {}
        # Stalls of the event loop by culprit: (how many, seconds in all) (``dispatch/stalls.py``).
        self.stalls: dict[str, tuple[int, float]] = {}
        # The same _Latency objects by hook, then plugin: the hot path looks up plain strings.
        self._by_hook: dict[str, dict[str, _Latency]] = {}
        # HTTP requests by (route template, method) (``requests.py``).
        self.requests: dict[tuple[str, str], _Requests] = {}
        self.registry.register(_CallCollector(self))
        self.registry.register(_RequestCollector(self))

    def call_counts(self) -> dict[tuple[str, str, str], int]:
        """Calls by (plugin, hook, outcome), ok included."""
        counts = dict(self.outcomes)
        for (plugin, hook), series in self.latency.items():
            if series.ok:
                counts[(plugin, hook, "ok")] = series.ok
        return counts

    def request_counts(self) -> dict[tuple[str, str, str], int]:
        """HTTP requests by (route, method, status), the status as its label value."""
        return {
            (route, method, str(status)): count
            for (route, method), series in self.requests.items()
            for status, count in series.statuses.items()
        }

    def _series(self, plugin: str, hook: str) -> _Latency:
        by_plugin = self._by_hook.get(hook)
        if by_plugin is None:
            by_plugin = self._by_hook[hook] = {}
        series = by_plugin.get(plugin)
        if series is None:
            series = by_plugin[plugin] = self.latency[(plugin, hook)] = _Latency()
        return series

    def watch_breakers(self, source: Callable[[], Iterable[BreakerSnapshot]]) -> None:
        """Export the breakers ``source`` returns at every scrape."""
        self.registry.register(_BreakerCollector(source))

    def observe(self, plugin: str, hook: str, outcome: str, seconds: float) -> None:
        """Count one plugin call and, when it ran, its duration (call from the event loop's thread)."""
        if outcome != "ok":
            key = (plugin, hook, outcome)
            self.outcomes[key] = self.outcomes.get(key, 0) + 1
            if outcome in _UNTIMED:
                return
        series = self._series(plugin, hook)
        if outcome == "ok":
            series.ok += 1
        series.buckets[bisect_left(CALL_BUCKETS, seconds)] += 1  # bucket i holds (bound[i-1], bound[i]]
        series.total += seconds

    def observe_ok(self, hook: str, calls: Iterable[tuple[str, float]]) -> None:
        """Count calls of ``hook`` that ended ``ok``, as ``(plugin, seconds)``: ``observe`` in a batch."""
        by_plugin = self._by_hook.get(hook) or {}
        for plugin, seconds in calls:
            series = by_plugin.get(plugin)
            if series is None:
                series = self._series(plugin, hook)
                by_plugin = self._by_hook[hook]
            series.ok += 1
            series.buckets[bisect_left(CALL_BUCKETS, seconds)] += 1
            series.total += seconds

    def observe_leftover(self, plugin: str, hook: str, outcome: str) -> None:
        """Count one task a call of ``plugin``'s ``hook`` left behind (on the event loop's thread)."""
        key = (plugin, hook, outcome)
        self.leftovers[key] = self.leftovers.get(key, 0) + 1

    def observe_stall(self, culprit: str, seconds: float) -> None:
        """Count one stall of the event loop that ``culprit``'s code held ``seconds`` (on its thread)."""
        count, total = self.stalls.get(culprit, (0, 0.0))
        self.stalls[culprit] = (count + 1, total + seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one HTTP request answered with ``status`` after ``seconds`` (on the event loop's thread)."""
        series = self.requests.get((route, method))
        if series is None:
            series = self.requests[(route, method)] = _Requests()
        statuses = series.statuses
        statuses[status] = statuses.get(status, 0) + 1
        series.buckets[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        series.total += seconds

    def render(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
