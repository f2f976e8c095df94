"""A plugin that stops the event loop (``loop.stop()``, at once or scheduled) no longer ends the worker:
the server's loop runs on, logging that it was stopped. Before, ``run_until_complete`` raised
"Event loop stopped before Future completed." and the worker shut down with every request it held."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.cli.serve import _TcpConfig, keep_running


@pytest.fixture(autouse=True)
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets the stop warning unthrottled, as a fresh worker does."""
    from fulcrum_core.cli import serve as serve_module

    message = serve_module._STOPPED_BY_OTHERS._message
    fresh = serve_module.ThrottledWarning(serve_module.log, message, level=serve_module.logging.ERROR)
    monkeypatch.setattr(serve_module, "_STOPPED_BY_OTHERS", fresh)


@pytest.mark.parametrize("kind", ["asyncio", "uvloop"])
def test_the_servers_loop_runs_on_after_a_stop_now_and_a_scheduled_one(kind: str, log_records: Any) -> None:
    """Through uvicorn's runner, as the server runs it: stopped twice, the main coroutine still ends
    with its own result, and the stop is logged (once: the line is throttled)."""
    records = log_records("fulcrum.serve")
    factory = _TcpConfig("fulcrum_core.asgi:app_factory", factory=True, loop=kind).get_loop_factory()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.stop()
        await asyncio.sleep(0.01)
        loop.call_soon(loop.stop)
        await asyncio.sleep(0.01)
        return "served"

    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(main()) == "served"
        assert kind in type(runner.get_loop()).__module__
    said = [r.getMessage() for r in records]
    assert {r.levelname for r in records} == {"ERROR"}
    assert said.count(
        "the event loop was stopped by code that is not the server's (a plugin calling loop.stop()?); "
        "it runs on"
    ) == 1


def test_a_plugin_stopping_the_loop_on_every_turn_does_not_flood_the_log(log_records: Any) -> None:
    """A callback that stops the loop and schedules itself again, for 0.2 s: tens of thousands of stops
    ridden out, one log line (before: one ERROR line each, ≈ 38 000 a second)."""
    records = log_records("fulcrum.serve")
    loop = keep_running(asyncio.new_event_loop())
    stops = 0

    def stop_again() -> None:
        nonlocal stops
        stops += 1
        loop.stop()
        loop.call_soon(stop_again)

    async def main() -> int:
        loop.call_soon(stop_again)
        await asyncio.sleep(0.2)
        return stops

    try:
        assert loop.run_until_complete(main()) > 100
    finally:
        loop.close()
    assert len([r for r in records if "it runs on" in r.getMessage()]) == 1


def test_what_the_main_coroutine_raises_still_ends_the_run() -> None:
    """Only a stop is ridden out: the coroutine's own exception, and a loop that is already running,
    come out as before."""
    loop = keep_running(asyncio.new_event_loop())

    async def fails() -> None:
        raise ValueError("its own")

    ran: list[str] = []

    async def counted() -> None:
        ran.append("ran")

    async def nested() -> None:
        coro = counted()
        try:
            loop.run_until_complete(coro)
        finally:
            coro.close()  # refused: never awaited, as with any loop

    try:
        with pytest.raises(ValueError, match="its own"):
            loop.run_until_complete(fails())
        with pytest.raises(RuntimeError, match="already running"):
            loop.run_until_complete(nested())
        loop.run_until_complete(asyncio.sleep(0.01))
        assert ran == []  # refused, and not started behind the caller's back either
    finally:
        loop.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        status: int = reply.status
        return status


@pytest.mark.slow
def test_a_served_request_that_stops_the_loop_leaves_the_worker_serving(tmp_path: Path) -> None:
    """``fulcrum serve``'s own runner (one worker, the default stack): a request whose handler stops the
    loop is answered, and so is the next one; the worker is still alive."""
    (tmp_path / "stopper.py").write_text(textwrap.dedent('''
        import asyncio

        def app():
            async def asgi(scope, receive, send):
                if scope["type"] != "http":
                    return
                if scope["path"] == "/stop":
                    asyncio.get_running_loop().stop()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})
            return asgi
    '''))
    port = _free_port()
    probe = (
        "from fulcrum_core.cli.serve import run_server; "
        f"run_server('stopper:app', host='127.0.0.1', port={port}, app_dir={str(tmp_path)!r}, "
        "log_level='warning')"
    )
    server = subprocess.Popen([sys.executable, "-c", probe], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(port, "/ok") == 200
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        assert _get(port, "/stop") == 200
        assert _get(port, "/ok") == 200
        assert _get(port, "/stop") == 200
        assert _get(port, "/ok") == 200
        assert server.poll() is None
    finally:
        server.terminate()
        _, err = server.communicate(timeout=15)
    assert err.count("it runs on") == 1, err  # throttled: once in 10 s


def test_a_single_worker_that_never_started_exits_as_uvicorn_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-worker path runs uvicorn's server itself now: an app that fails to start still ends the
    process with uvicorn's startup-failure code (3), so a process manager sees the failure."""
    from fulcrum_core.cli import serve as serve_module

    monkeypatch.setattr(serve_module.uvicorn.Server, "run", lambda server, sockets=None: None)
    with pytest.raises(SystemExit) as ended:
        serve_module.run_server("fulcrum_core.asgi:app_factory", host="127.0.0.1", port=8000)
    assert ended.value.code == 3
