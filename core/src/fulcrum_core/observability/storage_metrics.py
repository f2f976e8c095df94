"""The plugins' storage use against their quotas, for ``/metrics``: read from the database at each scrape.

The usage rows are the database's, the same whichever worker is scraped, so they are added once to the
scrape's body rather than counted per worker. The read runs in the metrics' own threads and is waited
for at most :data:`READ_TIMEOUT_S`; while one is still out (a locked table, a database that stopped
answering), the next scrape starts none. Either way the gauges are left out, ``fulcrum_plugin_storage_up``
says 0, and the scrape of everything else still answers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from typing import Final

import anyio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fulcrum_core import host_threads
from fulcrum_core.data.db import Database
from fulcrum_core.data.quota import Usage, usage
from fulcrum_core.settings import Settings

__all__ = ["READ_TIMEOUT_S", "storage_metrics"]

log = logging.getLogger("fulcrum.metrics")

READ_TIMEOUT_S: Final = 2.0
"""How long a scrape waits for the usage rows: a database that is slow or locked must not hold the
scrape past Prometheus's own timeout (10 s by default) and lose every other metric with it."""

_GAUGES: Final = (
    ("documents", "fulcrum_plugin_storage_documents", "Documents each plugin keeps in its storage"),
    ("document_bytes", "fulcrum_plugin_storage_bytes", "Bytes of each plugin's documents (key, JSON: UTF-8)"),
    ("counters", "fulcrum_plugin_storage_counters", "Counters each plugin keeps in its storage"),
)
"""Each measure as its own gauge (counts and bytes are not one quantity), and its quota beside it."""

_GIVE_UP_S: Final = 60.0
"""A read out this long is taken for lost (its thread may never come back): the next scrape tries again.
So a database that stopped answering ties up at most one metrics thread a minute."""

_out: list[float] = []
"""When the usage read still out started (monotonic), if one is: a scrape then starts no second one."""


class _Storage(Collector):
    """Gauges of one read of the usage rows (``None``: it failed or did not come back in time)."""

    def __init__(self, held: list[Usage] | None, settings: Settings) -> None:
        self.held, self.settings = held, settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "fulcrum_plugin_storage_up", "1 when this scrape read the plugins' storage use, else 0"
        )
        up.add_metric([], 0 if self.held is None else 1)
        yield up
        if self.held is None:
            return
        for measure, name, text in _GAUGES:
            used = GaugeMetricFamily(name, text, labels=["plugin"])
            quota = GaugeMetricFamily(f"{name}_quota", "The most of it a plugin may keep", labels=["plugin"])
            for row in self.held:
                used.add_metric([row.plugin_id], getattr(row, measure))
                quota.add_metric([row.plugin_id], getattr(self.settings.quota_of(row.plugin_id), measure))
            yield used
            yield quota


def _read(db: Database, started: float) -> list[Usage]:
    """The usage rows; the in-flight mark goes when the read ends, however late."""
    try:
        return usage(db)
    finally:
        with contextlib.suppress(ValueError):  # given up on and replaced meanwhile
            _out.remove(started)


async def storage_metrics(db: Database, settings: Settings) -> bytes:
    """The storage gauges in the text format."""
    held: list[Usage] | None = None
    now = time.monotonic()
    if _out and now - _out[-1] < _GIVE_UP_S:
        log.warning("the last read of the plugins' storage use has not come back; left out of /metrics")
    else:
        _out[:] = [now]
        try:
            with anyio.move_on_after(READ_TIMEOUT_S):
                held = await host_threads.for_metrics(functools.partial(_read, db, now))
            if held is None:
                log.warning("the plugins' storage use took over %s s; left out of /metrics", READ_TIMEOUT_S)
        except Exception as exc:  # the database is down: the rest of the scrape still answers
            log.warning("cannot read the plugins' storage use for /metrics: %s", exc)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Storage(held, settings))
    return generate_latest(registry)
