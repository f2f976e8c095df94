"""A thread pool whose threads are daemons, so a thread hung in a plugin cannot keep a stopping process alive.

``concurrent.futures.ThreadPoolExecutor`` joins every thread it started when the interpreter exits: one
plugin call hung in such a thread (a blocking client without a timeout) kept a worker alive after its
server stopped, until the process manager killed it. :class:`DaemonThreadPool` starts its threads
lazily, up to ``max_workers``, as daemons nothing joins at exit; ``submit`` and ``shutdown(wait,
cancel_futures)`` behave as the standard pool's. A stopping host gives its threads a bounded time to
finish (:func:`joined`) instead of an unbounded one.

A thread cannot be stopped either while it runs: a call its caller gave up on (a plugin hung in a
blocking client) holds it until it returns, which may be never. The dispatcher tells the pool of each
such thread (:meth:`DaemonThreadPool.lend`), and the pool may start as many more, up to ``ceiling``, so
that a few hung plugins do not leave every other plugin's calls queued behind them; once the hung calls
return, the threads beyond ``max_workers`` end as they fall idle. A pool made with ``lend_on_cancel``
lends a thread whenever its caller cancels the job it runs, as asyncio does for a ``to_thread`` call
whose awaiting task was cancelled (the event loop's default executor: a plugin's hook cut off at its
deadline while it waited for a blocking client in ``asyncio.to_thread``).

Such a pool may also be told who submits each job (``owner``, a plugin's id) and give each submitter a
``share`` of the loans: one whose jobs hold that many lent threads gets no more threads until one of
them returns, and its next job fails at once with :class:`ThreadShareUsed` instead of queueing. So one
plugin hung in ``asyncio.to_thread`` cannot lend itself up to the ceiling and leave every other
plugin's ``to_thread`` calls queued behind its own (as the dispatcher's pool gives each plugin a share
of its threads).
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

__all__ = ["DaemonThreadPool", "ThreadShareUsed", "joined"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]
_POLL_S = 0.02
_pools = itertools.count()


class ThreadShareUsed(RuntimeError):
    """A job refused because its submitter's earlier jobs, given up by their callers, hold its share of
    the pool's threads (they cannot be stopped): none more until one returns."""


class _Size:
    """How many threads a pool runs and may run, shared with its threads (which end when over ``most``)."""

    __slots__ = ("base", "ceiling", "idle", "lent", "lent_by", "live", "lock", "most", "queued")

    def __init__(self, base: int, ceiling: int) -> None:
        self.lock = threading.Lock()
        self.base = base
        self.ceiling = max(base, ceiling)
        self.lent = 0  # threads held by calls nobody waits for
        self.most = base
        self.live = 0  # threads started and not ended
        self.idle = 0  # of those, the ones waiting for a job
        self.queued = 0  # jobs no thread has taken yet
        self.lent_by: dict[str, int] = {}  # lent threads by the owner of the job that holds them

    def lend(self, threads: int, owner: str | None = None) -> None:
        """``threads`` more (fewer) lent, by ``owner``'s jobs if known: how many threads may run follows
        (lock held)."""
        self.lent += threads
        self.most = min(self.base + max(0, self.lent), self.ceiling)
        if owner is not None:
            if (left := self.lent_by.get(owner, 0) + threads) > 0:
                self.lent_by[owner] = left
            else:
                self.lent_by.pop(owner, None)


class _Cancellable(Future[Any]):
    """A job's future whose ``cancel()``, when the job already runs, lends its thread until it returns.

    The thread that may start in its place takes work already queued: on an event loop, once the loop has
    finished what it is doing (a deadline that cancels this call may withdraw others queued with it in
    the same pass, and those must never run), else at once."""

    def __init__(self, size: _Size, start_queued: Callable[[], object], owner: str | None = None) -> None:
        super().__init__()
        self._size = size
        self._start_queued = start_queued
        self._owner = owner
        self._lent = False
        self._returned = False

    def cancel(self) -> bool:
        if super().cancel():
            return True
        size = self._size
        with size.lock:
            lends = self.running() and not (self._lent or self._returned)
            if lends:
                self._lent = True
                size.lend(1, self._owner)
        if lends:
            try:
                asyncio.get_running_loop().call_soon(self._start_queued)
            except RuntimeError:  # no loop in this thread
                self._start_queued()
        return False

    def returned(self) -> None:
        """The job returned: a thread lent for it comes back."""
        with self._size.lock:
            self._returned = True
            if self._lent:
                self._size.lend(-1, self._owner)


