"""``create_app(settings)``: the one place that wires the host together. No import-time side effects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from fulcrum_sdk.data import DataProvider, StaticDataProvider
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import ExternalDocumentation

from fulcrum_core import host_threads
from fulcrum_core.api import routers
from fulcrum_core.api.acceptable import AcceptableMiddleware
from fulcrum_core.api.head import HeadAsGet
from fulcrum_core.api.input_problems import document_input_problems
from fulcrum_core.api.openapi_rate_limit import document_rate_limit
from fulcrum_core.api.openapi_refusals import document_refusals
from fulcrum_core.api.openapi_security import document_security, security_components
from fulcrum_core.api.openapi_tuples import VarTupleSchemaPlugin
from fulcrum_core.api.path_text import PathTextMiddleware
from fulcrum_core.api.request import FulcrumRequest
from fulcrum_core.auth.middleware import auth_middleware
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.branches.host import (
    approved_from_plugins,
    attach_branches,
    branch_store_of,
    open_branch_store,
)
from fulcrum_core.campaigns import CAMPAIGNS, CampaignStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_core.data.warmup import warm_reads
from fulcrum_core.dispatch import leftovers
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.dispatch.daemon_threads import DaemonThreadPool, joined
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.dispatch.shared import SharedBreakers
from fulcrum_core.dispatch.stalls import StallWatch
from fulcrum_core.errors import problem_details_plugin
from fulcrum_core.observability import setup as observability
from fulcrum_core.observability.requests import CountsRequests
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.problem_types import problem_base
from fulcrum_core.registry_host import attach_registry, registry_of
from fulcrum_core.registry_host.host import admission_gate
from fulcrum_core.runtime import Runtime
from fulcrum_core.settings import Settings
from fulcrum_core.transactions.service import TransactionService

log = logging.getLogger(__name__)

__all__ = ["build_runtime", "create_app"]


def build_runtime(
    settings: Settings,
    *,
    provider: DataProvider | None = None,
    extra_plugins: Sequence[object] = (),
    load_entry_points: bool = True,
    obey_registry: bool | None = None,
) -> Runtime:
    """Build the host's parts. Tests pass ``extra_plugins`` (modules or objects with hookimpls and a
    ``MANIFEST`` attribute) and ``load_entry_points=False`` to run exactly the plugins they choose.

    ``obey_registry`` (default: when entry points are loaded) runs only registry-approved releases, and
    then (outside dev mode) an entry point is imported only after its files are verified against the
    approved wheel: a tampered or unapproved plugin's module body never runs."""
    db = Database(settings.resolved_database_url(), statement_timeout_ms=settings.db_statement_timeout_ms)
    try:
        return _assemble(
            settings,
            db,
            provider=provider,
            extra_plugins=extra_plugins,
            load_entry_points=load_entry_points,
            obey_registry=obey_registry,
        )
    except BaseException:
        # Nothing else holds the database yet: its pooled connection (the admission gate has read the
        # registry) would otherwise be closed by the garbage collector, whenever it runs.
        db.dispose()
        raise


def _assemble(
    settings: Settings,
    db: Database,
    *,
    provider: DataProvider | None,
    extra_plugins: Sequence[object],
    load_entry_points: bool,
    obey_registry: bool | None,
) -> Runtime:
    """The runtime's parts around ``db`` (:func:`build_runtime` closes ``db`` when this raises)."""
    data = provider if provider is not None else DemoDataProvider.from_seed()
    obey = load_entry_points if obey_registry is None else obey_registry
    gate = admission_gate(settings, db) if obey and load_entry_points and not settings.dev_mode else None
    plugins = get_plugin_manager(
        settings, extra_plugins=extra_plugins, load_entry_points=load_entry_points, admission=gate
    )
    if gate is not None and gate.unreadable is not None:
        plugins.unready_reason = (
            "the registry could not be read before importing the installed plugins, so none was; "
            "they are imported on the first registry poll that reads it (migrate the database)"
        )
    dispatcher = Dispatcher(settings)
    # Only a provider holding its customers can say which branches have any; the bank's systems cannot.
    known = (
        {record.profile.branch for record in data.records.values()}
        if isinstance(data, StaticDataProvider) else None
    )
    branches = open_branch_store(
        settings, approved_from_plugins(plugins, dev_mode=settings.dev_mode), known_branches=known
    )
    contexts = ContextFactory(settings=settings, db=db, provider=data, plugins=plugins, branches=branches)
    tokens = TokenService.from_settings(settings)
    transactions = TransactionService(
        settings=settings, db=db, plugins=plugins, dispatcher=dispatcher, contexts=contexts, provider=data
    )
    runtime = Runtime(
        settings=settings,
        db=db,
        provider=data,
        plugins=plugins,
        dispatcher=dispatcher,
        contexts=contexts,
        tokens=tokens,
        transactions=transactions,
    )
    attach_registry(runtime, obey=obey, gate=gate)
    attach_branches(runtime, branches)
    observability.attach_metrics(runtime)
    if settings.redis_url and not settings.dev_mode:  # a developer's plugins never open shared breakers
        runtime.extras[SHARED_BREAKERS] = SharedBreakers(
            settings.redis_url,
            dispatcher.resilience,
            poll_seconds=settings.breaker_share_seconds,
            key=f"{settings.redis_prefix}breakers:open",
            known=lambda plugin_id: plugin_id in plugins.loaded,
        )
    return runtime


