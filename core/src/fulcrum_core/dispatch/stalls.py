"""Stalls of the event loop: caught while they last, blamed on the code that held the loop, reported, charged.

Every plugin call is timed, and one that holds the loop past its deadline is charged by the dispatcher.
But plugin code also runs outside any call: a finalizer the garbage collector runs (``__del__``, a
generator's ``finally``), an abandoned async generator's ``aclose``, a callback the plugin scheduled
with ``loop.call_soon``, the rest of a call that suspended and then blocked. While such code holds the
loop every request of the worker waits, the plugin's calls report ``ok``, and nothing names it.

So each worker keeps a heartbeat on its loop (a timer every quarter of ``loop_stall_ms``) and a watcher
thread. While a beat is overdue the thread samples the loop thread's stack (``sys._current_frames``):
the innermost frame that is the host's or a plugin's decides whose code holds the loop (:class:`Owners`;
the standard library's and other libraries' frames are passed over, so a plugin blocked in
``time.sleep`` or a client library is still the plugin). When the loop comes back, the late beat
reports the stall, if it lasted ``loop_stall_ms`` or more:

- one log line naming the culprit (a plugin, ``host``, or ``unknown`` when no sample caught it, as when
  C code held the GIL throughout) and the frames it was in;
- ``fulcrum_event_loop_stalls_total{culprit}`` and ``fulcrum_event_loop_stalled_seconds_total{culprit}``;
- a plugin that held the loop outside a call of its own running inline is charged as the dispatcher
  charges an inline call that holds it: each of its breakers whose hook's deadline the stall exceeded
  ``open_on_loop_hold`` times opens. Inside its own inline call the dispatcher has already charged it.

The garbage collector's time is nobody's. A collection runs wherever an allocation set it off and holds
the GIL throughout, so the watcher cannot sample during it, and the sample it takes as the collection
ends finds the code that allocated. ``gc.callbacks`` time every collection: a stall the collector took
most of is the host's, and a plugin is charged only for the rest (one whose ``__del__`` blocks inside
a collection of cyclic garbage is named, but not charged for that part).

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
from collections.abc import Callable, Iterable, Mapping
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

HOST_PACKAGES = frozenset({"fulcrum_core", "fulcrum_sdk", "fulcrum_registry"})
"""Top-level packages whose frames are the host's own code."""

FRAMES_SHOWN = 6
"""How many frames of the culprit's stack a stall's report shows, innermost first."""
SAMPLES_KEPT = 64
"""At most this many samples are kept per stall (one every quarter of ``loop_stall_ms``)."""


class Blame(NamedTuple):
    """Whose code one sample of the loop thread's stack found running."""

    plugin: str | None  # None: the host's, or nobody's to tell (``where`` says which)
    frames: tuple[str, ...]  # innermost first: "module.function:line"
    where: str = ""  # for ``plugin`` None: "" the host, else the module several plugins share


class Owners:
    """Which plugin a frame's code belongs to, from the loaded plugins: by code object (the hook
    implementations and the functions and classes defined inside them, for plugins made of functions
    in a module shared with other code, as tests make them), by module, and by top-level package
    (an installed plugin is its distribution's package). A module or package several plugins share
    decides nothing."""

    def __init__(self, plugins: Iterable[LoadedPlugin]) -> None:
        codes: dict[CodeType, str | None] = {}
        modules: dict[str, str | None] = {}
        packages: dict[str, str | None] = {}
        for plugin in plugins:
            obj = plugin.plugin
            if isinstance(obj, ModuleType):
                _claim(modules, obj.__name__, plugin.id)
                _claim(packages, _top(obj.__name__), plugin.id)
            else:
                _claim(modules, type(obj).__module__, plugin.id)
            for impl in plugin.impls.values():
                function = _unwrap(impl.function)
                name = getattr(function, "__module__", None)
                if isinstance(name, str):
                    _claim(modules, name, plugin.id)
                code = getattr(function, "__code__", None)
                if isinstance(code, CodeType):
                    for each in _nested(code):
                        _claim(codes, each, plugin.id)
        self._codes = codes
        self._modules = modules
        self._packages = {name: owner for name, owner in packages.items() if name not in HOST_PACKAGES}

    def blame(self, frame: FrameType | None) -> Blame:
        """The innermost frame from ``frame`` outwards that is the host's or one plugin's decides."""
        shared = ""
        top = frame
        while frame is not None:
            code = frame.f_code
            module = frame.f_globals.get("__name__")
            module = module if isinstance(module, str) else ""
            if code in self._codes:
                owner = self._codes[code]
            elif _top(module) in HOST_PACKAGES:
                return Blame(None, _frames(top, frame))
            elif module in self._modules:
                owner = self._modules[module]
            elif _top(module) in self._packages:
                owner = self._packages[_top(module)]
            else:
                frame = frame.f_back
                continue
            if owner is not None:
                return Blame(owner, _frames(top, frame))
            shared = shared or module
            frame = frame.f_back
        return Blame(None, _frames(top, None), shared)


def _claim(table: dict[Any, str | None], key: Any, plugin: str) -> None:
    """``key`` is ``plugin``'s, unless another plugin claimed it too (then nobody's: None)."""
    if table.get(key, plugin) != plugin:
        table[key] = None
    else:
        table[key] = plugin


def _top(module: str) -> str:
    return module.partition(".")[0]


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
    blame: Blame
    inline: str | None  # the plugin whose call the dispatcher was running inline then, if any


