"""Stalls of the event loop: caught while they last, blamed on the code that held the loop, reported, charged.

Every plugin call is timed, and one that holds the loop past its deadline is charged by the dispatcher.
But plugin code also runs outside any call: a finalizer (``__del__``, a generator's ``finally``), an
abandoned async generator's ``aclose``, a callback the plugin scheduled with ``loop.call_soon``, the
rest of a call that suspended and then blocked. While such code holds the loop every request of the
worker waits, the plugin's calls report ``ok``, and nothing names it.

So each worker keeps a heartbeat on its loop (a timer every quarter of ``loop_stall_ms``) and a watcher
thread. While a beat is overdue the thread samples the loop thread's stack (``sys._current_frames``) and
finds whose code holds the loop (:class:`Owners`: by code, module and package). The innermost plugin's
frame decides; the host's code a plugin called (a storage read on the loop) is that plugin's time, and
the standard library's, other libraries' and the SDK's frames are passed over, so a plugin blocked in
``time.sleep``, a client library or an SDK call is still the plugin. With no plugin's frame on the stack
the sample is the host's. When the loop comes back, the late beat reports the stall, if it lasted
``loop_stall_ms`` or more:

- one log line naming the culprit (the plugin or ``host`` whose code most samples found, the host on a
  tie, or ``unknown`` when none was taken, as when C code held the GIL throughout) and the frames it
  was in, at most one a second per culprit;
- ``fulcrum_event_loop_stalls_total{culprit}`` and ``fulcrum_event_loop_stalled_seconds_total{culprit}``;
- a plugin is charged as the dispatcher charges an inline call that holds the loop: its breaker of each
  hook whose deadline one *run* of its code outlasted ``open_on_loop_hold`` times opens. A run is one
  stretch of consecutive samples in the same activation of the plugin's code: the same task, and the
  same outermost frame of the plugin's on the stack (the samples hold that frame until the stall is
  judged, so a later activation cannot pass for it by reusing its address). It lasts from its first
  sample to the next sample of anything else, or to the loop's return, but at most one interval past
  its last sample, less any collection no sample of it fell in. A stall that several short steps of
  the plugin's (forty requests' calls resuming in one pass of the loop, forty finalizers), other code,
  or another thread holding the GIL made long is no one run, and charges nobody. Inside its own inline
  call the dispatcher has charged the plugin already.

The garbage collector's time (``gc.callbacks``, on the loop's thread) is reported, and never charged: a
collection holds the GIL, so no sample falls in it, and its time is taken out of the run around it. A
plugin's ``__del__`` that blocks while a collection runs it is sampled like any other code of the
plugin's, and counts.

Not seen: a C function the plugin scheduled directly (``loop.call_soon(time.sleep, 1)``) has no frame of
the plugin's on the stack, so it is the host's.

The beat costs the loop one timer callback every ``loop_stall_ms / 4`` (25 ms by default), and the thread
takes the GIL as often, for a few microseconds unless the loop is stalled. ``loop_stall_ms = 0`` turns
both off.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import CodeType, FrameType, ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from fulcrum_core.dispatch.leftovers import watch_of

if TYPE_CHECKING:
    from fulcrum_core.dispatch.resilience import Guards
    from fulcrum_core.plugins import LoadedPlugin

__all__ = ["GARBAGE_COLLECTION", "HOST", "UNKNOWN", "Blame", "Owners", "Stall", "StallSink", "StallWatch"]

log = logging.getLogger("fulcrum.dispatch")

HOST = "host"
"""The culprit of a stall in the host's code, or in code that is neither the host's nor a plugin's."""
UNKNOWN = "unknown"
"""The culprit of a stall no sample caught (C code holding the GIL throughout, or too short)."""

GARBAGE_COLLECTION = "garbage collection"
"""``Stall.shared`` of a stall the garbage collector took most of (its culprit is :data:`HOST`)."""

HOST_PACKAGES = frozenset({"fulcrum_core", "fulcrum_registry"})
"""Top-level packages whose frames are the host's own code."""
NEVER_A_PLUGINS = HOST_PACKAGES | {"fulcrum_sdk", "builtins", *sys.stdlib_module_names}
"""Top-level packages no plugin can claim (the SDK's frames are passed over: a plugin calls it)."""

