"""The server's app factory builds the app from the environment and freezes the startup heap."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from fulcrum_core.asgi import app_factory
from litestar import Litestar
from litestar.testing import TestClient


def test_the_factory_builds_a_working_app_and_freezes_what_startup_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FULCRUM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FULCRUM_BRANCHES_DIR", str(tmp_path / "no-branches"))
    gc.unfreeze()
    try:
        app = app_factory()
        assert isinstance(app, Litestar)
        assert gc.get_freeze_count() > 0  # the startup objects left the collected generations
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
    finally:
        gc.unfreeze()  # back to normal for the rest of this test process