class Stall(NamedTuple):
    """One stall of the loop, as reported."""

    held_s: float  # at least this long (from when the beat was due to when it ran)
    culprit: str  # a plugin's id, HOST or UNKNOWN
    frames: tuple[str, ...]  # where the culprit's code was, innermost first
    own_call: bool  # the culprit's own call was running inline: the dispatcher charged it
    opened: tuple[str, ...] = ()  # the hooks whose breaker of the culprit this stall opened
    shared: str = ""  # HOST for want of telling: the module several plugins share that was running
    gc_s: float = 0.0  # how much of it the garbage collector took: nobody's, never charged


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
        self._samples: collections.deque[_Sample] = collections.deque(maxlen=SAMPLES_KEPT)
        self._owners: tuple[object, Owners] | None = None
        self._failed = False
        self._gc_began = 0.0
        self._gc_s = 0.0  # the collector's time since the last beat (any thread's: it holds the GIL)

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
        """``gc.callbacks``: time each collection (a fraction of a microsecond per collection)."""
        if phase == "start":
            self._gc_began = time.monotonic()
        else:
            self._gc_s += time.monotonic() - self._gc_began

    def _beat(self) -> None:
        now = time.monotonic()
        beat, due = self._due
        gc_s, self._gc_s = self._gc_s, 0.0
        self._arm(now)
        late = now - due
        if late >= self.threshold_s:
            self._report(late, beat, min(gc_s, late))
        elif self._samples:
            self._samples.clear()  # taken while a beat was a little late, not a stall

    def _report(self, held_s: float, beat: int, gc_s: float = 0.0) -> None:
        samples = [sample for sample in self._samples if sample.beat == beat]
        self._samples.clear()
        stall = self._judge(held_s, samples, gc_s)
        self.stalls.append(stall)
        if self._sink is not None:
            self._sink.observe_stall(stall.culprit, held_s)
        _log(stall)

    def _judge(self, held_s: float, samples: list[_Sample], gc_s: float = 0.0) -> Stall:
        """Whose stall it was. The collector's time is nobody's: most of the stall → the host's, and a
        plugin is charged for the rest only (a collection runs wherever an allocation set it off, and
        holds the GIL, so a sample taken as it ends finds the code that allocated)."""
        if gc_s * 2 >= held_s:
            frames = samples[0].blame.frames if samples else ()
            return Stall(held_s, HOST, frames, own_call=False, shared=GARBAGE_COLLECTION, gc_s=gc_s)
        if not samples:
            return Stall(held_s, UNKNOWN, (), own_call=False, gc_s=gc_s)
        counts = collections.Counter(s.blame.plugin for s in samples if s.blame.plugin is not None)
        if not counts:
            shared = next((s.blame.where for s in samples if s.blame.where), "")
            return Stall(held_s, HOST, samples[0].blame.frames, own_call=False, shared=shared, gc_s=gc_s)
        plugin = counts.most_common(1)[0][0]
        its = [s for s in samples if s.blame.plugin == plugin]
        own = all(s.inline == plugin for s in its)
        opened = () if own else self._charge(plugin, held_s - gc_s)
        return Stall(held_s, plugin, its[0].blame.frames, own_call=own, opened=opened, gc_s=gc_s)

    def _charge(self, plugin: str, held_s: float) -> tuple[str, ...]:
        """Open each breaker of ``plugin`` whose hook's deadline ``held_s`` exceeds ``open_on_loop_hold``
        times, as the dispatcher does for an inline call that held the loop that long."""
        guards = self._guards
        if guards is None or guards.config.open_on_loop_hold <= 0:
            return ()
        factor = guards.config.open_on_loop_hold
        opened = [
            guard.hook
            for guard in guards.all()
            if guard.plugin == plugin
            and held_s >= factor * guards.deadline_s(guard.hook)
            and guard.breaker.trip()
        ]
        return tuple(sorted(opened))

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
        frame = sys._current_frames().get(self._ident)
        if frame is None:
            return
        loop = self._loop
        watch = watch_of(loop) if loop is not None else None
        guard = watch.guard if watch is not None else None
        try:
            blame = self._owners_now().blame(frame)
        finally:
            del frame
        self._samples.append(_Sample(beat, blame, guard.plugin if guard is not None else None))

    def _owners_now(self) -> Owners:
        plugins = self._plugins()
        cached = self._owners
        if cached is None or cached[0] is not plugins:
            cached = self._owners = (plugins, Owners(plugins.values()))
        return cached[1]


def _log(stall: Stall) -> None:
    held = f"{stall.held_s * 1000:.0f} ms or more"
    if stall.gc_s >= 0.001:
        held += f" ({stall.gc_s * 1000:.0f} ms of it garbage collection)"
    where = " ← ".join(stall.frames)
    if stall.culprit == UNKNOWN:
        log.warning(
            "the event loop was held %s and no sample caught the code (C code holding the GIL?)", held,
            extra={"culprit": UNKNOWN},
        )
    elif stall.culprit == HOST:
        if stall.shared == GARBAGE_COLLECTION:
            whose = " and its garbage collector"
        elif stall.shared:
            whose = f" (in {stall.shared}, shared by several plugins)"
        else:
            whose = ""
        log.warning("the event loop was held %s by the host's code%s: %s", held, whose, where,
                    extra={"culprit": HOST})
    elif stall.own_call:
        log.info(
            "the event loop was held %s by plugin %r in its own call, charged there: %s", held,
            stall.culprit, where, extra={"culprit": stall.culprit, "plugin": stall.culprit},
        )
    else:
        opened = f"; its breakers of {', '.join(stall.opened)} open" if stall.opened else ""
        log.warning(
            "the event loop was held %s by plugin %r outside its calls%s: %s", held, stall.culprit,
            opened, where, extra={"culprit": stall.culprit, "plugin": stall.culprit},
        )
