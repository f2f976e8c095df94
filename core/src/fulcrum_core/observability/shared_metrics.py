"""One host's workers as one ``/metrics``: each writes its counts to a shared directory, a scrape reads all.

Behind one port (``fulcrum serve --workers N``, or several ``--reuse-port`` processes) a scrape reaches
whichever worker accepts it, so per-worker counts would jump between scrapes. Each worker therefore
writes its counts in prometheus_client's multi-process files (``counter_<pid>.db``,
``histogram_<pid>.db``, ``gauge_livesum_<pid>.db``), and any worker answers a scrape with
prometheus_client's ``MultiProcessCollector`` merge of every file. The dispatcher and the app's entry
(HTTP requests, ``requests.py``) keep counting in plain lists on the loop thread (``metrics.py``); they
are copied to the files every ``metrics_share_seconds`` and right before the worker answers a scrape, so
another worker's calls and requests show within that interval.

Counts of a worker that stopped stay, so totals never go back when a worker is replaced: a worker
given the pid of a gone one (the kernel reuses pids) first moves that one's count files aside, and when
a worker starts and at each scrape the count files of gone workers are summed into one archive file
per type (``metrics_archive.py``), so a directory kept across restarts does not grow with each one.
Breaker states are a live sum, the number of workers whose breaker is in each state; a worker's are
dropped when it stops, or at the next scrape when its process is gone.

The directory must never cost a request or a scrape: a removed directory is made again and this
worker's counts written anew, a file another worker has only just created (still empty) is skipped,
and a directory that cannot be used leaves the scrape to this worker's own counts, with the reason
in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from fulcrum_core import host_threads
from fulcrum_core.dispatch.breaker import BreakerSnapshot, BreakerState
from fulcrum_core.dispatch.leftovers import host_task
from fulcrum_core.observability.metrics import (
    BREAKER_HELP,
    CALL_BUCKETS,
    CALLS_HELP,
    LATENCY_HELP,
    LEFTOVERS_HELP,
    REQUEST_BUCKETS,
    REQUEST_LATENCY_HELP,
    REQUESTS_HELP,
    STALLED_HELP,
    STALLS_HELP,
    Metrics,
)
from fulcrum_core.observability.metrics_archive import compact, locked
from fulcrum_core.observability.processes import alive

__all__ = ["MetricsShare"]

_log = logging.getLogger("fulcrum.metrics")

_UNUSABLE = (OSError, ValueError, RuntimeError, struct.error)
"""A directory that cannot be written, or another worker's file that cannot be read (yet)."""
_LIVE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db$")
_SAMPLES = {  # sample → its file, metric, label names and help text
    "fulcrum_plugin_call_seconds_bucket": (
        "histogram", "fulcrum_plugin_call_seconds", ["plugin", "hook", "le"], LATENCY_HELP
    ),
    "fulcrum_plugin_call_seconds_sum": (
        "histogram", "fulcrum_plugin_call_seconds", ["plugin", "hook"], LATENCY_HELP
    ),
    "fulcrum_plugin_calls_total": (
        "counter", "fulcrum_plugin_calls", ["plugin", "hook", "outcome"], CALLS_HELP
    ),
    "fulcrum_plugin_leftover_tasks_total": (
        "counter", "fulcrum_plugin_leftover_tasks", ["plugin", "hook", "outcome"], LEFTOVERS_HELP
    ),
    "fulcrum_event_loop_stalls_total": ("counter", "fulcrum_event_loop_stalls", ["culprit"], STALLS_HELP),
    "fulcrum_event_loop_stalled_seconds_total": (
        "counter", "fulcrum_event_loop_stalled_seconds", ["culprit"], STALLED_HELP
    ),
    "fulcrum_http_request_seconds_bucket": (
        "histogram", "fulcrum_http_request_seconds", ["route", "method", "le"], REQUEST_LATENCY_HELP
    ),
    "fulcrum_http_request_seconds_sum": (
        "histogram", "fulcrum_http_request_seconds", ["route", "method"], REQUEST_LATENCY_HELP
    ),
    "fulcrum_http_requests_total": (
        "counter", "fulcrum_http_requests", ["route", "method", "status"], REQUESTS_HELP
    ),
    "fulcrum_breaker_state": (
        "gauge_livesum", "fulcrum_breaker_state", ["plugin", "hook", "state"], BREAKER_HELP
    ),
}
_LE = tuple(floatToGoString(bound) for bound in (*CALL_BUCKETS, float("inf")))  # type: ignore[no-untyped-call]
_REQUEST_LE = tuple(
    floatToGoString(bound) for bound in (*REQUEST_BUCKETS, float("inf"))  # type: ignore[no-untyped-call]
)


