"""A starting worker runs its request path's reads once before it serves (``data/warmup.py``)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.data.db import Database
from fulcrum_core.data.warmup import NOBODY, warm_reads
from fulcrum_core.settings import Settings
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.testing import PERSONAS
from litestar.testing import TestClient
from sqlalchemy import event


def _statements_at_startup(settings: Settings) -> list[tuple[str, Any]]:
    """The statements the app's engine ran while the app started, with their parameters."""
    runtime = build_runtime(
        settings, provider=StaticDataProvider({r.id: r for r in PERSONAS.values()}), load_entry_points=False
    )
    seen: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(runtime.db.engine, "before_cursor_execute", note)
    with TestClient(create_app(settings, runtime=runtime)) as client:
        started = list(seen)
        assert client.get("/readyz").status_code == 200
    return started


def test_startup_runs_the_consent_and_storage_reads_before_serving(
    settings: Settings, migrated_sqlite: Path, tmp_path: Path
) -> None:
    """The consent read, the document read and the counters read each ran once as the app started,
    about a customer and a plugin that do not exist, so the first customer's page finds them compiled."""
    db_file = tmp_path / "fulcrum.db"
    shutil.copyfile(migrated_sqlite, db_file)
    conf = msgspec.structs.replace(settings, database_url=f"sqlite:///{db_file}")
    started = _statements_at_startup(conf)
    asked = [(s, str(p)) for s, p in started if NOBODY in str(p)]
    for table in ("consents", "plugin_documents", "plugin_counters"):
        assert sum(f"FROM {table}" in s for s, _ in asked) == 1, (table, asked)


def test_a_database_not_migrated_yet_is_left_to_readiness(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Against a database without the tables the reads fail: that is logged, and startup goes on
    (``/readyz`` answers 503 until ``fulcrum db upgrade``)."""
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    with caplog.at_level(logging.INFO, logger="fulcrum.data"):
        assert warm_reads(db) is False
    assert "not warmed at startup" in caplog.text
    db.dispose()
