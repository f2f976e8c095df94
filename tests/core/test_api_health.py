"""``/healthz`` and ``/readyz``: public probes; readiness needs the database and loaded plugins."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fulcrum_core.api import health
from sqlalchemy import create_engine


def test_healthz_is_public(make_app: Any) -> None:
    """/healthz answers 200 without a token."""
    response = make_app().client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_a_database(make_app: Any) -> None:
    """/readyz answers 200 without a token when the database answers."""
    response = make_app().client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_is_unreachable(
    make_app: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable database makes /readyz a 503 problem listing the reason."""
    app = make_app()
    broken = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'db.sqlite'}")
    monkeypatch.setattr(app.runtime.db, "engine", broken)
    response = app.client.get("/readyz")
    broken.dispose()
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(r.startswith("database:") for r in response.json()["reasons"])


TIMEOUT_S = 1.5


def _answer_while_the_loop_is_held(monkeypatch: pytest.MonkeyPatch, answer: Callable[[Any], Any]) -> None:
    """Make /readyz's database check hold the event loop past the check's timeout (``TIMEOUT_S`` here) and
    then give ``answer(runtime)`` at once, as a stall the stall watch reports would. The timeout leaves a
    busy machine room to start the check's thread: an answer after it would be late."""
    monkeypatch.setattr(health, "READY_DB_TIMEOUT_S", TIMEOUT_S)
    run_sync = health.host_threads.run_sync
    loops: list[asyncio.AbstractEventLoop] = []

    async def on_this_loop(*args: Any, **kwargs: Any) -> Any:
        loops.append(asyncio.get_running_loop())
        return await run_sync(*args, **kwargs)

    def answers_while_the_loop_is_held(runtime: Any) -> Any:
        holding = threading.Event()

        def hold() -> None:
            holding.set()
            time.sleep(2 * TIMEOUT_S)

        loops[-1].call_soon_threadsafe(hold)
        assert holding.wait(10)
        return answer(runtime)

    monkeypatch.setattr(health.host_threads, "run_sync", on_this_loop)
    monkeypatch.setattr(health, "_ping", answers_while_the_loop_is_held)


def test_readyz_blames_the_database_only_for_its_own_lateness(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database answers at once while the event loop is held past the check's timeout (a stall,
    which the stall watch reports): /readyz is 200, not "no answer from the database" (a busy moment
    read as a database outage). A database that answers late is still a 503 saying so."""
    app = make_app()
    ping = health._ping
    _answer_while_the_loop_is_held(monkeypatch, ping)
    held = app.client.get("/readyz")
    assert (held.status_code, held.json()) == (200, {"status": "ready"})

    done = threading.Event()

    def answers_late(runtime: Any) -> Any:
        time.sleep(1.5 * TIMEOUT_S)
        try:
            return ping(runtime)
        finally:
            done.set()

    monkeypatch.setattr(health, "_ping", answers_late)
    late = app.client.get("/readyz")
    assert done.wait(10)  # the abandoned check ends before the app is closed
    assert late.status_code == 503
    assert late.json()["reasons"] == [f"database: no answer to SELECT 1 within {TIMEOUT_S:g} s"]


def test_readyz_names_a_database_failure_that_came_while_the_loop_was_held(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, log_records: Callable[[str], list[logging.LogRecord]]
) -> None:
    """A database that refuses at once while the event loop is held is a 503 naming the failure (and
    logged), as without the stall, not "no answer within the timeout" (it answered, with an error)."""
    app = make_app()
    records = log_records("fulcrum.api")

    def refuses(runtime: Any) -> Any:
        raise ConnectionRefusedError("connection refused")

    _answer_while_the_loop_is_held(monkeypatch, refuses)
    refused = app.client.get("/readyz")
    assert refused.status_code == 503
    assert refused.json()["reasons"] == ["database: ConnectionRefusedError"]
    assert "readiness: database check failed: connection refused" in [r.getMessage() for r in records]


def test_readyz_is_503_until_plugins_are_loaded(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugin loading not finished is a reason for 503."""
    app = make_app()
    monkeypatch.setattr(app.runtime.plugins, "ready", False)
    response = app.client.get("/readyz")
    assert response.status_code == 503
    assert "plugins: loading has not finished" in response.json()["reasons"]


def test_readyz_logs_nothing_when_ready(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, log_records: Callable[[str], list[logging.LogRecord]]
) -> None:
    """A probe every few seconds must not write log lines (it wrote alembic's two INFO lines each time)."""
    app = make_app()
    monkeypatch.setattr(logging.getLogger("alembic"), "level", logging.DEBUG)
    records = log_records("alembic")
    for _ in range(3):
        assert app.client.get("/readyz").status_code == 200
    assert [r.getMessage() for r in records] == []


