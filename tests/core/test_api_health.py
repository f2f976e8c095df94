"""``/healthz`` and ``/readyz``: public probes; readiness needs the database and loaded plugins."""

from __future__ import annotations

from typing import Any

import pytest
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


def test_readyz_is_503_until_plugins_are_loaded(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plugin loading not finished is a reason for 503."""
    app = make_app()
    monkeypatch.setattr(app.runtime.plugins, "ready", False)
    response = app.client.get("/readyz")
    assert response.status_code == 503
    assert "plugins: loading has not finished" in response.json()["reasons"]
