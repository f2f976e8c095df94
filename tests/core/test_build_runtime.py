"""build_runtime owns what it opens until it returns the runtime: a failure part-way closes it."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest
from fulcrum_core import app as app_module
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.auth.keys import KEY_FILE_NAME, SigningKeyError
from fulcrum_core.settings import load_settings


def test_a_failure_after_the_registry_was_read_closes_the_database(tmp_path: Path) -> None:
    """A corrupt signing-key file fails the build after the admission gate has read the registry; the
    SQLite connection that read opened is closed, not left for the garbage collector."""
    state = tmp_path / "state"
    state.mkdir()
    (state / KEY_FILE_NAME).write_text("not json", encoding="utf-8")
    (state / KEY_FILE_NAME).chmod(0o600)
    settings = load_settings(environ={}, state_dir=str(state))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SigningKeyError, match=KEY_FILE_NAME):
            build_runtime(settings)  # entry points on: the gate asks the (empty) registry first
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


def test_a_failure_after_the_runtime_was_built_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_app builds the runtime, then the app around it: when that second step fails, the runtime
    it built (its database connection, its plugin threads) is closed before the error goes on."""
    state = tmp_path / "state"
    state.mkdir()
    settings = load_settings(environ={}, state_dir=str(state))
    closed: list[str] = []
    real_build = app_module.build_runtime

    def build(settings_: object) -> object:
        runtime = real_build(settings_)  # type: ignore[arg-type]
        close = runtime.dispatcher.close

        def noted_close() -> None:
            closed.append("dispatcher")
            close()

        runtime.dispatcher.close = noted_close  # type: ignore[method-assign]
        return runtime

    def broken(app: object) -> None:
        raise RuntimeError("the security document could not be written")

    monkeypatch.setattr(app_module, "build_runtime", build)
    monkeypatch.setattr(app_module, "document_security", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="security document"):
            create_app(settings)
        gc.collect()
    assert closed == ["dispatcher"]
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
