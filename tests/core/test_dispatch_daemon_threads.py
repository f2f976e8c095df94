"""The plugin threads' pool (``dispatch/daemon_threads.py``): the standard pool's ``submit`` and ``shutdown``
behaviour, but daemon threads that nothing joins when the interpreter exits."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import uvloop
from fulcrum_core.dispatch.daemon_threads import DaemonThreadPool, joined
from fulcrum_sdk.errors import ThreadShareUsed

WAIT_S = 5.0


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix + "_")]


@pytest.fixture
def release() -> Any:
    """An event the test's blocked jobs wait on, set at teardown so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def test_submit_returns_what_the_function_returns() -> None:
    pool = DaemonThreadPool(2, "t-submit")
    try:
        assert pool.submit(pow, 2, 5).result(WAIT_S) == 32
        assert pool.submit(int, "ff", base=16).result(WAIT_S) == 255
        assert list(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]
    finally:
        pool.shutdown()


def test_an_exception_goes_to_the_future_and_the_thread_keeps_serving() -> None:
    def raises(exc: BaseException) -> None:
        raise exc

    pool = DaemonThreadPool(1, "t-raise")
    try:
        error = ValueError("plugin bug")
        assert pool.submit(raises, error).exception(WAIT_S) is error
        exit_ = SystemExit(3)  # a BaseException too: the caller's to see, not the thread's end
        assert pool.submit(raises, exit_).exception(WAIT_S) is exit_
        assert pool.submit(len, "abc").result(WAIT_S) == 3
        assert len(_threads("t-raise")) == 1
    finally:
        pool.shutdown()


def test_threads_start_lazily_are_daemons_and_never_exceed_max_workers(release: threading.Event) -> None:
    pool = DaemonThreadPool(2, "t-most")
    assert _threads("t-most") == []
    running: list[threading.Thread] = []

    def job() -> threading.Thread:
        running.append(threading.current_thread())
        release.wait()
        return threading.current_thread()

    try:
        futures = [pool.submit(job) for _ in range(5)]
        deadline = time.monotonic() + WAIT_S
        while len(running) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # time for a third to start, were one allowed
        assert len(running) == 2
        assert len(_threads("t-most")) == 2
        release.set()
        done = {future.result(WAIT_S) for future in futures}
        assert len(done) == 2
        assert all(thread.daemon for thread in done)
    finally:
        release.set()
        pool.shutdown()


