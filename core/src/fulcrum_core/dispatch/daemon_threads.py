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
``share`` of its threads, a bulkhead: at most ``share`` of an owner's jobs are let in at once (queued for
a thread or running); its others wait apart, in turn, and are let in as its jobs end (a waiting job its
caller cancels is dropped at once). Once all ``share`` of them are lent (given up by their callers and
still running), its waiting jobs and every job it submits until one returns fail at once with
:class:`~fulcrum_sdk.errors.ThreadShareUsed`. So one plugin hung in ``asyncio.to_thread`` holds at most
``share`` threads, however many calls it makes before its first deadline, and never lends the pool up to
its ceiling (the dispatcher's pool gives each plugin a share of its threads the same way). Like any
bulkhead it is not work-conserving: an owner's jobs wait for its own even while threads are idle, and an
owner's job that waits for another of its jobs in the same pool waits for a place like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from fulcrum_sdk.errors import ThreadShareUsed

__all__ = ["DaemonThreadPool", "joined"]

_P = ParamSpec("_P")
_T = TypeVar("_T")
# The future, the call, and who submitted it (None: nobody in particular).
_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], str | None]
_POLL_S = 0.02
_pools = itertools.count()


class _Size:
    """How many threads a pool runs and may run, shared with its threads (which end when over ``most``),
    and each owner's jobs let in, lent and waiting."""

    __slots__ = (
        "admitted", "base", "ceiling", "idle", "lent", "lent_by", "live", "lock", "most", "queued", "share",
        "waiting",
    )

    def __init__(self, base: int, ceiling: int, share: int) -> None:
        self.lock = threading.Lock()
        self.base = base
        self.ceiling = max(base, ceiling)
        self.share = share
        self.lent = 0  # threads held by calls nobody waits for
        self.most = base
        self.live = 0  # threads started and not ended
        self.idle = 0  # of those, the ones waiting for a job
        self.queued = 0  # jobs no thread has taken yet
        self.admitted: dict[str, int] = {}  # an owner's jobs queued for a thread or running (lent too)
        self.lent_by: dict[str, int] = {}  # of those, the lent ones
        # An owner's jobs over its share, in turn (a dict keeps its order, and drops a cancelled one at once).
        self.waiting: dict[str, dict[Future[Any], _Job]] = {}

    def lend(self, threads: int, owner: str | None = None) -> list[_Job]:
        """``threads`` more (fewer) lent, by ``owner``'s jobs if known: how many threads may run follows
        (lock held). Returns the owner's waiting jobs, to be refused, once its loans fill its share."""
        self.lent += threads
        self.most = min(self.base + max(0, self.lent), self.ceiling)
        if owner is None:
            return []
        left = self.lent_by.get(owner, 0) + threads
        if left <= 0:
            self.lent_by.pop(owner, None)
            return []
        self.lent_by[owner] = left
        if left < self.share:
            return []
        return list(self.waiting.pop(owner, {}).values())

    def admit(self, jobs: queue.SimpleQueue[_Job | None], job: _Job) -> None:
        """Queue ``job`` for a thread (lock held)."""
        jobs.put(job)
        self.queued += 1
        if (owner := job[4]) is not None:
            self.admitted[owner] = self.admitted.get(owner, 0) + 1

    def ended(self, jobs: queue.SimpleQueue[_Job | None] | None, owner: str) -> None:
        """One of ``owner``'s jobs let in has ended, or was withdrawn before it ran: its next waiting job
        is let in, unless ``jobs`` is None (the pool is withdrawing them all) (lock held)."""
        if (left := self.admitted.get(owner, 0) - 1) > 0:
            self.admitted[owner] = left
        else:
            self.admitted.pop(owner, None)
        waiting = self.waiting.get(owner)
        if jobs is None or not waiting:
            return
        future = next(iter(waiting))
        self.admit(jobs, waiting.pop(future))
        if not waiting:
            del self.waiting[owner]

    def withdraw(self, future: Future[Any], owner: str) -> None:
        """A waiting job of ``owner``'s was cancelled by its caller: it is dropped (lock held)."""
        waiting = self.waiting.get(owner)
        if waiting is not None and waiting.pop(future, None) is not None and not waiting:
            del self.waiting[owner]