FRAMES_SHOWN = 6
"""How many frames of the culprit's stack a stall's report shows, innermost first."""
SAMPLES_KEPT = 256
"""At most this many samples are kept per stall (one every quarter of ``loop_stall_ms``)."""
SHARED = "shared"
"""What :meth:`Owners.owner` says of code several plugins claim (a module or package they share)."""
LOG_EVERY_S = 1.0
"""At most one log line per culprit in this long; the next says how many were left out."""


class Blame(NamedTuple):
    """Whose code one sample of the loop thread's stack found running."""

    plugin: str | None  # None: the host's, or nobody's to tell (``where`` says which)
    frames: tuple[str, ...]  # innermost first: "module.function:line"
    where: str = ""  # for ``plugin`` None: "" the host, else the module several plugins share
    # The plugin's outermost frame on the stack, held (not its id, which a later frame may reuse) until
    # the stall is judged, on the loop's thread: what one activation of its code is known by.
    anchor: object = None


class Owners:
    """Which plugin a frame's code belongs to, from the loaded plugins: by code object (the hook
    implementations and the functions and classes defined inside them, for plugins made of functions
    in a module shared with other code, as tests make them), by module, and by package (the longest
    claimed prefix: an installed plugin's package, which may sit in a namespace shared with others). A
    module or package several plugins claim decides nothing."""

    def __init__(self, plugins: Iterable[LoadedPlugin]) -> None:
        codes: dict[CodeType, str | None] = {}
        modules: dict[str, str | None] = {}
        packages: dict[str, str | None] = {}
        for plugin in plugins:
            obj = plugin.plugin
            module = obj.__name__ if isinstance(obj, ModuleType) else type(obj).__module__
            if _claimable(module):
                _claim(modules, module, plugin.id)
                _claim(packages, _package(module, obj), plugin.id)
            for impl in plugin.impls.values():
                function = _unwrap(impl.function)
                name = getattr(function, "__module__", None)
                if isinstance(name, str) and _claimable(name):
                    _claim(modules, name, plugin.id)
                code = getattr(function, "__code__", None)
                if isinstance(code, CodeType):
                    for each in _nested(code):
                        _claim(codes, each, plugin.id)
        self._codes = codes
        self._modules = modules
        self._packages = packages

    def owner(self, frame: FrameType) -> str | None:
        """Whose code ``frame`` runs: a plugin's id, :data:`HOST`, :data:`SHARED` (claimed by several
        plugins) or None (a library's: passed over)."""
        code = frame.f_code
        if code in self._codes:
            return self._codes[code] or SHARED
        module = frame.f_globals.get("__name__")
        if not isinstance(module, str) or module == __name__:  # the watch's own gc callback: passed over
            return None
        if module.partition(".")[0] in HOST_PACKAGES:
            return HOST
        if module in self._modules:
            return self._modules[module] or SHARED
        prefix = module
        while prefix:
            if prefix in self._packages:
                return self._packages[prefix] or SHARED
            prefix = prefix.rpartition(".")[0]
        return None

    def blame(self, frame: FrameType | None) -> Blame:
        """The innermost frame from ``frame`` outwards that is a plugin's decides; the host's code that a
        plugin's code called (a storage read on the loop, an SDK call into the host) is that plugin's
        time too. No plugin's frame on the stack: the host's, if any of its frames is."""
        shared = ""
        top = frame
        host: FrameType | None = None
        while frame is not None:
            owner = self.owner(frame)
            if owner == HOST:
                host = host or frame
            elif owner == SHARED:
                shared = shared or str(frame.f_globals.get("__name__", "?"))
            elif owner is not None:
                return Blame(owner, _frames(top, frame), anchor=self._outermost(frame, owner))
            frame = frame.f_back
        if host is not None:
            return Blame(None, _frames(top, host))
        return Blame(None, _frames(top, None), shared)

    def _outermost(self, frame: FrameType, plugin: str) -> FrameType:
        """The outermost frame of ``plugin``'s on the stack from ``frame`` out: what one activation of its
        code (a callback, a task's step, a finalizer) is known by."""
        found = frame
        outer = frame.f_back
        while outer is not None:
            if self.owner(outer) == plugin:
                found = outer
            outer = outer.f_back
        return found


