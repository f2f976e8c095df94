"""A starting worker runs its request path's reads once before it serves (``data/warmup.py``)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.data.db import Database
from fulcrum_core.data.warmup import NOBODY, warm_reads
from fulcrum_core.dispatch.context import PAIRWISE_KEY_FILE
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


def _started(settings: Settings, *plugins: object) -> Any:
    """The runtime of an app that has run its startup (and served nothing but ``/readyz``)."""
    runtime = build_runtime(
        settings, provider=StaticDataProvider({r.id: r for r in PERSONAS.values()}),
        extra_plugins=plugins, load_entry_points=False,
    )
    with TestClient(create_app(settings, runtime=runtime)) as client:
        assert client.get("/readyz").status_code == 200
    return runtime


@pytest.mark.parametrize("kind", ["partner", "department"])
def test_startup_reads_the_pairwise_secret_when_a_partner_is_loaded(
    kind: str, settings: Settings, migrated_sqlite: Path, tmp_path: Path, kit: Any
) -> None:
    """With a partner plugin loaded the pairwise secret is read (here: created) as the worker starts, not
    on its first partner page; without one no secret file is made."""
    db_file = tmp_path / "fulcrum.db"
    shutil.copyfile(migrated_sqlite, db_file)
    conf = msgspec.structs.replace(
        settings, database_url=f"sqlite:///{db_file}", pairwise_secret=None, state_dir=str(tmp_path / "state")
    )
    runtime = _started(conf, kit.plugin("someone", kind=kind, search=lambda ctx, query: []))
    assert (tmp_path / "state" / PAIRWISE_KEY_FILE).exists() is (kind == "partner")
    assert (runtime.contexts._secret is not None) is (kind == "partner")


def test_startup_verifies_a_token_and_keeps_nothing(
    settings: Settings, migrated_sqlite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token service signs and verifies one throwaway token as the worker starts (the signing
    libraries load their backends then), remembering nothing of it."""
    db_file = tmp_path / "fulcrum.db"
    shutil.copyfile(migrated_sqlite, db_file)
    conf = msgspec.structs.replace(settings, database_url=f"sqlite:///{db_file}")
    verified: list[str] = []
    original = TokenService._verify_uncached

    def spy(self: TokenService, token: str, audience: str) -> Any:
        found = original(self, token, audience)
        verified.append(found.principal.sub)
        return found

    monkeypatch.setattr(TokenService, "_verify_uncached", spy)
    runtime = _started(conf)
    assert verified == [NOBODY]
    assert runtime.tokens._cache == {}


def test_a_warm_up_that_fails_is_logged_and_startup_goes_on(
    settings: Settings, migrated_sqlite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A token key set that cannot sign at startup is logged; the worker still starts and answers."""
    db_file = tmp_path / "fulcrum.db"
    shutil.copyfile(migrated_sqlite, db_file)
    conf = msgspec.structs.replace(settings, database_url=f"sqlite:///{db_file}")

    def broken(self: TokenService) -> None:
        raise OSError("key store away")

    monkeypatch.setattr(TokenService, "warm", broken)
    _started(conf)  # the app's own logging writes to stderr (caplog's handler is replaced at startup)
    assert "the request path was not warmed at startup: OSError: key store away" in capfd.readouterr().err
