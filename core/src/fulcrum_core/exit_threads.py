"""A stopping worker waits a bounded time for the non-daemon threads plugin code started itself.

Python's exit joins every non-daemon thread without a bound: a plugin's own ``threading.Thread`` or
``concurrent.futures.ThreadPoolExecutor`` (a common way to fan out HTTP calls) with a job that never
ends kept the worker alive after its server stopped, until it was killed. The host's own threads are
daemons, given ``SHUTDOWN_THREADS_S`` as the app stops (``app.py``); these are not the host's to make
daemons. So the host's runner (``fulcrum serve``, ``fulcrum demo``, ``fulcrum dev``: ``cli/serve.py``)
arms this in the worker process: at exit, before Python joins them, those still running get
``SHUTDOWN_THREADS_S`` too; then the worker logs them, by name and the code they run, flushes its logs
and exits anyway, with the status it would have had (:func:`exits_with`). A process that merely built
the app (a test client, an embedding ASGI server) never arms it and waits for them as Python always does.

It runs among ``threading``'s own exit calls (``threading._register_atexit``, which CPython has had
since 3.9; without it the worker logs, once armed, that it may wait for them). It runs before
``concurrent.futures``' own, which wakes its pools' idle threads and then joins them all without a
bound: those are woken first here, as that call does, without the join.
"""

from __future__ import annotations

import concurrent.futures.thread as _pool_threads  # its exit call registered first: it runs after ours
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["arm", "exits_with"]

log = logging.getLogger("fulcrum.serve")

_REGISTER: Callable[[Callable[[], object]], None] | None = getattr(threading, "_register_atexit", None)
"""Registers a call ``threading`` makes as the interpreter exits, before it joins the threads."""

_WAKES_POOLS = all(
    hasattr(_pool_threads, name) for name in ("_shutdown", "_global_shutdown_lock", "_threads_queues")
)
"""Whether this Python's ``concurrent.futures`` can be told the interpreter stops without being joined."""

_MACHINERY = ("threading", "concurrent.futures.")
"""Modules whose frames run a thread, not its work: a thread is named by the first frame past them."""

_armed_in: int | None = None  # the process armed, by pid
_status = 1  # not known to have ended normally, until the runner says how it ended


def exits_with(status: int) -> None:
    """The status the worker exits with when it exits without the threads: the one it would have had
    (0 after a normal stop, the failed start's otherwise). The runner says it as the server ends."""
    global _status
    _status = status


def arm() -> None:
    """Bound the wait for non-daemon threads as this process exits (once; the host's runner only)."""
    global _armed_in
    if _armed_in == os.getpid():
        return
    _armed_in = os.getpid()
    if _REGISTER is None:
        log.warning(
            "this Python's threading has no _register_atexit: a stopping worker may wait, without a bound, "
            "for threads a plugin started itself"
        )
        return
    _REGISTER(_exit_bounded)


def _exit_bounded() -> None:
    if _armed_in != os.getpid():  # a forked child: not the process armed
        return
    try:
        bound_s = _bound_s()
        left = _still_running_after(bound_s)
        if not left:
            return  # the exit goes on as Python's
        log.warning(
            "%d thread(s) started by code other than the host's still running %.0f s after the server "
            "stopped, which the worker would wait for without end; exiting without them: %s",
            len(left), bound_s, ", ".join(_described(thread) for thread in left),
        )
        _flush_logs()
    except Exception:  # never in the way of the exit, which goes on as Python's
        log.exception("could not bound the wait for the worker's threads as it exits")
        return
    os._exit(_status)


def _bound_s() -> float:
    from fulcrum_core import app as host  # read as the worker exits (tests shorten it)

    return host.SHUTDOWN_THREADS_S


def _still_running_after(timeout_s: float) -> list[threading.Thread]:
    """Wait, at most ``timeout_s`` in all, for the non-daemon threads to end; those still running."""
    _wake_idle_pool_threads()
    end = time.monotonic() + timeout_s
    for thread in _waited_for():
        thread.join(max(0.0, end - time.monotonic()))
    return [thread for thread in _waited_for() if thread.is_alive()]


def _waited_for() -> list[threading.Thread]:
    """What Python's exit would join: the non-daemon threads but this one (the main one, exiting)."""
    this = threading.current_thread()
    return [thread for thread in threading.enumerate() if not thread.daemon and thread is not this]


def _wake_idle_pool_threads() -> None:
    """What ``concurrent.futures`` does at exit, but its join: no pool takes work any more, and each of
    their threads ends once it has nothing left to run (an idle one at once)."""
    if not _WAKES_POOLS:
        return
    with _pool_threads._global_shutdown_lock:
        _pool_threads._shutdown = True
    for queue in list(_pool_threads._threads_queues.values()):
        queue.put(None)


def _described(thread: threading.Thread) -> str:
    """``thread``'s name, and the function it runs (its module names the plugin) where it can tell."""
    code = _runs(thread)
    return f"{thread.name!r} running {code}" if code else repr(thread.name)


def _runs(thread: threading.Thread) -> str | None:
    """The outermost function on ``thread``'s stack that is not a thread's machinery (``threading``, a
    pool's worker loop): its target, or the job its pool runs; else its target as it was given."""
    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    found: Any = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module == _MACHINERY[0] or module.startswith(_MACHINERY[1])):
            found = frame
        frame = frame.f_back
    if found is not None:
        return f"{found.f_globals.get('__name__', '?')}.{found.f_code.co_qualname}"
    target = getattr(thread, "_target", None)  # set until it returns
    if target is None:
        return None
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def _flush_logs() -> None:
    """Write out what was logged, as the exit ``os._exit`` skips would: queued handlers' listeners are
    stopped (each writes what it holds), then every handler is flushed and closed."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = {h for each in loggers if isinstance(each, logging.Logger) for h in each.handlers}
    for handler in handlers:
        listener = getattr(handler, "listener", None)
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.stop()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
