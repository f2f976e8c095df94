"""The plugins' storage use against their quotas, for ``/metrics``: read from the database at each scrape.

The usage rows are the database's, the same whichever worker is scraped, so they are added once to the
scrape's body rather than counted per worker. A database that cannot be read leaves them out (and says
so in ``fulcrum_plugin_storage_up``): the scrape of everything else still answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Final

import anyio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fulcrum_core import host_threads
from fulcrum_core.data.db import Database
from fulcrum_core.data.quota import MEASURES, Usage, usage
from fulcrum_core.settings import Settings

__all__ = ["storage_metrics"]

log = logging.getLogger("fulcrum.metrics")


class _Storage(Collector):
    """Gauges of one read of the usage rows (``None``: it failed)."""

    def __init__(self, held: list[Usage] | None, settings: Settings) -> None:
        self.held, self.settings = held, settings

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "fulcrum_plugin_storage_up", "1 when this scrape could read the plugins' storage use, else 0"
        )
        up.add_metric([], 0 if self.held is None else 1)
        yield up
        if self.held is None:
            return
        used = GaugeMetricFamily(
            "fulcrum_plugin_storage_used", "What each plugin keeps in its storage, by measure "
            "(documents, document_bytes: key and JSON in UTF-8, counters)", labels=["plugin", "measure"],
        )
        quota = GaugeMetricFamily(
            "fulcrum_plugin_storage_quota", "The most each plugin may keep, by measure (its storage quota)",
            labels=["plugin", "measure"],
        )
        for row in self.held:
            limits = self.settings.quota_of(row.plugin_id)
            for measure in MEASURES:
                used.add_metric([row.plugin_id, measure], getattr(row, measure))
                quota.add_metric([row.plugin_id, measure], getattr(limits, measure))
        yield used
        yield quota


READ_TIMEOUT_S: Final = 2.0
"""How long a scrape waits for the usage rows: a database that is slow or locked must not hold the
scrape past Prometheus's own timeout (10 s by default) and lose every other metric with it."""


async def storage_metrics(db: Database, settings: Settings) -> bytes:
    """The storage gauges in the text format, the usage read in a worker thread (at most
    :data:`READ_TIMEOUT_S`)."""
    held: list[Usage] | None = None
    try:
        with anyio.move_on_after(READ_TIMEOUT_S):
            held = await host_threads.run_sync(usage, db, abandon_on_cancel=True)
        if held is None:
            log.warning("the plugins' storage use was not read in %s s; left out of /metrics", READ_TIMEOUT_S)
    except Exception as exc:  # the database is down: the rest of the scrape still answers
        log.warning("cannot read the plugins' storage use for /metrics: %s", exc)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Storage(held, settings))
    return generate_latest(registry)
