"""A plugin's own non-daemon threads never keep a stopping worker alive.

A plugin that starts a thread of its own (``threading.Thread(...).start()``, or a
``concurrent.futures.ThreadPoolExecutor`` to fan out HTTP calls) whose job never ends kept the worker
from exiting after its server stopped: Python's exit joins every non-daemon thread without a bound, so a
stop waited for the kill. ``fulcrum serve``'s runner gives them ``SHUTDOWN_THREADS_S`` once the server
has stopped, then logs them and exits anyway, with the status it would have had. A process that merely
built the app (a test client, an embedding server) waits for them as Python always does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

_PLUGIN = '''
import asyncio, os, signal, threading, time
from concurrent.futures import ThreadPoolExecutor
from fulcrum_core import app as host
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.settings import Settings

host.SHUTDOWN_THREADS_S = float(os.environ["TEST_BOUND_S"])
MODE = os.environ["TEST_MODE"]
POOL = None


def fan_out():
    """A plugin's call to its backend that never returns (a blocking client without a timeout)."""
    threading.Event().wait()


def fan_out_briefly():
    time.sleep(0.5)
    print("fan-out finished", flush=True)


def start_threads():
    global POOL
    if MODE == "pool":  # one job that never ends, and one thread left idle in the pool
        POOL = ThreadPoolExecutor(2, thread_name_prefix="partner-pool")
        POOL.submit(fan_out)
        POOL.submit(time.sleep, 0).result()
    else:
        target = fan_out_briefly if MODE == "ends" else fan_out
        threading.Thread(target=target, name="partner-fan-out", daemon=False).start()


def app():
    settings = Settings(state_dir=".")
    runtime = build_runtime(settings, load_entry_points=False)
    runtime.db.upgrade()
    built = create_app(settings, runtime=runtime)

    async def plugin_starts():
        start_threads()
        if MODE == "fails":
            raise RuntimeError("the plugin's backend refused the start")
        # A stop as Ctrl-C or a process manager's SIGINT asks for it, once the server serves.
        asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)

    built.on_startup.append(plugin_starts)
    return built
'''


def _served(tmp_path: Path, mode: str, *, bound_s: float, workers: int = 1) -> tuple[int, str, str]:
    """The status, output and log of ``fulcrum serve``'s runner serving the app of ``_PLUGIN`` in
    ``mode``; the test fails if it has not exited on its own within 60 s (workers start slowly on a
    busy machine)."""
    (tmp_path / "partner_fanout.py").write_text(_PLUGIN)
    runner = (
        "from fulcrum_core.cli.serve import run_server; "
        f"run_server('partner_fanout:app', host='127.0.0.1', port=0, workers={workers}, "
        f"app_dir={str(tmp_path)!r}, log_level='warning', loop='asyncio')"
    )
    env = {**os.environ, "TEST_MODE": mode, "TEST_BOUND_S": str(bound_s)}
    child = subprocess.Popen(
        [sys.executable, "-c", runner], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        out, err = child.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the served worker did not exit: it waits for the plugin's own thread")
    finally:
        if child.poll() is None:
            os.killpg(child.pid, 9)  # its workers too
        child.communicate()
    return child.returncode, out, err


_WARNING = "still running"


@pytest.mark.slow
def test_a_served_worker_whose_plugin_thread_never_ends_exits_naming_it(tmp_path: Path) -> None:
    status, _, err = _served(tmp_path, "thread", bound_s=1.0)
    assert status == 0, err
    warnings = [line for line in err.splitlines() if _WARNING in line]
    assert len(warnings) == 1, err
    assert "'partner-fan-out'" in warnings[0]
    assert "partner_fanout.fan_out" in warnings[0]  # the plugin's code it runs


@pytest.mark.slow
def test_a_served_worker_whose_plugin_pool_job_never_ends_exits_naming_its_thread(tmp_path: Path) -> None:
    """A ``ThreadPoolExecutor`` of the plugin's, whose threads Python's exit joins: the one running the
    job is named; the idle one ends as the pool is told the interpreter stops, as at any exit."""
    status, _, err = _served(tmp_path, "pool", bound_s=1.0)
    assert status == 0, err
    (warning,) = [line for line in err.splitlines() if _WARNING in line]
    assert "'partner-pool_0'" in warning
    assert "partner_fanout.fan_out" in warning
    assert "partner-pool_1" not in warning


@pytest.mark.slow
def test_a_plugin_thread_that_ends_within_the_bound_is_waited_for(tmp_path: Path) -> None:
    status, out, err = _served(tmp_path, "ends", bound_s=30.0)
    assert status == 0, err
    assert "fan-out finished" in out
    assert _WARNING not in err


@pytest.mark.slow
def test_a_worker_that_failed_to_start_keeps_its_status(tmp_path: Path) -> None:
    """uvicorn's startup-failure status (3), which a process manager reads as "do not restart"."""
    status, _, err = _served(tmp_path, "fails", bound_s=1.0)
    assert status == 3, err
    (warning,) = [line for line in err.splitlines() if _WARNING in line]
    assert "'partner-fan-out'" in warning


@pytest.mark.slow
def test_workers_that_failed_to_start_exit_and_their_supervisor_stops(tmp_path: Path) -> None:
    """``--workers N``: a worker left waiting for the plugin's thread answered the supervisor's health
    checks from its daemon thread, so the supervisor never saw the failed start, and never stopped."""
    _, _, err = _served(tmp_path, "fails", bound_s=1.0, workers=2)
    assert "failed to start, stopping the parent process" in err
    assert "partner-fan-out" in next(line for line in err.splitlines() if _WARNING in line)


_IN_PROCESS = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, os.getcwd())
    from litestar.testing import TestClient
    import partner_fanout

    with TestClient(partner_fanout.app()) as client:
        client.get("/healthz")
''')


