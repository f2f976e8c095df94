"""``metrics_dir``: the workers of one host write their counts to one directory, and a scrape of any
worker reports them all (prometheus_client's multi-process files and merge)."""

from __future__ import annotations

import asyncio
import operator
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.dispatch.breaker import BreakerSnapshot, BreakerState
from fulcrum_core.observability.metrics import Metrics
from fulcrum_core.observability.shared_metrics import MetricsShare
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.anyio

HOOK = ("hook", "home_slot_offers")
CALLS = "fulcrum_plugin_calls_total"


def _samples(text: bytes | str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body = text.decode() if isinstance(text, bytes) else text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def _ok(plugin: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return CALLS, frozenset({("plugin", plugin), HOOK, ("outcome", "ok")})


def _state(plugin: str, state: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return "fulcrum_breaker_state", frozenset({("plugin", plugin), HOOK, ("state", state)})


_OPEN: list[MetricsShare] = []


@pytest.fixture(autouse=True)
def _close_shares() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


class _Worker:
    """One worker's metrics and breakers, sharing ``directory`` under ``pid`` (closed after the test)."""

    def __init__(self, directory: Path, pid: int) -> None:
        self.metrics = Metrics()
        self.breakers: dict[str, BreakerState] = {}
        self.metrics.watch_breakers(self._snapshots)  # as the app's are
        self.share = MetricsShare(directory, self.metrics, self._snapshots, pid=pid, every=0.01)
        _OPEN.append(self.share)

    def _snapshots(self) -> list[BreakerSnapshot]:
        return [
            BreakerSnapshot(
                name=f"{plugin}:home_slot_offers", state=state, buffered_calls=0, failed_calls=0,
                slow_calls=0, failure_rate=None, slow_call_rate=None, not_permitted_calls=0,
            )
            for plugin, state in self.breakers.items()
        ]

    def calls(self, plugin: str, count: int, outcome: str = "ok") -> None:
        for _ in range(count):
            self.metrics.observe(plugin, "home_slot_offers", outcome, 0.002)


_CRASHING_WORKER = """
import os, sys
from fulcrum_core.dispatch.breaker import BreakerSnapshot, BreakerState
from fulcrum_core.observability.metrics import Metrics
from fulcrum_core.observability.shared_metrics import MetricsShare
metrics = Metrics()
for _ in range(3):
    metrics.observe("merchant", "home_slot_offers", "ok", 0.002)
closed = BreakerSnapshot(
    name="merchant:home_slot_offers", state=BreakerState.CLOSED, buffered_calls=0, failed_calls=0,
    slow_calls=0, failure_rate=None, slow_call_rate=None, not_permitted_calls=0,
)
MetricsShare(sys.argv[1], metrics, lambda: [closed]).flush()
print(os.getpid(), flush=True)
os._exit(0)  # dies without stopping
"""


def _crashed_worker(directory: Path) -> int:
    """Run a worker process that writes 3 ok calls and a closed breaker, then dies; its pid."""
    process = subprocess.run(
        [sys.executable, "-c", _CRASHING_WORKER, str(directory)], check=True, capture_output=True, text=True
    )
    return int(process.stdout)


def test_a_scrape_of_one_worker_reports_every_worker(tmp_path: Path) -> None:
    """Counts, latency and breaker states of two workers add up in a scrape of either."""
    one, two = _Worker(tmp_path, os.getpid()), _Worker(tmp_path, os.getppid())
    one.calls("merchant", 3)
    one.calls("pension", 1, "timeout")
    two.calls("merchant", 4)
    one.breakers = {"merchant": BreakerState.CLOSED}
    two.breakers = {"merchant": BreakerState.OPEN}
    two.share.flush()  # what its periodic write does
    samples = _samples(one.share.render())
    assert samples[_ok("merchant")] == 7
    timeouts = (CALLS, frozenset({("plugin", "pension"), HOOK, ("outcome", "timeout")}))
    assert samples[timeouts] == 1
    latency = frozenset({("plugin", "merchant"), HOOK})
    assert samples[("fulcrum_plugin_call_seconds_count", latency)] == 7
    assert samples[("fulcrum_plugin_call_seconds_sum", latency)] == pytest.approx(0.014)
    assert samples[("fulcrum_plugin_call_seconds_bucket", latency | {("le", "0.0025")})] == 7
    assert samples[("fulcrum_plugin_call_seconds_bucket", latency | {("le", "0.001")})] == 0
    assert samples[_state("merchant", "open")] == 1
    assert samples[_state("merchant", "closed")] == 1
    assert _samples(two.share.render()) == samples


def test_http_requests_add_up_across_workers(tmp_path: Path) -> None:
    """Requests by route, method and status, and their latency histogram, of two workers add up in a
    scrape of either."""
    one, two = _Worker(tmp_path, os.getpid()), _Worker(tmp_path, os.getppid())
    for seconds in (0.02, 0.3):
        one.metrics.observe_request("/v1/home", "GET", 200, seconds)
    one.metrics.observe_request("/v1/home", "GET", 429, 0.001)
    two.metrics.observe_request("/v1/home", "GET", 200, 0.45)
    two.metrics.observe_request("unmatched", "GET", 404, 0.001)
    two.share.flush()
    samples = _samples(one.share.render())
    home = frozenset({("route", "/v1/home"), ("method", "GET")})
    requests = "fulcrum_http_requests_total"
    assert samples[(requests, home | {("status", "200")})] == 3
    assert samples[(requests, home | {("status", "429")})] == 1
    assert samples[(requests, frozenset({("route", "unmatched"), ("method", "GET"), ("status", "404")}))] == 1
    assert samples[("fulcrum_http_request_seconds_count", home)] == 4
    assert samples[("fulcrum_http_request_seconds_sum", home)] == pytest.approx(0.771)
    assert samples[("fulcrum_http_request_seconds_bucket", home | {("le", "0.3")})] == 3
    assert samples[("fulcrum_http_request_seconds_bucket", home | {("le", "0.4")})] == 3
    assert samples[("fulcrum_http_request_seconds_bucket", home | {("le", "0.5")})] == 4
    assert _samples(two.share.render()) == samples


def test_tasks_plugins_left_behind_add_up_across_workers(tmp_path: Path) -> None:
    """``fulcrum_plugin_leftover_tasks_total`` of two workers adds up in a scrape of either, as the
    call counts do, and stays when one of them is gone."""
    one, two = _Worker(tmp_path, os.getpid()), _Worker(tmp_path, os.getppid())
    for worker, cancelled in ((one, 2), (two, 3)):
        for _ in range(cancelled):
            worker.metrics.observe_leftover("merchant", "home_slot_offers", "cancelled")
    two.metrics.observe_leftover("merchant", "home_slot_offers", "error")
    two.share.flush()
    samples = _samples(one.share.render())
    left = frozenset({("plugin", "merchant"), HOOK})
    assert samples[("fulcrum_plugin_leftover_tasks_total", left | {("outcome", "cancelled")})] == 5
    assert samples[("fulcrum_plugin_leftover_tasks_total", left | {("outcome", "error")})] == 1
    assert _samples(two.share.render()) == samples


def test_stalls_of_the_event_loop_add_up_across_workers(tmp_path: Path) -> None:
    """``fulcrum_event_loop_stalls_total`` and ``..._stalled_seconds_total`` of two workers add up by
    culprit in a scrape of either."""
    one, two = _Worker(tmp_path, os.getpid()), _Worker(tmp_path, os.getppid())
    one.metrics.observe_stall("merchant", 0.5)
    two.metrics.observe_stall("merchant", 0.25)
    two.metrics.observe_stall("host", 0.125)
    two.share.flush()
    samples = _samples(one.share.render())
    merchant, host = frozenset({("culprit", "merchant")}), frozenset({("culprit", "host")})
    assert samples[("fulcrum_event_loop_stalls_total", merchant)] == 2
    assert samples[("fulcrum_event_loop_stalled_seconds_total", merchant)] == 0.75
    assert samples[("fulcrum_event_loop_stalls_total", host)] == 1
    assert samples[("fulcrum_event_loop_stalled_seconds_total", host)] == 0.125
    assert _samples(two.share.render()) == samples


def test_a_scrape_is_up_to_date_for_the_worker_answering_it(tmp_path: Path) -> None:
    """The answering worker writes its counts first; another's show once it has written them."""
    one, two = _Worker(tmp_path, os.getpid()), _Worker(tmp_path, os.getppid())
    one.calls("merchant", 1)
    two.share.flush()
    assert _samples(one.share.render())[_ok("merchant")] == 1
    one.calls("merchant", 1)
    two.calls("merchant", 5)
    assert _samples(one.share.render())[_ok("merchant")] == 2
    two.share.flush()
    assert _samples(one.share.render())[_ok("merchant")] == 7


def test_a_gone_workers_counts_stay_and_its_breaker_states_go(tmp_path: Path) -> None:
    """Totals never go back when a worker is replaced; only live workers' breakers are shown."""
    alive = _Worker(tmp_path, os.getpid())
    alive.breakers = {"merchant": BreakerState.CLOSED}
    alive.calls("merchant", 2)
    gone = _crashed_worker(tmp_path)
    assert list(tmp_path.glob(f"gauge_live*_{gone}.db"))
    samples = _samples(alive.share.render())
    assert samples[_ok("merchant")] == 5
    assert samples[_state("merchant", "closed")] == 1
    assert not list(tmp_path.glob(f"gauge_live*_{gone}.db"))
    assert not list(tmp_path.glob(f"*_{gone}.db"))  # its counts are in the archives now
    assert (tmp_path / "counter_archive.db").exists()


def _totals(share: MetricsShare) -> tuple[float, float, float, float]:
    """merchant's ok calls, histogram count, 2.5 ms bucket and sum, as one scrape reports them."""
    samples = _samples(share.render())
    latency = frozenset({("plugin", "merchant"), HOOK})
    return (
        samples[_ok("merchant")],
        samples[("fulcrum_plugin_call_seconds_count", latency)],
        samples[("fulcrum_plugin_call_seconds_bucket", latency | {("le", "0.0025")})],
        samples[("fulcrum_plugin_call_seconds_sum", latency)],
    )


def test_restarts_on_a_kept_directory_leave_a_bounded_number_of_files_and_every_count(
    tmp_path: Path,
) -> None:
    """Each worker that stops leaves its counts; when the next starts, or at a scrape, those of gone
    workers are summed into one archive per type: the directory does not grow with each restart, and
    totals never go back nor count anything twice."""
    restarts = 5
    for _ in range(restarts):
        _crashed_worker(tmp_path)  # 3 merchant calls of 2 ms; folds the ones before it as it starts
        names = {path.name for path in tmp_path.glob("*.db")}
        assert len(names) <= 5, names  # two archives, and the last worker's three files
    scraper = _Worker(tmp_path, os.getpid())
    calls, count, bucket, total = _totals(scraper.share)
    assert (calls, count, bucket) == (3 * restarts,) * 3
    assert total == pytest.approx(0.002 * 3 * restarts)
    archives = ["counter_archive.db", "histogram_archive.db"]
    assert sorted(path.name for path in tmp_path.glob("*.db")) == archives
    scraper.calls("merchant", 1)
    assert _totals(scraper.share)[:3] == (3 * restarts + 1,) * 3
    assert len(list(tmp_path.glob("*.db"))) == 4  # and the scraper's own two


class _Died(BaseException):
    """A compaction's process killed at this point (nothing after it runs)."""


@pytest.mark.parametrize("dies", ["before", "after"])
def test_a_compaction_that_died_midway_is_undone_or_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dies: str
) -> None:
    """Killed before its new archive replaced the old, or after but before removing the files it took
    in: the next scrape counts every call once."""
    from fulcrum_core.observability import metrics_archive

    scraper = _Worker(tmp_path, os.getpid())
    scraper.calls("merchant", 2)
    _crashed_worker(tmp_path)
    _crashed_worker(tmp_path)  # the first is folded into the archives, the second is not yet
    replace = os.replace

    def killed(source: Any, target: Any) -> None:
        if dies == "after":
            replace(source, target)
        raise _Died

    monkeypatch.setattr(metrics_archive.os, "replace", killed)
    with pytest.raises(_Died):
        scraper.share.render()
    monkeypatch.undo()
    assert _totals(scraper.share)[:3] == (8, 8, 8)
    assert _totals(scraper.share)[:3] == (8, 8, 8)
    own = {f"counter_{os.getpid()}.db", f"histogram_{os.getpid()}.db"}
    archives = {"counter_archive.db", "histogram_archive.db"}
    assert {path.name for path in tmp_path.iterdir()} == {"compact.lock", *archives, *own}


async def test_a_worker_writes_on_its_own_and_its_last_counts_when_it_stops(tmp_path: Path) -> None:
    """``start`` writes every interval; ``stop`` writes the last counts and takes the breakers out."""
    reader = _Worker(tmp_path, os.getpid())
    writer = _Worker(tmp_path, os.getppid())
    writer.breakers = {"merchant": BreakerState.HALF_OPEN}
    await writer.share.start()
    writer.calls("merchant", 2)
    for _ in range(200):
        if _samples(reader.share.render()).get(_ok("merchant")) == 2:
            break
        await asyncio.sleep(0.01)
    assert _samples(reader.share.render())[_state("merchant", "half_open")] == 1
    writer.calls("merchant", 1)
    await writer.share.stop()
    samples = _samples(reader.share.render())
    assert samples[_ok("merchant")] == 3
    assert _state("merchant", "half_open") not in samples


async def test_a_failing_write_is_logged_and_the_worker_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk must not end the periodic writes, nor the worker."""
    worker = _Worker(tmp_path, os.getpid())
    await worker.share.start()
    failures = 0

    def full(*args: Any) -> None:
        nonlocal failures
        failures += 1
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(worker.share, "flush", full)
    for _ in range(200):
        if failures >= 2:
            break
        await asyncio.sleep(0.01)
    assert failures >= 2
    assert "could not write the shared metrics" in caplog.text
    monkeypatch.undo()
    await worker.share.stop()


def test_the_app_answers_a_scrape_for_every_worker_sharing_its_directory(
    make_app: Any, kit: Any, tmp_path: Path
) -> None:
    """With ``metrics_dir`` set, ``/metrics`` adds another worker's counts to this app's own."""
    shared = tmp_path / "metrics"
    app = make_app(
        kit.plugin("good", home_slot_offers=lambda ctx: [kit.offer("home.banner", "b")]),
        metrics_dir=str(shared),
    )
    other = _Worker(shared, os.getppid())
    other.calls("good", 40)
    other.share.flush()
    assert app.get("/v1/home").status_code == 200
    token = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    response = app.get("/metrics", token=token)
    assert response.status_code == 200
    samples = _samples(response.text)
    assert samples[_ok("good")] == 41
    assert samples[_state("good", "closed")] == 1
    home = frozenset({("route", "/v1/home"), ("method", "GET"), ("status", "200")})
    assert samples[("fulcrum_http_requests_total", home)] == 1


def test_a_worker_given_a_gone_workers_pid_adds_to_its_counts(tmp_path: Path) -> None:
    """The kernel reuses pids (a container restarted on a kept directory): the new worker's counts go on
    from the gone one's, and the gone one's breaker states go, instead of overwriting them."""
    pid = _crashed_worker(tmp_path)  # 3 merchant calls, a closed merchant breaker
    heir = _Worker(tmp_path, pid)  # its own scrape leaves its pid's breaker file to it
    heir.calls("merchant", 1)
    samples = _samples(heir.share.render())
    assert samples[_ok("merchant")] == 4
    latency = frozenset({("plugin", "merchant"), HOOK})
    assert samples[("fulcrum_plugin_call_seconds_count", latency)] == 4
    assert _state("merchant", "closed") not in samples


def test_a_removed_directory_is_made_again_and_a_scrape_still_answers(tmp_path: Path) -> None:
    """Removing the directory under a running host (a /tmp cleaner) must not make /metrics a 500; the
    workers write their counts to it again."""
    shared = tmp_path / "metrics"
    one, two = _Worker(shared, os.getpid()), _Worker(shared, os.getppid())
    one.calls("merchant", 2)
    two.calls("merchant", 3)
    two.share.flush()
    assert _samples(one.share.render())[_ok("merchant")] == 5
    shutil.rmtree(shared)
    one.breakers = {"merchant": BreakerState.OPEN}
    one.calls("merchant", 1)
    assert _samples(one.share.render())[_ok("merchant")] == 3
    two.share.flush()
    samples = _samples(one.share.render())
    assert samples[_ok("merchant")] == 6
    assert samples[_state("merchant", "open")] == 1


def test_a_file_being_made_is_skipped(tmp_path: Path) -> None:
    """A worker's file is empty between its creation and its first page (a scrape racing a worker's
    first write, or one killed then): the scrape reads the others, never a 500."""
    one = _Worker(tmp_path, os.getpid())
    one.calls("merchant", 2)
    (tmp_path / "counter_999999.db").touch()
    assert _samples(one.share.render())[_ok("merchant")] == 2


def test_a_directory_that_cannot_be_used_leaves_the_scrape_to_this_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file in the way of the directory: the worker starts, and a scrape answers its own counts (the
    reason in the log), as without ``metrics_dir``."""
    blocked = tmp_path / "file"
    blocked.write_text("")
    worker = _Worker(blocked / "metrics", os.getpid())
    worker.calls("merchant", 2)
    worker.breakers = {"merchant": BreakerState.CLOSED}
    samples = _samples(worker.share.render())
    assert samples[_ok("merchant")] == 2
    assert samples[_state("merchant", "closed")] == 1
    assert "shared metrics" in caplog.text


def test_a_flush_encodes_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush runs on the event loop every interval over every series: one where nothing changed must
    not encode each sample's key again (21 ms for 150 series on a busy host, against 4)."""
    from fulcrum_core.observability import shared_metrics

    worker = _Worker(tmp_path, os.getpid())
    worker.breakers = {"merchant": BreakerState.CLOSED}
    worker.calls("merchant", 2)
    worker.share.flush()
    encoded: list[str] = []
    encode = shared_metrics.mmap_key

    def counting(*args: Any) -> str:
        encoded.append(args[1])
        return encode(*args)

    monkeypatch.setattr(shared_metrics, "mmap_key", counting)
    worker.share.flush()
    assert encoded == []
    worker.calls("merchant", 1)
    worker.share.flush()
    assert sorted(encoded) == [
        "fulcrum_plugin_call_seconds_bucket", "fulcrum_plugin_call_seconds_sum", "fulcrum_plugin_calls_total"
    ]
    assert _samples(worker.share.render())[_ok("merchant")] == 3


def test_the_app_reads_the_other_workers_files_off_the_event_loop(
    make_app: Any, kit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading every worker's files takes a while with many series: a scrape does it in a thread, and
    writes this worker's own counts on the loop (where they are counted) before."""
    seen: dict[str, str] = {}
    merged = MetricsShare._merged
    flush = MetricsShare.flush

    def merged_where(self: MetricsShare) -> bytes:
        seen["merge"] = threading.current_thread().name
        return merged(self)

    def flush_where(self: MetricsShare) -> None:
        seen["flush"] = threading.current_thread().name
        flush(self)

    async def on_the_loop(ctx: Any) -> list[Any]:  # an async hook runs on the app's event loop
        seen["loop"] = threading.current_thread().name
        return []

    app = make_app(kit.plugin("good", home_slot_offers=on_the_loop), metrics_dir=str(tmp_path / "m"))
    assert app.get("/v1/home").status_code == 200
    monkeypatch.setattr(MetricsShare, "_merged", merged_where)
    monkeypatch.setattr(MetricsShare, "flush", flush_where)
    token = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    assert app.get("/metrics", token=token).status_code == 200
    assert seen["flush"] == seen["loop"]
    assert seen["merge"] != seen["loop"]


_README = Path(__file__).resolve().parents[2] / "README.md"
_RULE = re.compile(r"(\w+)\{(.*?)\}\s*(>=|==|>)\s*([0-9.]+)")
_COMPARE: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "==": operator.eq}


def _fires(expr: str, body: bytes) -> bool:
    """Whether a ``metric{label="value",...} OP number`` alert matches a sample of the scrape ``body``."""
    rule = _RULE.fullmatch(expr.strip())
    assert rule is not None, expr
    name, matchers, op, bound = rule.groups()
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', matchers))
    return any(
        labels >= frozenset(wanted.items()) and _COMPARE[op](value, float(bound))
        for (sample, labels), value in _samples(body).items()
        if sample == name
    )


def test_the_documented_breaker_alert_fires_whatever_the_number_of_workers_with_it_open(
    tmp_path: Path,
) -> None:
    """The gauge counts the workers in each state: the README's alert must fire for one worker with
    the breaker open and for two (where ``== 1`` would not), and not when every breaker is closed."""
    [expr] = re.findall(r"alert: FulcrumPluginBreakerOpen\n\s+expr: (.+)\n", _README.read_text())
    one, two = _Worker(tmp_path, os.getpid()), _Worker(tmp_path, os.getppid())
    for states, fires in [
        ((BreakerState.CLOSED, BreakerState.CLOSED), False),
        ((BreakerState.OPEN, BreakerState.CLOSED), True),
        ((BreakerState.OPEN, BreakerState.OPEN), True),
    ]:
        one.breakers, two.breakers = {"merchant": states[0]}, {"merchant": states[1]}
        two.share.flush()
        body = one.share.render()
        assert _fires(expr, body) is fires, (states, body.decode())
    assert not _fires('fulcrum_breaker_state{state="open"} == 1', body)  # why not == 1


def test_a_file_named_with_a_number_no_pid_can_be_is_a_gone_workers(tmp_path: Path) -> None:
    """``os.kill`` raises OverflowError for such a number: a scrape must still answer, not fail."""
    gone = _crashed_worker(tmp_path)  # 3 merchant calls, a closed merchant breaker
    for path in tmp_path.glob(f"*_{gone}.db"):
        path.rename(path.with_name(path.name.replace(str(gone), "99999999999999")))
    worker = _Worker(tmp_path, os.getpid())
    worker.calls("merchant", 1)
    samples = _samples(worker.share.render())
    assert samples[_ok("merchant")] == 4
    assert _state("merchant", "closed") not in samples
    assert not list(tmp_path.glob("*_99999999999999.db"))
