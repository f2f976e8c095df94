"""``fulcrum dev``: the plugin under development served locally, each hook call shown, reload on change."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.devhost import DevError, EchoStats, find_dev_plugin
from fulcrum_core.devhost.asgi import PACKAGE_ENV, SOURCE_ENV, dev_app_factory
from fulcrum_core.devhost.echo import describe_call
from litestar.testing import TestClient

ROOT = Path(__file__).resolve().parents[3]
FULCRUM = Path(sys.executable).parent / "fulcrum"
DENIED = (
    "ScopeDenied: plugin 'kit-probe' may not use scope 'holdings:read': not granted; "
    "request it in fulcrum-plugin.toml and have it granted"
)

MANIFEST = """\
id = "kit-probe"
publisher = "test-bank"
kind = "department"
sdk = ">=0.1,<1"
hooks = ["home_slot_offers"]
slots = ["home.kingkong/v1"]

[name]
"zh-CN" = "探针"

[description]
"zh-CN" = "开发主机测试插件"

[scopes.required]
"slot:home.kingkong" = "首页入口 / a home entry"

[owner]
name = "Test"
email = "test@example.com"
"""

HOME = """\
from fulcrum_sdk import Action, LocalizedText, SlotOffer, hookimpl


@hookimpl
def home_slot_offers(ctx):
    {peek}
    return [SlotOffer(slot="home.kingkong/v1", key="entry", title=LocalizedText(zh_CN="探针"),
                      action=Action(uri="fulcrum://probe"))]
"""


def write_project(root: Path, *, peek: str = "pass") -> Path:
    """A plugin project ``kit-probe`` in src layout; ``peek`` is a statement run before offering."""
    package = root / "src" / "fulcrum_kit_probe"
    package.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "fulcrum-kit-probe"\nversion = "0.1.0"\n')
    (package / "fulcrum-plugin.toml").write_text(MANIFEST, encoding="utf-8")
    (package / "__init__.py").write_text(HOME.format(peek=peek), encoding="utf-8")
    return root


# --- the pieces --------------------------------------------------------------------------------------


def test_a_scope_denial_is_shown_with_the_scope_and_why() -> None:
    """The dispatcher's ScopeDenied detail becomes ``scope denied: <scope> (<reason>)``."""
    line = describe_call("kit-probe", "home_slot_offers", "error", 0.0012, DENIED)
    assert line == "[hook] kit-probe home_slot_offers error 1.2 ms  scope denied: holdings:read (not granted)"


def test_other_failures_show_their_detail() -> None:
    """A timeout or a crash shows the dispatcher's own detail after the latency."""
    line = describe_call("kit-probe", "search", "timeout", 0.3, "no answer within 300 ms")
    assert line == "[hook] kit-probe search timeout 300.0 ms  no answer within 300 ms"


def test_echo_stats_print_only_the_watched_plugin_and_still_count() -> None:
    """Calls of other plugins are counted but not printed; the watched plugin's are both."""
    out = io.StringIO()
    stats = EchoStats("kit-probe", out)
    stats.record("kit-probe", "home_slot_offers", "ok", 0.002)
    stats.record("pension", "home_slot_offers", "ok", 0.001)
    assert out.getvalue() == "[hook] kit-probe home_slot_offers ok 2.0 ms\n"
    assert {(s.plugin, s.calls) for s in stats.snapshot()} == {("kit-probe", 1), ("pension", 1)}


CRASHING = """\
def _plan(ctx):
    return {}["plan_id"]


def home_slot_offers(ctx):
    return _plan(ctx)
"""