class _Cancellable(Future[Any]):
    """A job's future whose ``cancel()``, when the job already runs, lends its thread until it returns.

    The thread that may start in its place takes work already queued: on an event loop, once the loop has
    finished what it is doing (a deadline that cancels this call may withdraw others queued with it in
    the same pass, and those must never run), else at once."""

    def __init__(
        self, size: _Size, on_lent: Callable[[list[_Job]], object], owner: str | None = None
    ) -> None:
        super().__init__()
        self._size = size
        self._on_lent = on_lent
        self._owner = owner
        self._lent = False
        self._returned = False

    def cancel(self) -> bool:
        size = self._size
        if super().cancel():
            if self._owner is not None:  # it may be waiting behind its owner's own: dropped at once
                with size.lock:
                    size.withdraw(self, self._owner)
            return True
        refused: list[_Job] = []
        with size.lock:
            lends = self.running() and not (self._lent or self._returned)
            if lends:
                self._lent = True
                refused = size.lend(1, self._owner)
        if lends:
            self._on_lent(refused)
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
    in particular, never held back); ``share``: how many of one owner's jobs run at once, and how many
    lent threads of its jobs make the pool refuse its others (half of ``max_workers`` if not given);
    ``label``: what the pool is, in the refusal's message."""

    def __init__(
        self,
        max_workers: int,
        thread_name_prefix: str = "",
        *,
        ceiling: int | None = None,
        lend_on_cancel: bool = False,
        owner: Callable[[], str | None] | None = None,
        share: int | None = None,
        label: str = "",
    ) -> None:
        # ThreadPoolExecutor.__init__ is deliberately not called: its threads are the ones joined at exit.
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if share is not None and share <= 0:
            raise ValueError("share must be greater than 0")
        self._size = _Size(max_workers, ceiling or max_workers, share or max(1, max_workers // 2))
        self._lend_on_cancel = lend_on_cancel
        self._owner = owner if lend_on_cancel else None  # only loans made on cancel know their owner
        self._prefix = thread_name_prefix or f"DaemonThreadPool-{next(_pools)}"
        self._label = label or f"the {self._prefix!r} threads"
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
            _Cancellable(self._size, self._on_lent, owner) if self._lend_on_cancel else Future()
        )
        job: _Job = (future, fn, args, kwargs, owner)
        size = self._size
        wanted: list[threading.Thread] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if owner is None or size.admitted.get(owner, 0) < size.share:
                size.admit(self._jobs, job)
                wanted = self._wanted()
            elif size.lent_by.get(owner, 0) < size.share:
                size.waiting.setdefault(owner, {})[future] = job  # after its owner's own
            else:
                future.set_exception(self._refusal(owner))  # a fresh future: no callback runs yet
        self._start(wanted)
        return future

    def _refusal(self, owner: str) -> ThreadShareUsed:
        return ThreadShareUsed(
            f"{self._size.share} call(s) of {owner!r} in {self._label} still run after their callers gave "
            "up on them, its share of those threads: none more until one of them returns"
        )

    def _lent(self, refused: list[_Job]) -> None:
        """A job's thread was lent: the waiting jobs of its owner, whose share its loans now fill, fail;
        a thread may start for work already queued (on the loop, once it has finished its pass)."""
        for job in refused:
            with contextlib.suppress(InvalidStateError):  # cancelled by its caller meanwhile
                job[0].set_exception(self._refusal(job[4] or ""))
        try:
            asyncio.get_running_loop().call_soon(self.start_queued)
        except RuntimeError:  # no loop in this thread
            self.start_queued()

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
    def _on_lent(self) -> Callable[[list[_Job]], object]:
        """:meth:`_lent` for a job's future, which must not keep the pool alive (a pool dropped without a
        shutdown ends its threads when it is collected)."""
        method = weakref.WeakMethod(self._lent)
        return lambda refused: (lent := method()) is not None and lent(refused)

    @property
    def threads(self) -> int:
        """How many threads the pool runs now."""
        return self._size.live

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        withdrawn: list[Future[Any]] = []
        wanted: list[threading.Thread] = []
        size = self._size
        with self._lock:
            waiting = [job for jobs in size.waiting.values() for job in jobs.values()]
            size.waiting.clear()
            if cancel_futures:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        size.queued -= 1
                        if job[4] is not None:
                            size.ended(None, job[4])
                        withdrawn.append(job[0])
                withdrawn += [job[0] for job in waiting]
            else:
                # They run before the threads stop, as the standard pool runs what is queued: no owner's
                # share holds them back any longer, and threads start for them as for any queued work.
                for job in waiting:
                    size.admit(self._jobs, job)
                wanted = self._wanted()
            self._closed = True
            self._jobs.put(None)  # each thread passes it on to the next as it stops
        self._start(wanted)
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
        future, fn, args, kwargs, owner = job
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
            if owner is not None:
                size.ended(jobs, owner)
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