def _claimable(module: str) -> bool:
    return module.partition(".")[0] not in NEVER_A_PLUGINS


def _package(module: str, obj: object) -> str:
    """The package ``module`` (the plugin object's) is part of: itself when it is one (a plugin module
    that is a package), else its parent; a top-level module is its own."""
    if isinstance(obj, ModuleType) and hasattr(obj, "__path__"):
        return module
    parent = module.rpartition(".")[0]
    return parent if parent and _claimable(parent) else module


def _claim(table: dict[Any, str | None], key: Any, plugin: str) -> None:
    """``key`` is ``plugin``'s, unless another plugin claimed it too (then nobody's: None)."""
    if table.get(key, plugin) != plugin:
        table[key] = None
    else:
        table[key] = plugin


def _unwrap(function: Any) -> Any:
    function = getattr(function, "__func__", function)  # a bound method
    seen = 0
    while hasattr(function, "__wrapped__") and seen < 20:  # decorators that kept the original
        function = function.__wrapped__
        seen += 1
    return function


def _nested(code: CodeType) -> Iterable[CodeType]:
    """``code`` and every code object defined inside it (functions, lambdas, class bodies, methods)."""
    todo = [code]
    while todo:
        each = todo.pop()
        yield each
        todo.extend(const for const in each.co_consts if isinstance(const, CodeType))


def _frames(top: FrameType | None, culprit: FrameType | None) -> tuple[str, ...]:
    """The culprit's frame and those inside it, innermost first (at most :data:`FRAMES_SHOWN`)."""
    shown: list[str] = []
    frame = top
    while frame is not None and len(shown) < FRAMES_SHOWN:
        code = frame.f_code
        module = frame.f_globals.get("__name__", "?")
        shown.append(f"{module}.{code.co_qualname}:{frame.f_lineno}")
        if frame is culprit:
            break
        frame = frame.f_back
    if culprit is not None and frame is not culprit:  # the culprit is further out than shown: it last
        code = culprit.f_code
        module = culprit.f_globals.get("__name__", "?")
        shown[-1] = f"{module}.{code.co_qualname}:{culprit.f_lineno}"
    return tuple(shown)


class _Sample(NamedTuple):
    beat: int  # the beat that was overdue when it was taken
    at: float  # when (time.monotonic)
    blame: Blame
    inline: str | None  # the plugin whose call the dispatcher was running inline then, if any
    task: object  # the task whose step the loop was running (held, as the anchor), None for a callback


class Stall(NamedTuple):
    """One stall of the loop, as reported."""

    held_s: float  # at least this long (from when the beat was due to when it ran)
    culprit: str  # a plugin's id, HOST or UNKNOWN
    frames: tuple[str, ...]  # where the culprit's code was, innermost first
    own_call: bool  # the culprit's code ran inline in a call of its own: the dispatcher charged it
    opened: tuple[tuple[str, str], ...] = ()  # (plugin, hook) of each breaker this stall opened
    shared: str = ""  # HOST for want of telling: the module several plugins share that was running
    gc_s: float = 0.0  # how much of it the garbage collector took on the loop's thread: never charged
    run_s: float = 0.0  # the culprit's longest run of code in one activation (see the module's doc)


class StallSink(Protocol):
    """Told of each stall (the app's metrics)."""

    def observe_stall(self, culprit: str, seconds: float) -> None:
        """Count one stall of ``seconds`` (on the event loop's thread)."""
        ...