class MetricsShare:
    """This worker's part of a shared metrics directory; ``render()`` is the whole host's scrape body."""

    def __init__(
        self,
        directory: str | Path,
        metrics: Metrics,
        breakers: Callable[[], Iterable[BreakerSnapshot]],
        *,
        every: float = 1.0,
        pid: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.pid = os.getpid() if pid is None else pid
        self._metrics = metrics
        self._breakers = breakers
        self._every = every
        self._files: dict[str, MmapedDict] = {}
        # (sample, *label values) → value last written, so a flush writes only changes
        self._written: dict[tuple[str, ...], float] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # the periodic write failed last time (logged once, not every interval)
        self.registry = CollectorRegistry()
        self.registry.register(_Merged(self))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with locked(self.directory):
                self._take_over_pid()
                self._fold_gone_workers()
        except _UNUSABLE:
            _log.warning("cannot use %s for the shared metrics", self.directory, exc_info=True)

    def _path(self, name: str) -> Path:
        return self.directory / f"{name}_{self.pid}.db"

    def _take_over_pid(self) -> None:
        """Files under this pid are a gone process's: keep its counts under another name (writing over
        them would send totals back), and drop its breaker states."""
        for name in ("counter", "histogram"):
            path = self._path(name)
            if path.exists():
                n = 1
                while (aside := self.directory / f"{name}_{self.pid}-{n}.db").exists():
                    n += 1
                path.rename(aside)
        mark_process_dead(self.pid, str(self.directory))  # type: ignore[no-untyped-call]

    def _file(self, name: str) -> MmapedDict:
        opened = self._files.get(name)
        if opened is None:
            opened = self._files[name] = MmapedDict(str(self._path(name)))  # type: ignore[no-untyped-call]
        return opened

    def _reopen_if_removed(self) -> None:
        """The directory or a file of this worker was removed: make it again and write everything anew."""
        if all(self._path(name).exists() for name in self._files):
            return
        for opened in self._files.values():
            opened.close()  # type: ignore[no-untyped-call]
        self._files.clear()
        self._written.clear()
        self.directory.mkdir(parents=True, exist_ok=True)

    def _write(self, sample: str, values: tuple[str, ...], value: float) -> None:
        """Write one sample if it changed; its file key (JSON) is made only then, as a flush runs on the
        event loop every interval over every series."""
        written = (sample, *values)
        if self._written.get(written) != value:
            name, metric, labels, help_text = _SAMPLES[sample]
            key = mmap_key(metric, sample, labels, list(values), help_text)
            self._file(name).write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
            self._written[written] = value

    def flush(self) -> None:
        """Copy this worker's counts and breaker states to its files (on the event loop's thread)."""
        self._reopen_if_removed()
        for (plugin, hook), series in self._metrics.latency.items():
            for le, count in zip(_LE, series.buckets, strict=True):
                self._write("fulcrum_plugin_call_seconds_bucket", (plugin, hook, le), float(count))
            self._write("fulcrum_plugin_call_seconds_sum", (plugin, hook), series.total)
        for (plugin, hook, outcome), count in self._metrics.call_counts().items():
            self._write("fulcrum_plugin_calls_total", (plugin, hook, outcome), float(count))
        for (plugin, hook, outcome), count in self._metrics.leftovers.items():
            self._write("fulcrum_plugin_leftover_tasks_total", (plugin, hook, outcome), float(count))
        for culprit, (stalls, seconds) in self._metrics.stalls.items():
            self._write("fulcrum_event_loop_stalls_total", (culprit,), float(stalls))
            self._write("fulcrum_event_loop_stalled_seconds_total", (culprit,), seconds)
        for (route, method), requests in self._metrics.requests.items():
            for le, count in zip(_REQUEST_LE, requests.buckets, strict=True):
                self._write("fulcrum_http_request_seconds_bucket", (route, method, le), float(count))
            self._write("fulcrum_http_request_seconds_sum", (route, method), requests.total)
        for (route, method, status), count in self._metrics.request_counts().items():
            self._write("fulcrum_http_requests_total", (route, method, status), float(count))
        for snap in self._breakers():
            plugin, _, hook = snap.name.partition(":")
            for each in BreakerState:
                self._write("fulcrum_breaker_state", (plugin, hook, each.value), float(snap.state is each))

    def render(self) -> bytes:
        """The Prometheus text of every worker sharing the directory, this one's counts up to date; this
        worker's own if the directory cannot be used."""
        try:
            self.flush()
            return self._merged()
        except _UNUSABLE:
            return self._own_instead()

    async def arender(self) -> bytes:
        """:meth:`render` for the event loop: this worker's counts are written on the loop, and every
        worker's files are read in a thread (about 0.1 s for four workers of 150 series each)."""
        try:
            self.flush()
            return await host_threads.for_metrics(self._merged)
        except _UNUSABLE:
            return self._own_instead()

    def _merged(self) -> bytes:
        with locked(self.directory):
            self._fold_gone_workers()
            return generate_latest(self.registry)

    def _own_instead(self) -> bytes:
        _log.warning(
            "cannot use the shared metrics in %s: answering this worker's own", self.directory, exc_info=True
        )
        return self._metrics.render()

    def _fold_gone_workers(self) -> None:
        """Drop the breaker states of workers whose process is gone (one that crashed never said so),
        and fold their counts into the archives (``metrics_archive.py``): work only when one is gone."""
        compact(self.directory, lambda pid: pid != self.pid and not alive(pid))
        for path in glob.glob(str(self.directory / "gauge_live*_*.db")):
            match = _LIVE_FILE.search(path)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid != self.pid and not alive(pid):
                mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    async def start(self) -> None:
        """Flush every ``every`` seconds until :meth:`stop` (the app's startup hook)."""
        self._flush_logged()
        self._task = host_task(self._run(), name="fulcrum-metrics-share")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self._flush_logged()

    def _flush_logged(self) -> None:
        """:meth:`flush`; a failure (a full disk, an unwritable directory) is logged when it starts and
        when it ends, and must not stop the worker."""
        try:
            self.flush()
        except OSError:
            if not self._failing:
                _log.warning("could not write the shared metrics to %s", self.directory, exc_info=True)
            self._failing = True
            return
        if self._failing:
            _log.warning("writing the shared metrics to %s again", self.directory)
        self._failing = False

    async def stop(self) -> None:
        """End the periodic writes, then :meth:`close` (the app's shutdown hook)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.close()

    def close(self) -> None:
        """Write the last counts, take this worker's breaker states out, and close the files."""
        with contextlib.suppress(OSError):
            self.flush()
        for opened in self._files.values():
            opened.close()  # type: ignore[no-untyped-call]
        self._files.clear()
        self._written.clear()
        with contextlib.suppress(OSError):
            mark_process_dead(self.pid, str(self.directory))  # type: ignore[no-untyped-call]


class _Merged(Collector):
    """prometheus_client's multi-process merge of the directory, metric families sorted by name."""

    def __init__(self, share: MetricsShare) -> None:
        self._share = share

    def collect(self) -> Iterator[Metric]:
        files = [path for path in glob.glob(str(self._share.directory / "*.db")) if _begun(path)]
        merged = MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
        yield from sorted(merged, key=lambda metric: metric.name)


def _begun(path: str) -> bool:
    """Whether ``path`` has its first page: a worker creates its file empty, then sizes it."""
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:  # a gone worker's breaker states, removed since the listing
        return False
