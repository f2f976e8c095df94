"""Gone workers' counts folded into one archive file per type, so a kept metrics directory stays small.

A metrics directory kept across restarts (``FULCRUM_METRICS_DIR`` with ``--reuse-port`` processes)
gains a counter and a histogram file for every worker that ever ran. :func:`compact` sums the files
of workers that are gone into ``counter_archive.db`` and ``histogram_archive.db``, which
prometheus_client's merge reads like any other file of their type: totals stay, and the directory
holds two archives plus three files per running worker.

Compactions and scrapes take turns on the directory's lock (:func:`locked`), so a scrape never sees a
count twice or not at all. One that dies midway is finished or undone by the next holder of the lock:
the new archive is written beside the old one (``.db.new``), the files it took in are listed
(``.todo``), then it replaces the old one and those files are removed.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict

__all__ = ["ARCHIVED", "LOCK", "compact", "locked"]

ARCHIVED = ("counter", "histogram")
"""The file types whose counts outlive their worker (breaker states go with it)."""
LOCK = "compact.lock"
_COUNT_FILE = re.compile(r"(counter|histogram)_(\d+)(-\d+)?\.db")  # -n: a gone worker's, set aside


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s lock (blocks: run it off the event loop), after finishing or undoing a
    compaction that died midway."""
    with open(directory / LOCK, "a") as handle:  # "a" makes it if missing, never truncates
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for kind in ARCHIVED:
                _recover(directory, kind)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def compact(directory: Path, gone: Callable[[int], bool]) -> int:
    """Fold the count files of workers ``gone`` says have stopped (and any set aside) into the
    archives; how many files it folded. Hold :func:`locked`."""
    folding: dict[str, list[Path]] = {kind: [] for kind in ARCHIVED}
    for path in directory.glob("*.db"):
        match = _COUNT_FILE.fullmatch(path.name)
        if match is not None and (match.group(3) or gone(int(match.group(2)))):
            folding[match.group(1)].append(path)
    for kind, paths in folding.items():
        if paths:
            _fold(directory, kind, sorted(paths))
    return sum(map(len, folding.values()))


def _archive(directory: Path, kind: str) -> tuple[Path, Path, Path]:
    """The archive of ``kind``, the new one being written, and the list of files it takes in."""
    archive = directory / f"{kind}_archive.db"
    return archive, directory / f"{kind}_archive.db.new", directory / f"{kind}_archive.todo"


def _fold(directory: Path, kind: str, paths: list[Path]) -> None:
    archive, new, todo = _archive(directory, kind)
    totals: dict[str, list[float]] = {}
    for path in (archive, *paths) if archive.exists() else paths:
        if path.stat().st_size == 0:  # a worker killed between making its file and sizing it
            continue
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):  # type: ignore[no-untyped-call]
            totals.setdefault(key, []).append(value)
    new.unlink(missing_ok=True)
    written = MmapedDict(str(new))  # type: ignore[no-untyped-call]
    try:
        for key, values in totals.items():
            written.write_value(key, math.fsum(values), 0.0)  # type: ignore[no-untyped-call]
    finally:
        written.close()  # type: ignore[no-untyped-call]
    todo.write_text("".join(f"{path.name}\n" for path in paths))
    os.replace(new, archive)
    for path in paths:
        path.unlink(missing_ok=True)
    todo.unlink()


def _recover(directory: Path, kind: str) -> None:
    """A compaction of ``kind`` died: before replacing the archive, drop its new one (the files it
    was taking in are all there); after, remove the files the archive took in."""
    _, new, todo = _archive(directory, kind)
    if todo.exists():
        if not new.exists():
            for name in todo.read_text().split():
                (directory / Path(name).name).unlink(missing_ok=True)
        todo.unlink()
    new.unlink(missing_ok=True)