STALLS = "dispatch.stalls"
"""``runtime.extras`` key of the app's :class:`StallWatch` (``dispatch/stalls.py``)."""

SHARED_BREAKERS = "dispatch.shared_breakers"
"""``runtime.extras`` key of the :class:`SharedBreakers` (present when Redis is configured)."""


class _App(CountsRequests, HeadAsGet):
    """The host's litestar application: every request counted (``observability/requests.py``) as it
    arrives, before HEAD is answered as GET (``api/head.py``)."""


def create_app(settings: Settings, *, runtime: Runtime | None = None, debug: bool = False) -> Litestar:
    """The litestar app for ``settings``; pass a prebuilt ``runtime`` to control its parts."""
    observability.start_logging(settings)
    if runtime is not None:
        return _app(settings, runtime, debug=debug)
    rt = build_runtime(settings)
    try:
        return _app(settings, rt, debug=debug)
    except BaseException:
        # The runtime built here is nobody else's yet: its threads and pooled connections go with it.
        rt.dispatcher.close()
        rt.db.dispose()
        raise


def _app(settings: Settings, rt: Runtime, *, debug: bool) -> Litestar:
    """The app around a built runtime (:func:`create_app` without the runtime's ownership)."""
    registry = registry_of(rt)
    branch_store = branch_store_of(rt)
    shared: SharedBreakers | None = rt.extras.get(SHARED_BREAKERS)
    threads = _PluginThreads(rt.dispatcher)
    stalls = rt.extras[STALLS] = StallWatch(
        settings.loop_stall_ms / 1000,
        lambda: rt.plugins.loaded,
        rt.dispatcher.resilience,
        observability.runtime_metrics(rt),
    )
    app = _App(
        route_handlers=list(routers()),
        middleware=[
            *observability.middleware_before_auth(rt),
            PathTextMiddleware,  # a path that is no text is refused whatever the route's access
            auth_middleware(),
            *observability.middleware_after_auth(rt),
            AcceptableMiddleware,  # after the rate limit: a client sending a bad Accept is counted too
        ],
        plugins=[problem_details_plugin(problem_base(settings)), VarTupleSchemaPlugin()],
        logging_config=observability.logging_config(rt),
        request_class=FulcrumRequest,
        before_send=observability.before_send(),
        openapi_config=OpenAPIConfig(
            title="Fulcrum",
            version="0.1.0",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=security_components(settings.issuer),
            external_docs=ExternalDocumentation(
                url=problem_base(settings),
                description="Every problem type (error code) the API answers; each problem's `type` is one",
            ),
            # The schema routes are public; every other route declares its scopes (auth/guards.py).
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"public": True}
            ),
        ),
        on_startup=[
            threads.start,
            _warm_reads(rt),
            registry.start,
            *([branch_store.start] if branch_store else []),
            *([shared.start] if shared else []),
            *observability.startup_hooks(rt),
            stalls.start,  # last: what starting up holds the loop for is not a stall of serving
        ],
        on_shutdown=[
            stalls.stop,
            registry.stop,
            *([branch_store.stop] if branch_store else []),
            *([shared.stop] if shared else []),
            _drain_campaigns(rt),
            threads.stop,
            _drain_reads(rt),
            rt.db.dispose,
            *observability.shutdown_hooks(rt),
        ],
        debug=debug,
    )
    app.state.runtime = rt
    app.request_metrics = observability.runtime_metrics(rt)
    _refuse_loose_public_flags(app)
    document_input_problems(app)
    document_refusals(app)
    document_security(app)
    document_rate_limit(app, settings.rate_limit)
    return app


WARM_UP_S = 5.0
"""How long a starting worker waits for its request path's reads to be warmed (``data/warmup.py``)."""

SHUTDOWN_THREADS_S = 5.0
"""How long a stopping host lets plugin threads still running finish (a late sync call, a blocking
client an ``async def`` plugin called through ``asyncio.to_thread``); the rest end with the process. A
worker ``fulcrum serve`` runs gives the threads plugins started themselves as long again as it exits
(``exit_threads.py``)."""


DEFAULT_EXECUTOR_THREADS: Final = 32
"""The event loop's default executor (``asyncio.to_thread``): asyncio's largest size, whatever the cores,
since only plugins' blocking calls and the loop's name lookups run there, and each plugin gets a quarter."""