class StallWatch:
    """The heartbeat on one event loop and the thread that samples the loop's stack while a beat is late.

    ``plugins`` returns the loaded plugins by id (read in the watcher thread, only during a stall);
    ``guards`` are the dispatcher's, whose breakers a plugin's stall opens; ``sink`` counts stalls."""

    def __init__(
        self,
        threshold_s: float,
        plugins: Callable[[], Mapping[str, LoadedPlugin]],
        guards: Guards | None = None,
        sink: StallSink | None = None,
    ) -> None:
        self.threshold_s = threshold_s
        self.interval_s = threshold_s / 4
        self.stalls: collections.deque[Stall] = collections.deque(maxlen=32)  # the latest ones
        self._plugins = plugins
        self._guards = guards
        self._sink = sink
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ident = 0
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._beat_no = 0
        self._due: tuple[int, float] = (0, float("inf"))  # (beat, when it is due): one read in the thread
        # Appended in the watcher thread (at most SAMPLES_KEPT), emptied on the loop's: the frames they
        # hold are let go there, so a finalizer they kept waiting runs on the loop, never in the thread.
        self._samples: collections.deque[_Sample] = collections.deque()
        self._owners: tuple[object, Owners] | None = None
        self._failed = False
        self._gc_began = 0.0
        self._gc_s = 0.0  # the collector's time on the loop's thread since the last beat
        self._gc_spans: list[tuple[float, float]] = []  # and when each collection ran
        self._logged: dict[str, tuple[float, int]] = {}  # culprit → (next line due, lines left out)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` (never with ``loop_stall_ms = 0``)."""
        return self._thread is not None

    async def start(self) -> None:
        """Start the beat on the running loop and the watcher thread (nothing when turned off)."""
        if self.threshold_s <= 0 or self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._ident = threading.get_ident()
        self._stop.clear()
        gc.callbacks.append(self._collecting)
        self._arm(time.monotonic())
        self._thread = threading.Thread(target=self._watch, name="fulcrum-stall-watch", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop the beat and the thread."""
        self._stop.set()
        if self._collecting in gc.callbacks:
            gc.callbacks.remove(self._collecting)
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(1.0)  # it wakes on the event at once, unless sampling (microseconds)

    # -- on the loop -----------------------------------------------------------------------------

    def _arm(self, now: float) -> None:
        loop = self._loop
        if loop is None or self._stop.is_set():
            return
        self._beat_no += 1
        self._due = (self._beat_no, now + self.interval_s)
        self._handle = loop.call_later(self.interval_s, self._beat)

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks``: time each collection on the loop's thread (well under a microsecond each);
        one in another thread holds the GIL as well, but shows as a stall nobody's code ran in."""
        if threading.get_ident() != self._ident:
            return
        if phase == "start":
            self._gc_began = time.monotonic()
        else:
            now = time.monotonic()
            self._gc_s += now - self._gc_began
            self._gc_spans.append((self._gc_began, now))

    def _beat(self) -> None:
        now = time.monotonic()
        beat, due = self._due
        gc_s, self._gc_s = self._gc_s, 0.0
        spans, self._gc_spans = self._gc_spans, []
        self._arm(now)
        late = now - due
        if late >= self.threshold_s:
            self._report(late, beat, min(gc_s, late), now, spans)
        elif self._samples:
            self._samples.clear()  # taken while a beat was a little late, not a stall

    def _report(
        self, held_s: float, beat: int, gc_s: float, ended: float, spans: Sequence[tuple[float, float]] = ()
    ) -> None:
        taken = list(self._samples)  # one C call: the watcher thread cannot append midway
        self._samples.clear()
        stall = self._judge(held_s, [sample for sample in taken if sample.beat == beat], gc_s, ended, spans)
        self.stalls.append(stall)
        if self._sink is not None:
            self._sink.observe_stall(stall.culprit, held_s)
        self._log(stall)

    def _judge(
        self,
        held_s: float,
        samples: list[_Sample],
        gc_s: float = 0.0,
        ended: float = 0.0,
        spans: Sequence[tuple[float, float]] = (),
    ) -> Stall:
        """Whose stall it was, and which plugin's single run of code held the loop long enough to charge.

        The culprit is the plugin whose run was charged, else whose code (a plugin's or the host's) most
        samples found, the host's on a tie; a stall the collector took most of, with nobody charged, is
        the host's."""
        if not samples:
            return Stall(held_s, UNKNOWN, (), own_call=False, gc_s=gc_s)
        runs = _runs(samples)
        lengths = {
            id(run): _length(run, runs[i + 1][0].at if i + 1 < len(runs) else ended, self.interval_s, spans)
            for i, run in enumerate(runs)
        }
        opened: list[tuple[str, str]] = []
        longest: dict[str, list[_Sample]] = {}
        for run in runs:
            plugin = run[0].blame.plugin
            if plugin is None:
                continue
            if plugin not in longest or lengths[id(run)] > lengths[id(longest[plugin])]:
                longest[plugin] = run
            if not all(sample.inline == plugin for sample in run):  # inline, the dispatcher charged it
                opened += [(plugin, hook) for hook in self._charge(plugin, lengths[id(run)])]
        charged = {plugin for plugin, _ in opened}
        if charged:
            culprit = max(charged, key=lambda plugin: lengths[id(longest[plugin])])
        else:
            counts = collections.Counter(sample.blame.plugin or HOST for sample in samples)
            culprit = max(counts, key=lambda whose: (counts[whose], whose == HOST))
            if culprit == HOST or gc_s * 2 >= held_s:
                host = [sample for sample in samples if sample.blame.plugin is None] or samples
                shared = GARBAGE_COLLECTION if gc_s * 2 >= held_s else next(
                    (sample.blame.where for sample in host if sample.blame.where), ""
                )
                return Stall(held_s, HOST, host[0].blame.frames, own_call=False, shared=shared, gc_s=gc_s)
        run = longest[culprit]
        own = all(sample.inline == culprit for sample in run)
        return Stall(
            held_s, culprit, run[0].blame.frames, own_call=own, opened=tuple(opened), gc_s=gc_s,
            run_s=lengths[id(run)],
        )

    def _charge(self, plugin: str, run_s: float) -> list[str]:
        """Open each breaker of ``plugin`` whose hook's deadline ``run_s`` exceeds ``open_on_loop_hold``
        times, as the dispatcher does for an inline call that held the loop that long; the hooks opened."""
        guards = self._guards
        if guards is None or guards.config.open_on_loop_hold <= 0:
            return []
        factor = guards.config.open_on_loop_hold
        return sorted(
            guard.hook
            for guard in guards.all()
            if guard.plugin == plugin
            and run_s >= factor * guards.deadline_s(guard.hook)
            and guard.breaker.trip()
        )

    def _log(self, stall: Stall) -> None:
        """One line per culprit a second at most; the next says how many were left out."""
        now = time.monotonic()
        due, left_out = self._logged.get(stall.culprit, (0.0, 0))
        if now < due:
            self._logged[stall.culprit] = (due, left_out + 1)
            return
        self._logged[stall.culprit] = (now + LOG_EVERY_S, 0)
        _log(stall, left_out)

    # -- in the watcher thread ------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            beat, due = self._due
            if time.monotonic() - due < self.interval_s:
                continue
            try:
                self._sample(beat)
            except Exception:  # never let the watcher die: the next stall would go unseen
                if not self._failed:
                    self._failed = True
                    log.exception("the event loop's stall watch could not sample its stack")

    def _sample(self, beat: int) -> None:
        if len(self._samples) >= SAMPLES_KEPT:
            return  # a stall this long is told by its first samples
        frame = _current_frames().get(self._ident)
        if frame is None:
            return
        loop = self._loop
        watch = watch_of(loop) if loop is not None else None
        guard = watch.guard if watch is not None else None
        running = _current_tasks().get(loop) if loop is not None else None
        try:
            blame = self._owners_now().blame(frame)
        finally:
            del frame
        inline = guard.plugin if guard is not None else None
        self._samples.append(_Sample(beat, time.monotonic(), blame, inline, running))

    def _owners_now(self) -> Owners:
        plugins = self._plugins()
        cached = self._owners
        if cached is None or cached[0] is not plugins:
            cached = self._owners = (plugins, Owners(plugins.values()))
        return cached[1]


def _current_frames() -> dict[int, FrameType]:
    """``sys._current_frames()``, with the collector off while it runs on Python 3.11.

    There it holds the runtime's thread-list lock while it makes frame objects; an allocation may start a
    collection, and a finalizer run by it (a ``threading.local`` let go, another thread taking the GIL to
    end) may wait for that lock: every thread of the worker then hangs (CPython gh-106883, fixed in 3.12,
    where a collection waits for the interpreter's next check). A test worker hung so, the watcher inside
    a collection's finalizer under ``_current_frames``. The collector stays as the process set it: off
    only when it was on, and on again after."""
    if sys.version_info >= (3, 12) or not gc.isenabled():
        return sys._current_frames()
    gc.disable()
    try:
        return sys._current_frames()
    finally:
        gc.enable()


def _current_tasks() -> Mapping[object, object]:
    """asyncio's task now running on each loop (its own bookkeeping, which uvloop's tasks keep too)."""
    tasks = getattr(asyncio.tasks, "_current_tasks", None)
    return tasks if isinstance(tasks, dict) else {}


def _runs(samples: list[_Sample]) -> list[list[_Sample]]:
    """``samples`` cut into stretches of the same plugin's code in one activation (the same task and the
    same outermost frame of the plugin's, compared as objects); the host's samples make stretches too."""
    runs: list[list[_Sample]] = []
    before: _Sample | None = None
    for sample in samples:
        if before is not None and _same(before, sample):
            runs[-1].append(sample)
        else:
            runs.append([sample])
        before = sample
    return runs


def _same(one: _Sample, other: _Sample) -> bool:
    return (
        one.blame.plugin is not None
        and one.blame.plugin == other.blame.plugin
        and one.task is other.task
        and one.blame.anchor is other.blame.anchor
    )


def _length(
    run: list[_Sample], then: float, interval_s: float, spans: Sequence[tuple[float, float]]
) -> float:
    """How long ``run``'s code held the loop, at least: to ``then`` (the next sample of anything else, or
    the loop's return) from its first sample, but no further than one interval past its last sample (no
    sample after it: the code ended, or C code held the GIL, its own or another's), less the
    collections in that time that no sample of it fell in (the collector's own time)."""
    start, last = run[0].at, run[-1].at
    end = min(then or last, last + interval_s)
    held = end - start
    for began, done in spans:
        low, high = max(began, start), min(done, end)
        if high > low and not any(began <= sample.at <= done for sample in run):
            held -= high - low
    return max(0.0, held)


def _log(stall: Stall, left_out: int = 0) -> None:
    held = f"{stall.held_s * 1000:.0f} ms or more"
    if stall.gc_s >= 0.001:
        held += f" ({stall.gc_s * 1000:.0f} ms of it garbage collection)"
    where = " ← ".join(stall.frames)
    more = f" ({left_out} more such stalls in the last second)" if left_out else ""
    if stall.culprit == UNKNOWN:
        log.warning(
            "the event loop was held %s and no sample caught the code (C code holding the GIL?)%s",
            held, more, extra={"culprit": UNKNOWN},
        )
    elif stall.culprit == HOST:
        if stall.shared == GARBAGE_COLLECTION:
            whose = " and its garbage collector"
        elif stall.shared:
            whose = f" (in {stall.shared}, shared by several plugins)"
        else:
            whose = ""
        log.warning("the event loop was held %s by the host's code%s: %s%s", held, whose, where, more,
                    extra={"culprit": HOST})
    elif stall.own_call:
        log.info(
            "the event loop was held %s by plugin %r in its own call, charged there: %s%s", held,
            stall.culprit, where, more, extra={"culprit": stall.culprit, "plugin": stall.culprit},
        )
    else:
        opened = ", ".join(f"{plugin}:{hook}" for plugin, hook in stall.opened)
        charged = (
            f"; its code ran {stall.run_s * 1000:.0f} ms at a stretch, so breakers open: {opened}"
            if stall.opened
            else f"; its code ran {stall.run_s * 1000:.0f} ms at a stretch at most, no breaker opens"
        )
        log.warning(
            "the event loop was held %s by plugin %r outside its calls%s: %s%s", held, stall.culprit,
            charged, where, more, extra={"culprit": stall.culprit, "plugin": stall.culprit},
        )