def test_threads_lent_to_hung_calls_are_replaced_up_to_the_ceiling_and_given_back(
    release: threading.Event,
) -> None:
    """Two threads hung in calls nobody waits for any more are lent: two more may start, and run new
    work at once, but no more than the ceiling allows; once the hung calls return and the loan is given
    back, the threads beyond ``max_workers`` end as they fall idle."""
    pool = DaemonThreadPool(2, "t-lend", ceiling=3)
    hung = [pool.submit(release.wait) for _ in range(2)]
    try:
        deadline = time.monotonic() + WAIT_S
        while pool.threads < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = pool.submit(lambda: "queued")
        time.sleep(0.1)
        assert not queued.done()  # without a loan, work waits for the hung threads
        pool.lend(2)  # the ceiling (3) allows one more thread, not two
        assert pool.submit(lambda: "new").result(WAIT_S) == "new"
        assert queued.result(WAIT_S) == "queued"
        assert pool.threads == 3
        blocked = pool.submit(release.wait)
        beyond = pool.submit(lambda: "beyond")
        time.sleep(0.1)
        assert not beyond.done()  # every thread hung: the ceiling holds
        assert len(_threads("t-lend")) == 3
        release.set()
        assert all(future.result(WAIT_S) for future in (*hung, blocked))
        assert beyond.result(WAIT_S) == "beyond"
        pool.lend(-2)
        for _ in range(3):  # the next jobs each thread takes show it is over max_workers: it ends
            pool.submit(time.sleep, 0.01).result(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while len(_threads("t-lend")) > 2 and time.monotonic() < deadline:
            pool.submit(time.sleep, 0.01).result(WAIT_S)
        assert len(_threads("t-lend")) == 2
        assert pool.threads == 2
    finally:
        release.set()
        pool.shutdown()


def test_a_lent_thread_starts_after_the_pool_was_once_busy(release: threading.Event) -> None:
    """A job once queued behind the only thread (the pool saturated) leaves no count behind: after the
    thread hangs and is lent, the next job gets a thread of its own at once."""
    pool = DaemonThreadPool(1, "t-busy", ceiling=2)
    gate = threading.Event()
    try:
        first, queued = pool.submit(gate.wait), pool.submit(lambda: "queued")
        gate.set()
        assert first.result(WAIT_S)
        assert queued.result(WAIT_S) == "queued"
        pool.submit(release.wait)
        deadline = time.monotonic() + WAIT_S
        while len(_threads("t-busy")) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        pool.lend(1)
        assert pool.submit(lambda: "next").result(WAIT_S) == "next"
    finally:
        release.set()
        pool.shutdown()


def test_a_loan_serves_work_already_queued(release: threading.Event) -> None:
    """Work queued while the only thread's call was still awaited starts as soon as that thread is lent."""
    pool = DaemonThreadPool(1, "t-queued", ceiling=2)
    try:
        pool.submit(release.wait)
        waiting = pool.submit(lambda: "waiting")
        time.sleep(0.05)
        assert not waiting.done()
        pool.lend(1)
        assert waiting.result(WAIT_S) == "waiting"
    finally:
        release.set()
        pool.shutdown()


def test_shutdown_with_wait_waits_for_running_work_and_its_threads() -> None:
    pool = DaemonThreadPool(2, "t-wait")
    finished: list[str] = []

    def slow(name: str) -> None:
        time.sleep(0.3)
        finished.append(name)

    pool.submit(slow, "a")
    pool.submit(slow, "b")
    pool.shutdown(wait=True)
    assert sorted(finished) == ["a", "b"]
    assert _threads("t-wait") == []
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(len, "")


def test_shutdown_runs_queued_work_unless_asked_to_cancel_it() -> None:
    for cancel in (False, True):
        gate = threading.Event()
        pool = DaemonThreadPool(1, f"t-cancel-{cancel}")
        running = pool.submit(gate.wait, WAIT_S)
        queued = [pool.submit(len, "ab") for _ in range(3)]
        pool.shutdown(wait=False, cancel_futures=cancel)
        assert not running.cancelled()
        gate.set()
        assert running.result(WAIT_S) is True
        if cancel:
            assert all(future.cancelled() for future in queued)
        else:
            assert [future.result(WAIT_S) for future in queued] == [2, 2, 2]
        assert pool.join(WAIT_S)


def test_join_and_joined_give_up_on_a_hung_thread_in_time(release: threading.Event) -> None:
    pool = DaemonThreadPool(2, "t-join")
    pool.submit(release.wait)
    pool.submit(time.sleep, 0.2)
    pool.shutdown(wait=False)
    began = time.monotonic()
    assert pool.join(0.1) is False
    assert time.monotonic() - began < 1.0
    assert asyncio.run(joined(pool, 0.5)) is False
    release.set()
    assert asyncio.run(joined(pool, WAIT_S)) is True


def test_a_pool_dropped_without_shutdown_ends_its_idle_threads() -> None:
    pool = DaemonThreadPool(1, "t-dropped")
    thread = pool.submit(threading.current_thread).result(WAIT_S)
    del pool
    gc.collect()
    thread.join(WAIT_S)
    assert not thread.is_alive()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_as_the_loops_default_executor_it_runs_to_thread_in_the_callers_context(loop: str) -> None:
    """asyncio accepts only a ``ThreadPoolExecutor`` as its default executor; ``asyncio.to_thread`` then runs
    there with the caller's context variables, and ``run_in_executor`` with the pool named runs there too,
    in the thread's own context."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="")
    pool = DaemonThreadPool(2, f"t-loop-{loop}")

    def where() -> tuple[str, str, bool]:
        thread = threading.current_thread()
        return var.get(), thread.name, thread.daemon

    async def main() -> list[tuple[str, str, bool]]:
        running = asyncio.get_running_loop()
        running.set_default_executor(pool)
        var.set("customer-1")
        return [await asyncio.to_thread(where), await running.run_in_executor(pool, where)]

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        seen = runner.run(main())
    assert seen[0] == ("customer-1", f"t-loop-{loop}_0", True)
    context, name, daemon = seen[1]
    assert context == ""  # run_in_executor carries no context: the dispatcher passes its copy's ``run``
    assert name.startswith(f"t-loop-{loop}_")
    assert daemon
    assert pool.join(0)  # the runner shut its default executor down as it closed


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_to_thread_calls_given_up_lend_their_threads(loop: str, release: threading.Event) -> None:
    """As the loop's default executor with ``lend_on_cancel``: two ``to_thread`` calls hung in blocking code
    and given up (their tasks cancelled at a deadline) lend their threads, so the next ``to_thread`` call
    runs at once instead of queueing behind them, and so does one that was queued already; once they
    return, the loan ends. The pool made as asyncio makes it queues both behind the hung ones."""
    started = threading.Semaphore(0)

    def hang() -> None:
        started.release()
        release.wait()

    async def main(pool: DaemonThreadPool) -> tuple[bool, bool]:
        asyncio.get_running_loop().set_default_executor(pool)
        hung = [asyncio.ensure_future(asyncio.to_thread(hang)) for _ in range(2)]
        for _ in range(2):  # both running in their threads, on a loaded machine too
            deadline = time.monotonic() + WAIT_S
            while not started.acquire(blocking=False):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(asyncio.to_thread(lambda: True))  # both threads held: it waits
        await asyncio.sleep(0.05)
        for task in hung:
            task.cancel()  # the deadline
        try:
            was_queued = await asyncio.wait_for(queued, 1.0)
        except TimeoutError:
            was_queued = False
        try:
            return was_queued, await asyncio.wait_for(asyncio.to_thread(lambda: True), 1.0)
        except TimeoutError:
            return was_queued, False
        finally:
            release.set()

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    lending = DaemonThreadPool(2, f"t-lend-{loop}", ceiling=4, lend_on_cancel=True)
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main(lending)) == (True, True)
    assert (lending._size.lent, lending._size.most) == (0, 2)
    release.clear()
    plain = DaemonThreadPool(2, f"t-plain-{loop}", ceiling=4)
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main(plain)) == (False, False)


def test_an_owner_whose_given_up_jobs_hold_its_share_is_refused_at_once(release: threading.Event) -> None:
    """Told who submits each job: once ``a``'s jobs given up by their callers hold its share of lent threads,
    its next job fails at once (nothing queued, no thread started), while ``b``'s and an unowned job still
    run; when one of its hung jobs returns, ``a`` is served again."""
    who: contextvars.ContextVar[str | None] = contextvars.ContextVar("who", default=None)
    pool = DaemonThreadPool(2, "t-share", ceiling=8, lend_on_cancel=True, owner=who.get, share=2)
    running = threading.Semaphore(0)
    first = threading.Event()

    def hang(until: threading.Event) -> None:
        running.release()
        until.wait()

    try:
        who.set("a")
        hung = [pool.submit(hang, first), pool.submit(hang, release)]
        for _ in hung:
            assert running.acquire(timeout=WAIT_S)
        for future in hung:
            assert not future.cancel()  # running: its thread is lent, the caller gone
        assert pool._size.lent_by == {"a": 2}
        threads = pool.threads
        refused = pool.submit(lambda: "never")
        assert refused.done()
        with pytest.raises(ThreadShareUsed, match="'a'"):
            refused.result(0)
        assert (pool.threads, pool._size.queued) == (threads, 0)
        who.set("b")
        assert pool.submit(lambda: "b").result(WAIT_S) == "b"
        who.set(None)
        assert pool.submit(lambda: "host").result(WAIT_S) == "host"
        first.set()  # one of a's hung jobs returns
        deadline = time.monotonic() + WAIT_S
        while pool._size.lent_by != {"a": 1}:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        who.set("a")
        assert pool.submit(lambda: "a again").result(WAIT_S) == "a again"
    finally:
        release.set()
        pool.shutdown()
    assert pool._size.lent_by == {}


def _owned(share: int, workers: int = 4) -> tuple[DaemonThreadPool, contextvars.ContextVar[str | None]]:
    who: contextvars.ContextVar[str | None] = contextvars.ContextVar("who", default=None)
    pool = DaemonThreadPool(
        workers, "t-owned", ceiling=4 * workers, lend_on_cancel=True, owner=who.get, share=share
    )
    return pool, who


def test_an_owners_jobs_run_at_most_its_share_at_once_the_rest_behind_its_own(
    release: threading.Event,
) -> None:
    """``a`` submits four jobs to a pool of four threads with a share of two: two run, two wait behind them
    (not in the pool's queue), so ``b``'s job submitted after them runs at once; as ``a``'s jobs end its
    waiting ones run, in turn, and a waiting job its caller cancelled never runs."""
    pool, who = _owned(share=2)
    running = threading.Semaphore(0)
    ran: list[int] = []

    def job(n: int) -> int:
        running.release()
        release.wait()
        ran.append(n)
        return n

    try:
        who.set("a")
        jobs = [pool.submit(job, n) for n in range(5)]
        assert running.acquire(timeout=WAIT_S)
        assert running.acquire(timeout=WAIT_S)
        assert not running.acquire(timeout=0.2)  # the third waits behind a's own two
        assert (pool._size.admitted, len(pool._size.waiting["a"]), pool._size.queued) == ({"a": 2}, 3, 0)
        assert jobs[3].cancel()  # its caller gave up while it waited: it never runs
        who.set("b")
        assert pool.submit(lambda: "b").result(WAIT_S) == "b"
        release.set()
        assert [f.result(WAIT_S) for f in (jobs[0], jobs[1], jobs[2], jobs[4])] == [0, 1, 2, 4]
    finally:
        release.set()
        pool.shutdown()
    assert 3 not in ran
    assert ran.index(4) > ran.index(2)  # in turn
    assert (pool._size.admitted, pool._size.waiting) == ({}, {})


def test_an_owners_waiting_jobs_fail_once_its_loans_fill_its_share(release: threading.Event) -> None:
    """``a``'s two running jobs are given up while two more wait behind them: those two fail at once, as
    its later jobs do, instead of waiting for threads that may never come back."""
    pool, who = _owned(share=2)
    running = threading.Semaphore(0)

    def hang() -> None:
        running.release()
        release.wait()

    try:
        who.set("a")
        hung = [pool.submit(hang) for _ in range(2)]
        waiting = [pool.submit(lambda: "never") for _ in range(2)]
        assert running.acquire(timeout=WAIT_S)
        assert running.acquire(timeout=WAIT_S)
        assert not hung[0].cancel()
        assert not any(f.done() for f in waiting)  # one loan: a still has a thread that may come back
        assert not hung[1].cancel()
        for future in waiting:
            with pytest.raises(ThreadShareUsed, match="2 call"):
                future.result(0)
        with pytest.raises(ThreadShareUsed):
            pool.submit(lambda: "never").result(0)
        assert (pool._size.lent_by, pool._size.waiting, pool._size.queued) == ({"a": 2}, {}, 0)
    finally:
        release.set()
        pool.shutdown()


@pytest.mark.parametrize("cancel", [False, True])
def test_shutdown_runs_or_cancels_an_owners_waiting_jobs(cancel: bool, release: threading.Event) -> None:
    """Jobs waiting behind their owner's own, which still runs, are queued for the pool's threads (here
    idle ones start for them) before those stop, as the standard pool runs what is queued, unless
    ``cancel_futures`` withdraws them with the rest; either way no place is left counted."""
    pool, who = _owned(share=1)
    who.set("a")
    first = pool.submit(release.wait, WAIT_S)
    queued = [pool.submit(lambda: "ran") for _ in range(2)]
    assert len(pool._size.waiting["a"]) == 2
    pool.shutdown(wait=False, cancel_futures=cancel)
    if cancel:
        assert all(future.cancelled() for future in queued)
    else:
        assert [future.result(WAIT_S) for future in queued] == ["ran", "ran"]  # the first still runs
    assert not first.done()
    release.set()
    assert first.result(WAIT_S)
    assert pool.join(WAIT_S)
    assert (pool._size.admitted, pool._size.waiting, pool._size.queued) == ({}, {}, 0)


def test_shutdown_that_cancels_counts_back_the_places_of_jobs_still_queued(
    release: threading.Event,
) -> None:
    """One thread, a share of two: ``a``'s second job is let in but queued behind its first, its third
    waits; ``cancel_futures`` withdraws both, and once the first returns no place of ``a``'s is counted."""
    pool, who = _owned(share=2, workers=1)
    who.set("a")
    first = pool.submit(release.wait, WAIT_S)
    queued, waiting = pool.submit(lambda: "never"), pool.submit(lambda: "never")
    deadline = time.monotonic() + WAIT_S
    while not first.running():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert (pool._size.admitted, pool._size.queued, len(pool._size.waiting["a"])) == ({"a": 2}, 1, 1)
    pool.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    assert waiting.cancelled()
    assert pool._size.admitted == {"a": 1}  # the first, still running
    release.set()
    assert pool.join(WAIT_S)
    assert (pool._size.admitted, pool._size.waiting, pool._size.queued) == ({}, {}, 0)


def test_a_waiting_job_its_caller_cancels_is_dropped_at_once(release: threading.Event) -> None:
    """An owner whose one place is held by a job that hangs, never given up, keeps no trace of the calls
    that waited behind it and were cancelled by their callers (their arguments are let go)."""
    pool, who = _owned(share=1)
    who.set("a")
    try:
        pool.submit(release.wait, WAIT_S)
        for _ in range(100):
            assert pool.submit(lambda payload: payload, bytearray(100_000)).cancel()
        assert pool._size.waiting == {}
        assert pool._size.admitted == {"a": 1}
    finally:
        release.set()
        pool.shutdown()
    assert pool._size.admitted == {}


def test_a_share_must_be_positive() -> None:
    with pytest.raises(ValueError, match="share"):
        DaemonThreadPool(2, "t-zero", lend_on_cancel=True, share=0)


def test_a_loan_comes_back_once_however_the_job_ends() -> None:
    """Cancelled twice, from two threads, while it runs: one loan; the job raises: the loan comes back;
    cancelled after it ended: nothing lent."""
    go, running = threading.Event(), threading.Event()
    pool = DaemonThreadPool(1, "t-once", ceiling=4, lend_on_cancel=True)

    def fails() -> None:
        running.set()
        go.wait()
        raise ValueError("the blocking client gave up")

    try:
        future = pool.submit(fails)
        assert running.wait(WAIT_S)
        assert not future.cancel()
        assert not future.cancel()
        elsewhere = threading.Thread(target=future.cancel)
        elsewhere.start()
        elsewhere.join()
        assert (pool._size.lent, pool._size.most) == (1, 2)
        go.set()
        assert isinstance(future.exception(WAIT_S), ValueError)
        assert (pool._size.lent, pool._size.most) == (0, 1)
        assert not future.cancel()
        assert pool._size.lent == 0
    finally:
        go.set()
        pool.shutdown()


def test_shutdown_cancels_queued_work_outside_its_lock(release: threading.Event) -> None:
    """A queued job's callback that cancels the running job (taking the pool's lock to lend its thread)
    does not deadlock a ``shutdown(cancel_futures=True)``."""
    pool = DaemonThreadPool(1, "t-shut", ceiling=2, lend_on_cancel=True)
    running = pool.submit(release.wait)
    time.sleep(0.05)
    queued = pool.submit(lambda: None)
    queued.add_done_callback(lambda _: running.cancel())
    stopping = threading.Thread(
        target=pool.shutdown, kwargs={"wait": False, "cancel_futures": True}, daemon=True
    )
    stopping.start()
    stopping.join(WAIT_S)
    release.set()
    assert not stopping.is_alive()
    assert queued.cancelled()


_HUNG = """
import threading
from fulcrum_core.dispatch.daemon_threads import DaemonThreadPool

pool = DaemonThreadPool(2)
pool.submit(threading.Event().wait)
pool.submit(threading.Event().wait)
"""


def exits(code: str, timeout_s: float = 20) -> None:
    """Run ``code`` in a fresh interpreter; fail the test unless it exits, with status 0, within
    ``timeout_s`` (one left waiting for a hung thread is killed)."""
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert child.wait(timeout=timeout_s) == 0
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit: it waits for its hung threads")
    finally:
        child.kill()
        child.wait()


def test_a_process_with_a_hung_thread_exits_without_a_shutdown() -> None:
    """``concurrent.futures`` joins its pools' threads at exit; nothing joins these."""
    exits(_HUNG)


def test_the_hosts_default_executor_lends_the_threads_of_calls_given_up() -> None:
    """The loop's default executor the host sets (``asyncio.to_thread``) has asyncio's largest size, lends
    on cancel, and may grow to four times that while calls it lent for hang; each plugin has a quarter."""
    from fulcrum_core.app import _default_pool
    from fulcrum_core.dispatch.leftovers import plugin_now

    pool = _default_pool()
    try:
        assert pool._lend_on_cancel
        assert (pool._size.base, pool._size.ceiling) == (32, 128)
        assert pool._size.share == 8  # per plugin, told by the task watch
        assert pool._owner is plugin_now
    finally:
        pool.shutdown()
