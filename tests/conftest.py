"""Fixtures shared by every test package.

Database fixtures (function-scoped; each test gets its own empty database):

- ``database_url`` — parametrized over ``sqlite`` (a file under ``tmp_path``) and ``postgres`` (a fresh
  schema on ``FULCRUM_TEST_POSTGRES_URL``, dropped afterwards; skipped when the variable is unset).
- ``sqlite_url`` / ``postgres_url`` — one backend only.
- ``db`` — a :class:`fulcrum_core.data.db.Database` on ``database_url``, migrated to head.
- ``sqlite_db`` / ``postgres_db`` — the same on one backend only.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import sqlite_guard

if TYPE_CHECKING:
    from fulcrum_core.data.db import Database

POSTGRES_ENV = "FULCRUM_TEST_POSTGRES_URL"


def pytest_configure(config: pytest.Config) -> None:
    """A SQLite connection left to the garbage collector warns (so fails) on every Python, as on 3.13."""
    sqlite_guard.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give ``sqlite3.connect`` back."""
    sqlite_guard.uninstall()


@pytest.fixture(autouse=True)
def _fulcrum_environment() -> Iterator[None]:
    """Each test gets the ``FULCRUM_*`` variables back as they were: commands under test (``fulcrum dev``,
    ``serve``) set them for the servers they start, and one left set (``FULCRUM_STATE_DIR``) overrode
    a later test's settings file in the same worker."""
    before = {key: value for key, value in os.environ.items() if key.startswith("FULCRUM_")}
    yield
    for key in [key for key in os.environ if key.startswith("FULCRUM_") and key not in before]:
        del os.environ[key]
    os.environ.update(before)
    _drop_handlers_of_closed_streams()


def _drop_handlers_of_closed_streams() -> None:
    """A command run under click's test runner configures logging onto the stream the runner captured
    (litestar's queue listener holds it), closed once the command returned: every later record of the
    worker printed "--- Logging error ---" into whatever stderr a later test was reading. Such handlers
    are taken off their loggers."""
    loggers = [logging.getLogger(), *(
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    )]
    for logger in loggers:
        for handler in list(logger.handlers):
            inner = [handler, *getattr(getattr(handler, "listener", None), "handlers", ())]
            if any(getattr(getattr(h, "stream", None), "closed", False) for h in inner):
                logger.removeHandler(handler)


UVLOOP = importlib.util.find_spec("uvloop") is not None
"""uvloop is installed with the host (not where it has no build, e.g. on Windows)."""

LOOPS = {"uvloop": ("asyncio", {"use_uvloop": UVLOOP}), "asyncio": ("asyncio", {"use_uvloop": False})}
"""The event loops the host serves on: uvloop (``auto``, where installed) and asyncio's own."""


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    """Async tests run on uvloop, the loop ``fulcrum serve`` runs on by default (``event_loop``); a
    module marked ``both_loops`` runs each of its tests on asyncio's own loop too."""
    return LOOPS["uvloop"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_loops`` run on each event loop the host can serve on."""
    if metafunc.definition.get_closest_marker("both_loops") and "anyio_backend" in metafunc.fixturenames:
        metafunc.parametrize("anyio_backend", list(LOOPS.values()), ids=list(LOOPS))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A URL for an empty SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'fulcrum-test.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections use a fresh, empty PostgreSQL schema, dropped after the test."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server")
    from fulcrum_core.data.db import normalize_url
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(base))
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = make_url(normalize_url(base)).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each supported backend in turn (SQLite, then PostgreSQL)."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


def _migrated(url: str) -> Iterator[Database]:
    """The platform database at ``url``, migrated to head, disposed when the generator closes."""
    from fulcrum_core.data.db import Database

    database = Database(url)
    database.upgrade()
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The platform database on ``database_url``, migrated to head, disposed after the test."""
    yield from _migrated(database_url)


@pytest.fixture
def sqlite_db(sqlite_url: str) -> Iterator[Database]:
    """A migrated SQLite database, whatever the test's backend parameters."""
    yield from _migrated(sqlite_url)


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[Database]:
    """A migrated PostgreSQL database (skipped without a server)."""
    yield from _migrated(postgres_url)