@pytest.mark.slow
def test_a_process_that_only_built_the_app_waits_for_the_plugins_thread(tmp_path: Path) -> None:
    """A test client (or an embedding server) runs the app in its own process: nothing is armed there,
    and Python waits for the plugin's thread as it always does, however short the host's bound."""
    (tmp_path / "partner_fanout.py").write_text(_PLUGIN.replace(
        "asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)", "pass"
    ))
    env = {**os.environ, "TEST_MODE": "ends", "TEST_BOUND_S": "0.01"}
    ran = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert "fan-out finished" in ran.stdout
    assert _WARNING not in ran.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("reuse_port", [False, True])
def test_one_worker_ends_as_uvicorn_run_would_with_or_without_reuse_port(
    monkeypatch: pytest.MonkeyPatch, reuse_port: bool
) -> None:
    """The status the bound keeps is the runner's: a worker stopped by Ctrl-C ends normally (before,
    ``--reuse-port`` let the ``KeyboardInterrupt`` out, and the CLI printed "Aborted!" and exited 1), one
    that never started exits 3. A run faked in this process arms nothing here."""
    from fulcrum_core import exit_threads
    from fulcrum_core.cli import serve as serve_module

    def interrupted(server: Any, sockets: Any = None) -> None:
        for sock in sockets or ():
            sock.close()
        server.started = True
        raise KeyboardInterrupt

    def never_started(server: Any, sockets: Any = None) -> None:
        for sock in sockets or ():
            sock.close()

    port = _free_port()
    monkeypatch.setattr(serve_module.uvicorn.Server, "run", interrupted)
    serve_module.run_server(
        "fulcrum_core.asgi:app_factory", host="127.0.0.1", port=port, reuse_port=reuse_port
    )
    assert exit_threads._status == 0
    monkeypatch.setattr(serve_module.uvicorn.Server, "run", never_started)
    with pytest.raises(SystemExit) as ended:
        serve_module.run_server(
            "fulcrum_core.asgi:app_factory", host="127.0.0.1", port=port, reuse_port=reuse_port
        )
    assert ended.value.code == 3
    assert exit_threads._status == 3
    assert exit_threads._armed_in is None
