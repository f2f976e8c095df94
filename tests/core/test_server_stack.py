"""Which HTTP parser and event loop ``fulcrum serve`` hands uvicorn: ``auto`` resolved as uvicorn would
(the C ones when importable), a named one honoured, and a named C one that is not installed refused
with the setting named, before anything binds."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.cli import serve as serve_module
from fulcrum_core.cli.serve import run_server, server_stack
from fulcrum_core.settings import Settings, SettingsError, load_settings


def _without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    """Make ``missing`` modules fail to import for ``server_stack``."""
    real = importlib.import_module

    def import_module(name: str, *args: Any) -> Any:
        if name in missing:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)


def test_auto_takes_the_c_parser_and_loop_installed_with_the_host() -> None:
    assert server_stack() == ("httptools", "uvloop")
    assert server_stack("auto", "auto") == ("httptools", "uvloop")


def test_auto_falls_back_to_the_pure_python_ones_when_a_c_one_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without(monkeypatch, "uvloop")
    assert server_stack() == ("httptools", "asyncio")
    _without(monkeypatch, "uvloop", "httptools")
    assert server_stack() == ("h11", "asyncio")


def test_a_named_choice_is_kept() -> None:
    assert server_stack("h11", "asyncio") == ("h11", "asyncio")
    assert server_stack("httptools", "asyncio") == ("httptools", "asyncio")
    assert server_stack("h11", "uvloop") == ("h11", "uvloop")


def test_a_named_c_one_that_is_not_installed_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _without(monkeypatch, "uvloop")
    with pytest.raises(
        ValueError, match=r"^event_loop = 'uvloop', but uvloop is not installed here; .*'asyncio'"
    ):
        server_stack("auto", "uvloop")
    _without(monkeypatch, "httptools")
    with pytest.raises(ValueError, match=r"^http_protocol = 'httptools', but httptools is not installed"):
        server_stack("httptools", "auto")


def test_an_unknown_choice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^http_protocol: 'h2' is none of 'auto', 'httptools', 'h11'$"):
        server_stack("h2", "auto")
    with pytest.raises(ValueError, match=r"^event_loop: 'trio' is none of"):
        server_stack("auto", "trio")


def test_run_server_hands_uvicorn_what_was_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, Any]] = []

    def run(server: Any, sockets: Any = None) -> None:
        seen.append((server.config.http, server.config.loop))
        server.started = True

    monkeypatch.setattr(serve_module.uvicorn.Server, "run", run)
    run_server("fulcrum_core.asgi:app_factory", host="127.0.0.1", port=8000)
    run_server("fulcrum_core.asgi:app_factory", host="127.0.0.1", port=8000, http="h11", loop="asyncio")
    assert seen == [("httptools", "uvloop"), ("h11", "asyncio")]


def test_the_settings_take_them_from_the_file_and_the_environment(tmp_path: Any) -> None:
    config = tmp_path / "host.toml"
    config.write_text('http_protocol = "h11"\nevent_loop = "asyncio"\n')
    settings = load_settings(config_file=config, environ={})
    assert (settings.http_protocol, settings.event_loop) == ("h11", "asyncio")
    settings = load_settings(config_file=config, environ={"FULCRUM_HTTP_PROTOCOL": "httptools"})
    assert (settings.http_protocol, settings.event_loop) == ("httptools", "asyncio")
    assert (Settings().http_protocol, Settings().event_loop) == ("auto", "auto")
    with pytest.raises(
        SettingsError, match=r"^FULCRUM_HTTP_PROTOCOL \(http_protocol\): Invalid enum value 'h2'"
    ):
        load_settings(environ={"FULCRUM_HTTP_PROTOCOL": "h2"})


@pytest.mark.usefixtures("any_port")
def test_serve_refuses_a_missing_c_one_in_one_line_and_starts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[object] = []
    monkeypatch.setattr(serve_module, "run_server", lambda *a, **k: started.append(a))
    _without(monkeypatch, "uvloop")
    result = CliRunner().invoke(main, ["serve"], env={"FULCRUM_EVENT_LOOP": "uvloop"})
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: event_loop = 'uvloop', but uvloop is not installed here; install it or set 'asyncio'"
    )
    assert started == []
    bad = CliRunner().invoke(main, ["serve"], env={"FULCRUM_HTTP_PROTOCOL": "h2"})
    assert bad.exit_code != 0
    assert "http_protocol" in bad.output
    assert started == []


@pytest.mark.usefixtures("any_port")
def test_serve_says_which_parser_and_loop_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(serve_module, "run_server", lambda app, **options: started.append(options))
    result = CliRunner().invoke(main, ["serve"], env={"FULCRUM_HTTP_PROTOCOL": "", "FULCRUM_EVENT_LOOP": ""})
    assert result.exit_code == 0, result.output
    assert "HTTP: httptools on uvloop (http_protocol, event_loop)" in result.output
    assert (started[0]["http"], started[0]["loop"]) == ("httptools", "uvloop")
    result = CliRunner().invoke(
        main, ["serve"], env={"FULCRUM_HTTP_PROTOCOL": "h11", "FULCRUM_EVENT_LOOP": "asyncio"}
    )
    assert "HTTP: h11 on asyncio (http_protocol, event_loop)" in result.output
    assert (started[1]["http"], started[1]["loop"]) == ("h11", "asyncio")


def test_one_that_is_installed_but_does_not_import_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A C module built for another Python is installed but cannot be imported: ``auto`` passes it by,
    and naming it is the one-line error, not uvicorn's traceback later."""
    real = importlib.import_module

    def import_module(name: str, *args: Any) -> Any:
        if name == "uvloop":
            raise ImportError("uvloop/loop.cpython-399-x86_64-linux-gnu.so: undefined symbol")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_module)
    assert server_stack() == ("httptools", "asyncio")
    with pytest.raises(ValueError, match="uvloop is not installed here"):
        server_stack("auto", "uvloop")