def _default_pool() -> DaemonThreadPool:
    """A default executor for the event loop, whose threads are daemons (started as needed).

    A ``to_thread`` call whose awaiting task was cancelled (a plugin cut off at its deadline while its
    blocking client hung) lends its thread: up to four times as many may run, so a few hung calls do not
    queue every later ``to_thread`` call, the plugins' and the loop's own lookups, behind them. Each
    plugin (known by the task watch) has a quarter of the threads at once, eight, its other calls waiting
    for its own (asyncio's own default executor has six threads on two cores, for everyone); once all
    eight hang, given up, its calls fail at once (``ThreadShareUsed``) until one returns, so it never
    holds more threads than that."""
    size = DEFAULT_EXECUTOR_THREADS
    return DaemonThreadPool(
        size, "asyncio", ceiling=4 * size, lend_on_cancel=True,
        owner=leftovers.plugin_now, share=size // 4,
        label="the event loop's default executor (asyncio.to_thread)",
    )


class _PluginThreads:
    """The threads plugin code runs in, given a bounded time to finish when the host stops: the dispatcher's
    pool, and the event loop's default executor (``asyncio.to_thread``), which the loop would otherwise
    join without a bound as it closes (``asyncio.run``, uvicorn) and ``concurrent.futures`` at exit. So the
    host makes the loop's default executor a :class:`DaemonThreadPool` when it starts on the loop. It also
    installs the loop's task factory then, which bounds the tasks plugins start (``leftovers.py``); the
    plugins' tasks cancelled at their deadlines that still run when it stops get the same bounded time."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.default: DaemonThreadPool | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.default = _default_pool()
        loop.set_default_executor(self.default)
        # The loop's task factory tags the tasks plugin code starts, bounding them by their call's
        # deadline (``dispatch/leftovers.py``): from the start, before any request.
        leftovers.install(loop)

    async def stop(self) -> None:
        self.dispatcher.close()
        waits = [self.dispatcher.threads_ended(SHUTDOWN_THREADS_S)]
        if self.default is not None:
            # Work started from now on (the loop's own lookups, later hooks) gets fresh threads, which the
            # loop joins as it closes; this pool's get the bounded wait, as the dispatcher's do.
            asyncio.get_running_loop().set_default_executor(_default_pool())
            self.default.shutdown(wait=False)
            waits.append(joined(self.default, SHUTDOWN_THREADS_S))
        tasks = leftovers.stop_waiting_for_given_up(SHUTDOWN_THREADS_S)
        ended, left = await asyncio.gather(asyncio.gather(*waits), tasks)
        if not all(ended):
            log.warning(
                "plugin threads still running %.0f s after the host stopped; not waiting for them",
                SHUTDOWN_THREADS_S,
            )
        if left:
            log.warning(
                "%d plugin task(s) cancelled at their deadlines still running %.0f s after the host "
                "stopped; not waiting for them", left, SHUTDOWN_THREADS_S,
            )


def _drain_campaigns(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """The shutdown hook that lets the campaign calls in flight land (they may need the plugin threads,
    so it comes before those stop), and cancels those still running after ``SHUTDOWN_THREADS_S``."""

    async def drain() -> None:
        store: CampaignStore | None = rt.extras.get(CAMPAIGNS)
        if store is None:
            return
        cancelled = await store.drain(SHUTDOWN_THREADS_S)
        if cancelled:
            log.warning("%d campaign call(s) still running %.0f s after the host stopped; cancelled them",
                        cancelled, SHUTDOWN_THREADS_S)

    return drain


SHUTDOWN_READS_S = 5.0
"""How long a stopping host waits for cache reads still in flight before it closes the database."""


def _warm_reads(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """The startup hook that runs the request path's reads once, before the worker serves (``warmup.py``),
    and loads what its first request would otherwise load: the token libraries' backends, the pairwise
    secret (each ≈ 20–40 ms on a loaded machine, paid on the loop every plugin of that page waits on)."""

    async def warm() -> None:
        try:
            rt.tokens.warm()
            rt.contexts.warm()
        except Exception as exc:  # startup goes on: the first request meets the same problem and reports it
            log.warning("the request path was not warmed at startup: %s: %s", type(exc).__name__, exc)
        try:
            async with asyncio.timeout(WARM_UP_S):  # a database that hangs is /readyz's to report
                await host_threads.to_thread(warm_reads, rt.db)
        except TimeoutError:
            log.warning("the request path's reads were not warmed within %.0f s; serving anyway", WARM_UP_S)

    return warm


def _drain_reads(rt: Runtime) -> Callable[[], Awaitable[None]]:
    """The shutdown hook that lets background cache refreshes land before the database closes."""

    async def drain() -> None:
        late = await rt.contexts.drain_reads(SHUTDOWN_READS_S)
        if late:
            log.warning("%d cache read(s) still in flight after %.0f s; closing the database anyway", late,
                        SHUTDOWN_READS_S)

    return drain


def _refuse_loose_public_flags(app: Litestar) -> None:
    """``opt["public"]`` skips authentication when merely truthy: only the literal ``True`` may say so."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if "public" in handler.opt and handler.opt["public"] is not True:
                raise ValueError(f"route {route.path}: opt['public'] must be True or absent")
