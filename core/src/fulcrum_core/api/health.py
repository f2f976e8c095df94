"""``/healthz`` (the process answers) and ``/readyz`` (the database answers at this release's schema, and
plugins are loaded).

Branch configuration problems (an invalid edit, an unresolvable secret reference) are reported by
``/readyz`` under ``warnings`` but do not fail readiness: the worker keeps serving the last good
configuration, so taking it out of the load balancer would only turn a config typo into an outage.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Literal

import anyio
import msgspec
from alembic.script import ScriptDirectory
from litestar import Request, get
from sqlalchemy import Connection, inspect, text

from fulcrum_core import host_threads, stopping
from fulcrum_core.branches.host import branch_store_of
from fulcrum_core.dispatch.leftovers import host_task
from fulcrum_core.errors import ServiceUnavailable
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = ["READY_DB_TIMEOUT_S", "ROUTES", "Health", "healthz", "readyz"]

log = logging.getLogger("fulcrum.api")

READY_DB_TIMEOUT_S = 2.0
"""How long ``/readyz`` waits for ``SELECT 1`` before calling the database unavailable."""

_REVISIONS = "health.revisions"


class Health(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A probe's answer; ``warnings`` appears only when there are some."""

    status: Literal["ok", "ready"]
    # Problems that do not stop the worker serving, e.g. a branch file the last reload refused.
    warnings: list[str] = []


def _revision(conn: Connection) -> str | None:
    """The revision alembic stamped, or ``None``; read directly, since alembic's migration context logs
    two INFO lines each time it is set up, which every probe would write."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(revision) if revision is not None else None


def _ping(runtime: Runtime) -> str | None:
    """Why the database cannot serve this release, or ``None``: it answers, and its schema is this
    release's head or a revision this release does not know (a newer release migrated it; migrations
    add before they remove, so a worker of the release before keeps working)."""
    with runtime.db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        current = _revision(conn)
    head, known = _revisions(runtime)
    if current is None:
        return "database: not migrated; run fulcrum db upgrade"
    if current != head and current in known:
        return f"database: at revision {current}, this release needs {head}; run fulcrum db upgrade"
    return None


def _revisions(runtime: Runtime) -> tuple[str, frozenset[str]]:
    """The packaged migrations' head and every revision they know (read once per runtime)."""
    found: tuple[str, frozenset[str]] | None = runtime.extras.get(_REVISIONS)
    if found is None:
        script = ScriptDirectory.from_config(runtime.db.alembic_config())
        found = (script.get_current_head() or "", frozenset(r.revision for r in script.walk_revisions()))
        runtime.extras[_REVISIONS] = found
    return found


async def _database_reason(runtime: Runtime) -> str | None:
    """Why the database cannot serve, or ``None``, from :func:`_ping` in a data thread.

    Two waits of ``READY_DB_TIMEOUT_S`` each, so a busy host is not read as a database outage: one for
    a data thread to start the check (every thread held, by calls hung in the database or a bank, is
    reported as such and logged: the database was not asked), then one for the database, timed from
    when the check began. An answer that came within its wait counts even if the event loop was held
    meanwhile (a stall the stall watch reports); the database is blamed only for its own lateness.
    """
    loop = asyncio.get_running_loop()
    began = asyncio.Event()
    queued = time.monotonic()
    began_at: list[float] = []
    answered: list[tuple[str | None, float]] = []
    given_up = threading.Event()

    def ping() -> str | None:
        if given_up.is_set():  # a thread came free after the probe was answered: nobody waits for it
            return None
        began_at.append(time.monotonic())
        loop.call_soon_threadsafe(began.set)
        # A failure is an answer too: one that came while the event loop was held is named, not
        # reported as no answer at all.
        try:
            found = _ping(runtime)
        except Exception as exc:
            log.warning("readiness: database check failed: %s", exc)
            found = f"database: {type(exc).__name__}"
        answered.append((found, time.monotonic() - began_at[0]))
        return found

    check = host_task(host_threads.run_sync(ping, abandon_on_cancel=True), name="fulcrum-readiness")
    check.add_done_callback(lambda _: began.set())  # the pool may refuse it without starting it
    try:
        with anyio.move_on_after(READY_DB_TIMEOUT_S):
            await began.wait()
        if (failed := _refused(check)) is not None:
            return failed
        if not began_at or began_at[0] - queued > READY_DB_TIMEOUT_S:
            reason = (
                f"data threads: none free within {READY_DB_TIMEOUT_S:g} s to check the database "
                f"(all {host_threads.DATA_THREADS} {host_threads.DATA_POOL!r} threads are busy)"
            )
            log.warning("readiness: %s", reason)
            return reason
        with anyio.move_on_after(began_at[0] + READY_DB_TIMEOUT_S - time.monotonic()):
            await asyncio.wait([check])
        if answered and answered[0][1] <= READY_DB_TIMEOUT_S:
            return answered[0][0]
        return f"database: no answer to SELECT 1 within {READY_DB_TIMEOUT_S:g} s"
    finally:
        given_up.set()
        check.cancel()  # a check still queued is withdrawn; one running is left to end in its thread
        if check.done() and not check.cancelled():
            check.exception()  # seen: a failure after the wait was over is no unretrieved task error


def _refused(check: asyncio.Future[str | None]) -> str | None:
    """The reason, logged, if the data threads failed ``check`` without running it (a pool shut down)."""
    if not check.done() or check.cancelled() or (failed := check.exception()) is None:
        return None
    log.warning("readiness: database check failed: %s", failed)
    return f"database: {type(failed).__name__}"


@get("/healthz", opt={"public": True}, tags=["operations"], summary="Liveness")
async def healthz() -> Health:
    """200 whenever the process can answer at all."""
    return Health(status="ok")


@get("/readyz", opt={"public": True}, tags=["operations"], summary="Readiness")
async def readyz(request: Request[Any, Any, Any]) -> Health:
    """200 when the database answers, is migrated for this release and plugin loading finished; 503
    listing reasons.

    A 200 lists in ``warnings`` what serves but needs attention (branch configuration problems).
    """
    runtime = runtime_of(request)
    reasons: list[str] = []
    if (stop := stopping.reason()) is not None:
        reasons.append(stop)
    if not getattr(runtime.plugins, "ready", False):
        reasons.append("plugins: loading has not finished")
    unready = getattr(runtime.plugins, "unready_reason", None)
    if unready:
        reasons.append(f"plugins: {unready}")
    if (database := await _database_reason(runtime)) is not None:
        reasons.append(database)
    if reasons:
        raise ServiceUnavailable("not ready: " + "; ".join(reasons), code="not-ready", reasons=reasons)
    store = branch_store_of(runtime)
    warnings = [f"branches: {problem.line}" for problem in store.errors()] if store is not None else []
    return Health(status="ready", warnings=warnings)


ROUTES: list[Any] = [healthz, readyz]