def test_readyz_is_503_on_an_empty_database(
    make_app: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database without the migrations' version table is not migrated."""
    app = make_app()
    empty = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setattr(app.runtime.db, "engine", empty)
    response = app.client.get("/readyz")
    empty.dispose()
    assert response.status_code == 503
    assert "database: not migrated; run fulcrum db upgrade" in response.json()["reasons"]


def _stamp(app: Any, revision: str | None) -> None:
    from sqlalchemy import text

    with app.runtime.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        if revision is not None:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:r)"), {"r": revision})


def test_readyz_is_503_on_a_database_this_release_has_not_migrated(make_app: Any) -> None:
    """Never migrated, or at an older revision of this release's history: not ready, saying what to run."""
    app = make_app()
    head = app.runtime.db.heads()[0]
    _stamp(app, None)
    response = app.client.get("/readyz")
    assert response.status_code == 503
    assert "database: not migrated; run fulcrum db upgrade" in response.json()["reasons"]
    from alembic.script import ScriptDirectory

    older = ScriptDirectory.from_config(app.runtime.db.alembic_config()).get_revision(head).down_revision
    assert isinstance(older, str)
    _stamp(app, older)
    reasons = app.client.get("/readyz").json()["reasons"]
    assert reasons == [f"database: at revision {older}, this release needs {head}; run fulcrum db upgrade"]
    _stamp(app, head)
    assert app.client.get("/readyz").status_code == 200


def test_readyz_stays_ready_on_a_database_a_newer_release_migrated(make_app: Any) -> None:
    """A revision this release does not know is a newer release's: migrations add before they remove,
    so this worker keeps serving during a rolling deploy."""
    app = make_app()
    _stamp(app, "f" * 12)
    assert app.client.get("/readyz").status_code == 200


def _data_threads_held(monkeypatch: pytest.MonkeyPatch, timeout_s: float) -> tuple[threading.Event, Any]:
    """Give /readyz's check a data thread pool of one thread, held until the returned event is set (as
    calls hung in the database or a bank hold every data thread); the check's timeout is ``timeout_s``."""
    from fulcrum_core.dispatch.daemon_threads import DaemonThreadPool

    monkeypatch.setattr(health, "READY_DB_TIMEOUT_S", timeout_s)
    pool = DaemonThreadPool(1, "held")
    release = threading.Event()
    pool.submit(release.wait)

    async def in_the_held_pool(
        function: Callable[..., Any], *args: Any, abandon_on_cancel: bool = False
    ) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(function, *args))

    monkeypatch.setattr(health.host_threads, "run_sync", in_the_held_pool)
    return release, pool


def test_readyz_names_data_threads_that_never_started_the_check(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, log_records: Callable[[str], list[logging.LogRecord]]
) -> None:
    """Every data thread held past the check's timeout: /readyz is a 503 saying no thread was free to ask
    the database (logged), not that the database did not answer; the queued check never runs later."""
    app = make_app()
    records = log_records("fulcrum.api")
    asked: list[bool] = []
    monkeypatch.setattr(health, "_ping", lambda runtime: asked.append(True))
    release, pool = _data_threads_held(monkeypatch, 0.3)
    response = app.client.get("/readyz")
    release.set()
    pool.submit(lambda: None).result(10)
    pool.shutdown()
    reason = (
        "data threads: none free within 0.3 s to check the database "
        f"(all {health.host_threads.DATA_THREADS} 'fulcrum-data' threads are busy)"
    )
    assert (response.status_code, response.json()["reasons"]) == (503, [reason])
    assert f"readiness: {reason}" in [r.getMessage() for r in records]
    assert asked == []


def test_readyz_times_the_database_from_when_its_check_began(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that waited half its timeout for a data thread gives the database its whole timeout from
    there: an answer after three quarters of it is ready, though later than the timeout after the probe
    came. One slower than its timeout from when it began is still a 503 blaming the database."""
    app = make_app()
    ping = health._ping
    timeout_s = 3.0

    def answers_after(seconds: float) -> Callable[[Any], Any]:
        def answer(runtime: Any) -> Any:
            time.sleep(seconds)
            return ping(runtime)

        return answer

    monkeypatch.setattr(health, "_ping", answers_after(0.75 * timeout_s))
    release, pool = _data_threads_held(monkeypatch, timeout_s)
    threading.Timer(0.5 * timeout_s, release.set).start()
    ready = app.client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

    release, held = _data_threads_held(monkeypatch, timeout_s / 3)
    monkeypatch.setattr(health, "_ping", answers_after(0.5 * timeout_s))
    release.set()
    late = app.client.get("/readyz")
    held.shutdown()
    pool.shutdown()
    assert late.status_code == 503
    assert late.json()["reasons"] == [f"database: no answer to SELECT 1 within {timeout_s / 3:g} s"]