@pytest.mark.usefixtures("any_port")
def test_demo_and_dev_serve_on_the_configured_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """``fulcrum demo`` and ``fulcrum dev`` follow ``http_protocol`` and ``event_loop`` as ``serve`` does."""
    from fulcrum_core.cli import dev as dev_module
    from fulcrum_core.devhost.asgi import PACKAGE_ENV, SOURCE_ENV

    # demo and dev set these in this process for the server they start: undone after the test.
    for name in (
        "FULCRUM_OAUTH_DEV_LOGIN",
        "FULCRUM_DATABASE_URL",
        "FULCRUM_DEV_MODE",
        "FULCRUM_STATE_DIR",
        "FULCRUM_BRANCHES_DIR",
        "FULCRUM_CONFIG",
        SOURCE_ENV,
        PACKAGE_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    served: list[dict[str, Any]] = []
    monkeypatch.setattr(serve_module, "run_server", lambda app, **options: served.append(options))
    env = {
        "FULCRUM_STATE_DIR": str(tmp_path / "state"),
        "FULCRUM_BRANCHES_DIR": str(tmp_path / "none"),
        "FULCRUM_HTTP_PROTOCOL": "h11",
        "FULCRUM_EVENT_LOOP": "asyncio",
    }
    result = CliRunner().invoke(main, ["demo"], env=env)
    assert result.exit_code == 0, result.output
    assert (served[0]["http"], served[0]["loop"]) == ("h11", "asyncio")

    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(dev_module, "run_server", lambda app, **options: ran.append(options))
    project = Path(__file__).resolve().parents[2] / "plugins" / "pension"
    result = CliRunner().invoke(main, ["dev", str(project), "--no-reload"], env=env)
    assert result.exit_code == 0, result.output
    assert (ran[0]["http"], ran[0]["loop"]) == ("h11", "asyncio")
    _without(monkeypatch, "uvloop")
    result = CliRunner().invoke(main, ["dev", str(project)], env={**env, "FULCRUM_EVENT_LOOP": "uvloop"})
    assert result.exit_code == 1
    assert "event_loop = 'uvloop', but uvloop is not installed here" in result.output
    assert len(ran) == 1