class DaemonThreadPool(ThreadPoolExecutor):
    """An executor of daemon threads. A ``ThreadPoolExecutor`` by type only (asyncio's
    ``set_default_executor`` accepts nothing else): none of that class's code runs, this one's does.

    ``ceiling``: how many threads it may run while some are lent (:meth:`lend`); ``max_workers`` if
    not given. ``owner`` (with ``lend_on_cancel``): who submits a job, asked in ``submit`` (None: nobody
    in particular, never refused); ``share``: how many lent threads one owner's jobs may hold before its
    next job is refused with :class:`ThreadShareUsed` (half of ``max_workers`` if not given)."""

    def __init__(
        self,
        max_workers: int,
        thread_name_prefix: str = "",
        *,
        ceiling: int | None = None,
        lend_on_cancel: bool = False,
        owner: Callable[[], str | None] | None = None,
        share: int | None = None,
    ) -> None:
        # ThreadPoolExecutor.__init__ is deliberately not called: its threads are the ones joined at exit.
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._size = _Size(max_workers, ceiling or max_workers)
        self._lend_on_cancel = lend_on_cancel
        self._owner = owner if lend_on_cancel else None  # only loans made on cancel know their owner
        self._share = share or max(1, max_workers // 2)
        self._prefix = thread_name_prefix or f"DaemonThreadPool-{next(_pools)}"
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = self._size.lock
        self._closed = False
        self._started: list[threading.Thread] = []
        self._named = 0
        # Dropped without a shutdown: its idle threads still end (as the standard pool's do).
        weakref.finalize(self, self._jobs.put, None).atexit = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        owner = self._owner() if self._owner is not None else None
        future: Future[_T] = (
            _Cancellable(self._size, self._start_later, owner) if self._lend_on_cancel else Future()
        )
        held = 0
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if owner is not None and (held := self._size.lent_by.get(owner, 0)) >= self._share:
                wanted = None
            else:
                self._jobs.put((future, fn, args, kwargs))
                self._size.queued += 1
                wanted = self._wanted()
        if wanted is None:  # outside the lock: the future's callbacks run now
            future.set_exception(
                ThreadShareUsed(
                    f"{held} call(s) submitted by {owner!r} to the {self._prefix!r} threads still run after "
                    "their callers gave up on them, its share of those threads: none more until one returns"
                )
            )
            return future
        self._start(wanted)
        return future

    def _wanted(self) -> list[threading.Thread]:
        """A thread for each job no idle thread will take, as far as ``most`` allows, counted now (lock
        held) and started by :meth:`_start` once the lock is let go: a starting thread is waited for, and
        meanwhile the threads taking jobs would wait for the lock, in any order."""
        size = self._size
        wanted: list[threading.Thread] = []
        while size.queued > size.idle and size.live < size.most and not self._closed:
            wanted.append(
                threading.Thread(
                    target=_work, args=(self._jobs, size), name=f"{self._prefix}_{self._named}", daemon=True
                )
            )
            self._named += 1
            size.live += 1
            size.idle += 1
        return wanted

    def _start(self, wanted: list[threading.Thread]) -> None:
        for thread in wanted:
            thread.start()
        if wanted:
            with self._lock:
                if len(self._started) > 2 * self._size.ceiling:  # threads that ended beyond max_workers
                    self._started = [thread for thread in self._started if thread.is_alive()]
                self._started += wanted

    def lend(self, threads: int, *, start: bool = True) -> None:
        """``threads`` more of the pool's threads are held by calls their callers gave up on (negative:
        that many returned): as many more threads may start, up to the ceiling, at once for work queued
        unless ``start`` is False (then at the next submit or :meth:`start_queued`)."""
        with self._lock:
            self._size.lend(threads)
            wanted = self._wanted() if start else []
        self._start(wanted)

    def start_queued(self) -> None:
        """Start the threads that work already queued may have (after a loan made with ``start=False``)."""
        with self._lock:
            wanted = self._wanted()
        self._start(wanted)

    @property
    def _start_later(self) -> Callable[[], object]:
        """:meth:`start_queued` for a job's future, which must not keep the pool alive (a pool dropped
        without a shutdown ends its threads when it is collected)."""
        method = weakref.WeakMethod(self.start_queued)
        return lambda: (start := method()) is not None and start()

    @property
    def threads(self) -> int:
        """How many threads the pool runs now."""
        return self._size.live

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        withdrawn: list[Future[Any]] = []
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        self._size.queued -= 1
                        withdrawn.append(job[0])
            self._jobs.put(None)  # each thread passes it on to the next as it stops
        for future in withdrawn:  # outside the lock: their callbacks may cancel this pool's other jobs
            future.cancel()
        if wait:
            self.join()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every thread to end (after :meth:`shutdown`), at most ``timeout`` seconds in all; True
        if they all have."""
        end = None if timeout is None else time.monotonic() + timeout
        for thread in self._started:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
            if thread.is_alive():
                return False
        return True


def _work(jobs: queue.SimpleQueue[_Job | None], size: _Size) -> None:
    while (job := jobs.get()) is not None:
        with size.lock:
            size.idle -= 1
            size.queued -= 1
        future, fn, args, kwargs = job
        del job
        if future.set_running_or_notify_cancel():
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # the caller's to see, as from the standard pool
                _returned(future)
                future.set_exception(exc)
            else:
                _returned(future)
                future.set_result(result)
                del result
        del future, fn, args, kwargs
        with size.lock:
            if size.live > size.most:  # started while others were hung, which have returned since
                size.live -= 1
                return
            size.idle += 1
    with size.lock:
        size.live -= 1
        size.idle -= 1
    jobs.put(None)


def _returned(future: Future[Any]) -> None:
    if isinstance(future, _Cancellable):
        future.returned()


async def joined(pool: DaemonThreadPool, timeout_s: float) -> bool:
    """Wait on the event loop, at most ``timeout_s``, for the threads of ``pool`` (shut down) to end: what
    still runs then is left to end with the process. True if they all ended."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pool.join(0):
        if loop.time() >= end:
            return False
        await asyncio.sleep(_POLL_S)
    return True