@pytest.mark.anyio
async def test_a_crash_shows_the_plugins_frames_once_per_distinct_error(tmp_path: Path, kit: Any) -> None:
    """A hook that raises showed only ``KeyError: 'plan_id'``: the dev host's dispatcher now also prints
    the traceback's frames in the plugin's own files (file, line, code), the first time that error is
    seen; a plain dispatcher (production) has no such hook."""
    from fulcrum_core.dispatch.dispatcher import Dispatcher
    from fulcrum_core.plugins import get_plugin_manager
    from fulcrum_core.settings import load_settings

    package = tmp_path / "fulcrum_kit_crash"
    package.mkdir()
    (package / "hooks.py").write_text(CRASHING, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("fulcrum_kit_crash_hooks", package / "hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = load_settings(environ={})
    loaded = get_plugin_manager(
        settings,
        extra_plugins=[
            kit.plugin("kit-probe", home_slot_offers=module.home_slot_offers),
            kit.plugin("other", home_slot_offers=module.home_slot_offers),
        ],
        load_entry_points=False,
    ).loaded
    out = io.StringIO()
    dispatcher = Dispatcher(settings)
    assert dispatcher.on_plugin_error is None
    echo = EchoStats("kit-probe", out, code_dir=str(package))
    dispatcher.stats, dispatcher.on_plugin_error = echo, echo.show_error
    try:
        for _ in range(3):
            await dispatcher.call_many(
                "home_slot_offers", [(p, kit.context(p)) for p in loaded.values()]
            )
    finally:
        dispatcher.close()
    text = out.getvalue()
    hooks_py = str(package / "hooks.py")
    assert text.count("[hook] kit-probe home_slot_offers error") == 3
    assert text.count("raised KeyError in the plugin's code; shown once:") == 1
    assert f'File "{hooks_py}", line 6, in home_slot_offers' in text
    assert f'File "{hooks_py}", line 2, in _plan' in text
    assert 'return {}["plan_id"]' in text
    assert "KeyError: 'plan_id'" in text
    assert "fulcrum_core" not in text  # the host's own frames are left out
    assert "other" not in text


def test_the_project_is_found_without_importing_it(tmp_path: Path) -> None:
    """``src/<package>/fulcrum-plugin.toml`` gives the import root, package and manifest."""
    found = find_dev_plugin(write_project(tmp_path / "p", peek="raise SystemExit('imported!')"))
    assert found.package == "fulcrum_kit_probe"
    assert found.source_root == (tmp_path / "p" / "src").resolve()
    assert found.manifest.id == "kit-probe"


def test_the_plugins_package_directory_is_taken_for_its_project(tmp_path: Path) -> None:
    """The directory holding ``fulcrum-plugin.toml`` itself (``fulcrum dev`` run inside the package):
    the same plugin as from the project. Before, it was refused as having no fulcrum-plugin.toml under
    ``<it>/src/<package>/``, beside the very file."""
    project = write_project(tmp_path / "p")
    found = find_dev_plugin(project / "src" / "fulcrum_kit_probe")
    assert found.package == "fulcrum_kit_probe"
    assert found.source_root == (project / "src").resolve()
    assert found.manifest.id == "kit-probe"


def test_a_directory_without_a_plugin_is_refused(tmp_path: Path) -> None:
    """No manifest, several packages, or an invalid manifest: a DevError that says what to pass."""
    with pytest.raises(DevError, match=r"no fulcrum-plugin\.toml"):
        find_dev_plugin(tmp_path)
    with pytest.raises(DevError, match="not a directory"):
        find_dev_plugin(tmp_path / "missing")
    project = write_project(tmp_path / "p")
    (project / "src" / "fulcrum_kit_probe" / "fulcrum-plugin.toml").write_text("id = 3\n", encoding="utf-8")
    with pytest.raises(DevError, match=r"fulcrum-plugin\.toml"):
        find_dev_plugin(project)
    write_project(tmp_path / "two")
    second = tmp_path / "two" / "src" / "fulcrum_other"
    second.mkdir()
    (second / "fulcrum-plugin.toml").write_text(MANIFEST, encoding="utf-8")
    with pytest.raises(DevError, match="several plugin packages"):
        find_dev_plugin(tmp_path / "two")


def test_a_plugin_raising_at_import_leaves_the_dev_host_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The app factory (run again on every save) says which line raised and still serves the host,
    where before the worker died with uvicorn's traceback and requests hung until the next save."""
    project = write_project(tmp_path / "p")
    package = "fulcrum_kit_raises"
    (project / "src" / "fulcrum_kit_probe").rename(project / "src" / package)
    (project / "src" / package / "__init__.py").write_text('raise RuntimeError("partner config missing")\n')
    monkeypatch.setenv(SOURCE_ENV, str(project / "src"))
    monkeypatch.setenv(PACKAGE_ENV, package)
    monkeypatch.setenv("FULCRUM_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FULCRUM_DATABASE_URL", f"sqlite:///{tmp_path / 'dev.db'}")
    monkeypatch.syspath_prepend(str(project / "src"))
    try:
        app = dev_app_factory()
    finally:
        sys.modules.pop(package, None)
    out = capsys.readouterr().out
    assert "[fulcrum dev] the plugin did not load: fulcrum_kit_raises: import failed: RuntimeError: " in out
    assert f"partner config missing (at {project / 'src' / package / '__init__.py'}, line 1)" in out
    assert "fix: correct the code and save (the host reloads)" in out
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200


def test_the_command_refuses_an_unknown_customer(tmp_path: Path) -> None:
    """``--customer`` must be a demo customer; the error names the option and how to list them."""
    ran = CliRunner().invoke(main, ["dev", str(write_project(tmp_path / "p")), "--customer", "nobody"])
    assert ran.exit_code == 2
    assert "--customer" in ran.output
    assert "fulcrum demo customers" in ran.output


def test_the_command_refuses_a_directory_without_a_plugin(tmp_path: Path) -> None:
    """A wrong PATH is one line and exit 1, before anything is served."""
    ran = CliRunner().invoke(main, ["dev", str(tmp_path)])
    assert ran.exit_code == 1
    assert "no fulcrum-plugin.toml" in ran.output


# --- the running host --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Terminal:
    """The dev host's output lines, read in a thread so waiting for one is bounded."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._thread = threading.Thread(target=self._pump, args=(self._stream,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """After the process ended: let the reader reach the end of output, then close the pipe."""
        self._thread.join(timeout=10)
        self._stream.close()

    def _pump(self, stream: io.TextIOBase) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first new line matching ``pattern``; fails with everything seen after ``timeout`` s."""
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            try:
                line = self._queue.get(timeout=max(0.0, limit - time.monotonic()))
            except queue.Empty:
                break
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        pytest.fail(f"no line matching {pattern!r} within {timeout} s:\n" + "\n".join(self.lines))


@pytest.fixture
def dev_host(tmp_path: Path) -> Iterator[tuple[Terminal, str, Path, Callable[[], int]]]:
    """``fulcrum dev`` on a probe plugin that reads holdings it never requested, on a free port."""
    project = write_project(tmp_path / "probe", peek="ctx.data.holdings()")
    with _dev_process(tmp_path, project) as (terminal, base, stop):
        yield terminal, base, project, stop


@contextlib.contextmanager
def _dev_process(tmp_path: Path, project: Path) -> Iterator[tuple[Terminal, str, Callable[[], int]]]:
    """``fulcrum dev PROJECT`` on a free port: its output, its base URL and a Ctrl-C that waits for it."""
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [str(FULCRUM), "dev", str(project), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        start_new_session=True,  # the reloader and its server process stop together
    )
    terminal = Terminal(proc)

    def stop() -> int:
        """Ctrl-C the dev host (as a developer would) and wait for it; idempotent."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            terminal.close()
        return proc.returncode

    try:
        yield terminal, f"http://127.0.0.1:{port}", stop
    finally:
        stop()


@pytest.mark.slow
@pytest.mark.skipif(not FULCRUM.exists(), reason="the fulcrum command is not installed in this environment")
def test_the_dev_host_serves_the_plugin_and_shows_each_call(
    dev_host: tuple[Terminal, str, Path, Callable[[], int]],
) -> None:
    """Token → /v1/home; each call shows with latency and scope denial; edits reload; Ctrl-C cleans up."""
    terminal, base, project, stop = dev_host
    state = Path(terminal.wait_for(r"^State \(deleted on exit\): (.+)$").group(1))
    token = terminal.wait_for(r"^Token: (\S+)$").group(1)
    terminal.wait_for(r"Application startup complete")
    home = httpx.get(f"{base}/v1/home", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert home.status_code == 200, home.text
    assert home.json()["slots"]["home.kingkong/v1"] == []
    assert [d["plugin"] for d in home.json()["degraded"]] == ["kit-probe"]
    denied = terminal.wait_for(
        r"^\[hook\] kit-probe home_slot_offers error ([0-9.]+) ms  scope denied: (.+)$"
    )
    assert denied.group(2) == "holdings:read (not granted)"

    (project / "src" / "fulcrum_kit_probe" / "__init__.py").write_text(
        HOME.format(peek="pass"), encoding="utf-8"
    )
    terminal.wait_for(r"Application startup complete")
    fixed = httpx.get(f"{base}/v1/home", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert fixed.status_code == 200, fixed.text
    assert [o["key"] for o in fixed.json()["slots"]["home.kingkong/v1"]] == ["entry"]
    terminal.wait_for(r"^\[hook\] kit-probe home_slot_offers ok [0-9.]+ ms$")
    assert state.is_dir()
    stop()
    assert not state.exists()  # the throwaway state goes with the host


STOPPER = """\
import asyncio

try:
    LOOP = asyncio.get_running_loop()  # the dev host's own: the app factory imports the plugin on it
except RuntimeError:
    LOOP = None
"""


@pytest.mark.slow
@pytest.mark.skipif(not FULCRUM.exists(), reason="the fulcrum command is not installed in this environment")
def test_a_plugin_stopping_the_loop_leaves_the_dev_host_serving(tmp_path: Path) -> None:
    """A plugin whose hook stops the server's loop: each call is answered and the next one too, with the
    stop logged, as under ``fulcrum serve``. Before, the reloader's worker died ("Event loop stopped
    before Future completed.") and requests hung until the next save."""
    project = write_project(tmp_path / "stopper", peek="LOOP.call_soon_threadsafe(LOOP.stop)")
    module = project / "src" / "fulcrum_kit_probe" / "__init__.py"
    module.write_text(STOPPER + module.read_text(encoding="utf-8"), encoding="utf-8")
    with _dev_process(tmp_path, project) as (terminal, base, stop):
        token = terminal.wait_for(r"^Token: (\S+)$").group(1)
        terminal.wait_for(r"Application startup complete")
        for _ in range(3):
            home = httpx.get(f"{base}/v1/home", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert home.status_code == 200, home.text
            assert [o["key"] for o in home.json()["slots"]["home.kingkong/v1"]] == ["entry"]
        terminal.wait_for(r"the event loop was stopped by code that is not the server's .*; it runs on$")
        stop()
    assert not any("Event loop stopped before Future completed" in line for line in terminal.lines)


FAN_OUT = """\
import os, threading
from fulcrum_core import app as host

host.SHUTDOWN_THREADS_S = 1.0  # read as the worker exits: the test need not wait the 5 s


def fan_out():
    threading.Event().wait()  # a call to the plugin's backend that never returns


threading.Thread(target=fan_out, name="partner-fan-out", daemon=False).start()
print(f"[probe] worker {os.getpid()}", flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not FULCRUM.exists(), reason="the fulcrum command is not installed in this environment")
def test_a_plugin_thread_that_never_ends_does_not_hold_the_dev_hosts_worker(tmp_path: Path) -> None:
    """A worker of ``fulcrum dev`` that stops (here told so alone, as a worker that failed to start stops
    itself) gives the plugin's own thread ``SHUTDOWN_THREADS_S``, then exits naming it, as serve's do.
    Before, it waited for the thread for ever."""
    project = write_project(tmp_path / "fanout")
    module = project / "src" / "fulcrum_kit_probe" / "__init__.py"
    module.write_text(FAN_OUT + module.read_text(encoding="utf-8"), encoding="utf-8")
    with _dev_process(tmp_path, project) as (terminal, _, stop):
        worker = int(terminal.wait_for(r"^\[probe\] worker (\d+)$").group(1))
        terminal.wait_for(r"Application startup complete")
        os.kill(worker, signal.SIGINT)
        warning = terminal.wait_for(r"still running 1 s after the server stopped", timeout=30)
        assert "'partner-fan-out' running fulcrum_kit_probe.fan_out" in warning.string
        stop()


def test_the_dev_hosts_worker_keeps_its_loop_running_as_serves_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reloader is handed serve's config: the worker it starts builds a loop that a stop does not
    end (the loop factory runs in that process, from the config it is given)."""
    from fulcrum_core import exit_threads
    from fulcrum_core.cli import serve as serve_module

    handed: list[Any] = []

    class Reloader:
        def __init__(self, config: Any, target: Any, sockets: list[socket.socket]) -> None:
            handed.append(config)
            for sock in sockets:
                sock.close()

        def run(self) -> None:
            pass

    monkeypatch.setattr(serve_module, "ChangeReload", Reloader)
    monkeypatch.setattr(exit_threads, "arm", lambda: None)  # this process is no worker: never bound its exit
    serve_module.run_server(
        "fulcrum_core.devhost.asgi:dev_app_factory", host="127.0.0.1", port=_free_port(), loop="asyncio",
        reload_dirs=["."],
    )
    (config,) = handed
    assert config.should_reload

    async def stopped() -> str:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0.01)
        return "served"

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        assert runner.run(stopped()) == "served"


def test_the_dev_hosts_worker_bounds_its_exit_as_serves_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker the reloader starts arms the bounded exit where it builds its loop, as serve's worker
    does, and runs serve's server, which tells it the status to keep: before, ``fulcrum dev`` armed
    nothing, and a plugin's thread that never ends held its exited worker for ever."""
    from fulcrum_core import exit_threads
    from fulcrum_core.cli import serve as serve_module

    handed: list[tuple[Any, Any]] = []
    armed: list[int] = []

    class Reloader:
        def __init__(self, config: Any, target: Any, sockets: list[socket.socket]) -> None:
            handed.append((config, target))
            for sock in sockets:
                sock.close()

        def run(self) -> None:
            pass

    monkeypatch.setattr(serve_module, "ChangeReload", Reloader)
    monkeypatch.setattr(exit_threads, "arm", lambda: armed.append(os.getpid()))
    serve_module.run_server(
        "fulcrum_core.devhost.asgi:dev_app_factory", host="127.0.0.1", port=_free_port(), loop="asyncio",
        reload_dirs=["."],
    )
    ((config, target),) = handed
    assert armed == []  # not in the reloader's process: only where the worker builds its loop
    config.get_loop_factory()().close()
    assert armed == [os.getpid()]
    assert isinstance(target.__self__, serve_module._Server)


def test_an_unauthenticated_call_is_refused_by_the_dev_host_too(tmp_path: Path) -> None:
    """Sanity of the wiring without a server: the dev app factory builds a host that loads the plugin."""
    project = write_project(tmp_path / "p")
    env = {
        "FULCRUM_STATE_DIR": str(tmp_path / "state"),
        "FULCRUM_DATABASE_URL": f"sqlite:///{tmp_path / 'state' / 'db.sqlite'}",
        "FULCRUM_BRANCHES_DIR": str(tmp_path / "none"),
        "FULCRUM_DEV_SOURCE": str(project / "src"),
        "FULCRUM_DEV_PACKAGE": "fulcrum_kit_probe",
    }
    code = textwrap.dedent("""\
        from litestar.testing import TestClient
        from fulcrum_core.devhost.asgi import dev_app_factory
        app = dev_app_factory()
        rt = app.state.runtime
        print(sorted(rt.plugins.loaded), type(rt.dispatcher.stats).__name__, rt.settings.dev_mode)
        print("tracebacks:", rt.dispatcher.on_plugin_error == rt.dispatcher.stats.show_error)
        print("code:", rt.dispatcher.stats._code_dir)
    """)
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    *_, loaded, tracebacks, code = ran.stdout.strip().splitlines()
    assert loaded == "['kit-probe'] EchoStats True"
    assert tracebacks == "tracebacks: True"  # the dev host shows where the plugin crashed
    assert code == f"code: {os.path.realpath(project / 'src' / 'fulcrum_kit_probe')}{os.sep}"


def test_the_printed_new_token_command_issues_for_the_hosts_issuer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``FULCRUM_ISSUER`` set (as the OAuth flows need), the hint for a new token keeps that issuer:
    without it, ``fulcrum token issue`` signs for the default issuer and the host answers 401."""
    from fulcrum_core.cli import dev as dev_command
    from fulcrum_core.devhost.asgi import PACKAGE_ENV, SOURCE_ENV

    for name in ("FULCRUM_STATE_DIR", "FULCRUM_DATABASE_URL", "FULCRUM_DEV_MODE", "FULCRUM_BRANCHES_DIR",
                 "FULCRUM_CONFIG", SOURCE_ENV, PACKAGE_ENV):
        # The command sets them: setting first makes monkeypatch restore each (absent ones removed).
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("FULCRUM_ISSUER", "http://127.0.0.1:8931")
    monkeypatch.setattr(dev_command, "run_server", lambda *args, **kwargs: None)
    monkeypatch.setattr(dev_command, "refuse_busy_port", lambda *args, **kwargs: None)
    ran = CliRunner().invoke(main, ["dev", str(write_project(tmp_path / "p")), "--port", "8931"])
    assert ran.exit_code == 0, ran.output
    hint = next(line for line in ran.output.splitlines() if line.startswith("A new token"))
    assert "FULCRUM_ISSUER=http://127.0.0.1:8931 " in hint
    assert "uv run fulcrum token issue --customer c-0755-001" in hint


def test_the_dev_host_is_its_own_issuer_unless_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On ``--port 8932`` with no issuer set, the OAuth metadata, the tokens and the problem types name
    ``http://127.0.0.1:8932`` (they named port 8000, where nothing of this host listens); an issuer the
    config names is kept."""
    from fulcrum_core.cli import dev as dev_command
    from fulcrum_core.devhost.asgi import PACKAGE_ENV, SOURCE_ENV

    for name in ("FULCRUM_STATE_DIR", "FULCRUM_DATABASE_URL", "FULCRUM_DEV_MODE", "FULCRUM_BRANCHES_DIR",
                 "FULCRUM_CONFIG", "FULCRUM_ISSUER", SOURCE_ENV, PACKAGE_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(dev_command, "run_server", lambda *args, **kwargs: None)
    monkeypatch.setattr(dev_command, "refuse_busy_port", lambda *args, **kwargs: None)
    project = write_project(tmp_path / "p")

    ran = CliRunner().invoke(main, ["dev", str(project), "--port", "8932"])
    assert ran.exit_code == 0, ran.output
    assert os.environ["FULCRUM_ISSUER"] == "http://127.0.0.1:8932"  # what the server process reads
    assert "(http://127.0.0.1:8932/oauth/token)" in ran.output
    hint = next(line for line in ran.output.splitlines() if line.startswith("A new token"))
    assert "FULCRUM_ISSUER=http://127.0.0.1:8932 " in hint

    monkeypatch.delenv("FULCRUM_ISSUER")
    config = tmp_path / "fulcrum.toml"
    config.write_text('issuer = "https://open.bank.example"\n', encoding="utf-8")
    ran = CliRunner().invoke(main, ["--config", str(config), "dev", str(project), "--port", "8933"])
    assert ran.exit_code == 0, ran.output
    assert "FULCRUM_ISSUER" not in os.environ
    assert "(https://open.bank.example/oauth/token)" in ran.output


def test_an_issuer_on_another_local_port_is_replaced_by_the_dev_hosts_own_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``FULCRUM_ISSUER`` exported for a demo on 8300 made ``dev --port 8301`` advertise 8300, where
    nothing could issue a token the dev host accepts (it signs with its own throwaway key): the dev host
    is its own issuer then, and says so. A remote issuer is kept, with the demo's Note."""
    from fulcrum_core.cli import dev as dev_command
    from fulcrum_core.devhost.asgi import PACKAGE_ENV, SOURCE_ENV

    for name in ("FULCRUM_STATE_DIR", "FULCRUM_DATABASE_URL", "FULCRUM_DEV_MODE", "FULCRUM_BRANCHES_DIR",
                 "FULCRUM_CONFIG", SOURCE_ENV, PACKAGE_ENV):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(dev_command, "run_server", lambda *args, **kwargs: None)
    monkeypatch.setattr(dev_command, "refuse_busy_port", lambda *args, **kwargs: None)
    project = write_project(tmp_path / "p")

    for demo_issuer in ("http://127.0.0.1:8300", "http://localhost:8000/"):
        monkeypatch.setenv("FULCRUM_ISSUER", demo_issuer)
        ran = CliRunner().invoke(main, ["dev", str(project), "--port", "8301"])
        assert ran.exit_code == 0, ran.output
        assert os.environ["FULCRUM_ISSUER"] == "http://127.0.0.1:8301"  # what the server process reads
        note = next(line for line in ran.output.splitlines() if line.startswith("Note:"))
        assert demo_issuer in note
        assert "its own issuer: http://127.0.0.1:8301" in note
        assert "(http://127.0.0.1:8301/oauth/token)" in ran.output
        assert ":8300" not in ran.output.replace(demo_issuer, "")

    monkeypatch.setenv("FULCRUM_ISSUER", "https://open.bank.example")
    ran = CliRunner().invoke(main, ["dev", str(project), "--port", "8301"])
    assert ran.exit_code == 0, ran.output
    assert os.environ["FULCRUM_ISSUER"] == "https://open.bank.example"
    note = next(line for line in ran.output.splitlines() if line.startswith("Note:"))
    assert "https://open.bank.example, not this host (http://127.0.0.1:8301)" in note
    assert "(https://open.bank.example/oauth/token)" in ran.output

    monkeypatch.setenv("FULCRUM_ISSUER", "http://127.0.0.1:8301")
    ran = CliRunner().invoke(main, ["dev", str(project), "--port", "8301"])
    assert ran.exit_code == 0, ran.output
    assert "Note:" not in ran.output


def test_the_dev_host_registers_the_plugins_oauth_client_from_its_manifest(tmp_path: Path) -> None:
    """As the real host does for an approved release: ``plugin-<id>`` with the requested scopes and the
    manifest's ``[oauth]`` keys and redirect URIs, so a partner's backend can try ``private_key_jwt``."""
    from fulcrum_core.data.db import Database
    from fulcrum_core.devhost import prepare_client, prepare_state
    from fulcrum_core.oauth.clients import ClientStore
    from fulcrum_core.settings import Settings

    key = {
        "kty": "EC", "crv": "P-256", "kid": "dev-1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    }
    project = write_project(tmp_path / "p")
    manifest_file = project / "src" / "fulcrum_kit_probe" / "fulcrum-plugin.toml"
    manifest_file.write_text(
        MANIFEST.replace('kind = "department"', 'kind = "partner"')
        + '\n[oauth]\nredirect_uris = ["http://127.0.0.1:8765/callback"]\n[[oauth.jwks.keys]]\n'
        + "".join(f'{k} = "{v}"\n' for k, v in key.items()),
        encoding="utf-8",
    )
    manifest = find_dev_plugin(project).manifest
    settings = Settings(state_dir=str(tmp_path / "state"), database_url=f"sqlite:///{tmp_path / 'dev.db'}")
    prepare_state(settings, manifest, "c-0755-001")
    change = prepare_client(settings, manifest)
    assert change.action == "created"
    db = Database(settings.resolved_database_url())
    try:
        client = ClientStore(db).get("plugin-kit-probe")
    finally:
        db.dispose()
    assert client is not None
    assert client.active
    assert client.auth_method == "private_key_jwt"
    assert client.scopes == {"slot:home.kingkong"}
    assert client.jwks == {"keys": [key]}
    assert client.redirect_uris == ("http://127.0.0.1:8765/callback",)


def test_a_port_in_use_is_refused_before_the_token_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fulcrum dev`` on the port a demo still serves printed its token and "Try: curl" for that port,
    then uvicorn's bare "Address already in use": it now says so first, and what to do."""
    from fulcrum_core.cli import dev as dev_command

    started: list[object] = []
    monkeypatch.setattr(dev_command, "run_server", lambda *args, **kwargs: started.append(args))
    with socket.socket() as demo:
        demo.bind(("127.0.0.1", 0))
        demo.listen()
        port = demo.getsockname()[1]
        ran = CliRunner().invoke(main, ["dev", str(write_project(tmp_path / "p")), "--port", str(port)])
    assert ran.exit_code == 1
    assert started == []
    assert "Token:" not in ran.output
    assert (
        f"port {port} on 127.0.0.1 is in use (another server on it?); stop what listens there, or pick "
        "another with --port\n"
    ) in ran.output
