"""``fulcrum serve`` and ``fulcrum demo``: run the host, or migrate + seed + run it (SQLite by default)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from stat import S_ISDIR
from types import FrameType
from typing import Any

import click
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import ChangeReload, Multiprocess, multiprocess

from fulcrum_core import exit_threads, stopping
from fulcrum_core.cli._groups import refuse_own_options
from fulcrum_core.cli._settings import settings_for
from fulcrum_core.observability.processes import alive
from fulcrum_core.observability.throttle import ThrottledWarning

__all__ = ["METRICS_DIR_PREFIX", "WORKER_HEALTHCHECK_SECONDS", "demo", "run_server", "serve", "server_stack"]

WORKER_HEALTHCHECK_SECONDS = 30
"""How long uvicorn's supervisor waits for a worker to answer its health check before killing it.

A new worker answers only once it has imported the CLI again (``spawn``), which takes seconds; with
uvicorn's default of 5 s, workers starting on a busy host were killed and restarted forever."""


def _host(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--host`` as an interface name or address: an empty one (an unset variable in a script) bound
    every interface, or fell back to the default without a word."""
    if value is not None and (not value.strip() or not value.isprintable() or " " in value):
        raise click.BadParameter(f"{value!r} is no interface name or address (e.g. 127.0.0.1)", ctx, param)
    return value


def _run(
    host: str,
    port: int,
    workers: int,
    config_file: str | None,
    *,
    reuse_port: bool = False,
    log_level: str = "info",
    metrics_dir: str | None = None,
    http: str = "auto",
    loop: str = "auto",
    log_json: bool = False,
    shutdown_delay_s: float = 0.0,
) -> None:
    try:
        http, loop = server_stack(http, loop)
    except ValueError as exc:  # a choice named in the settings that is not installed here
        raise click.ClickException(str(exc)) from None
    click.echo(f"HTTP: {http} on {loop} (http_protocol, event_loop)")
    if config_file:
        os.environ["FULCRUM_CONFIG"] = config_file
    # Workers re-import the factory; settings travel through the environment, read at call time.
    with _shared_metrics(workers, metrics_dir):
        run_server(
            "fulcrum_core.asgi:app_factory",
            host=host, port=port, workers=workers, reuse_port=reuse_port, log_level=log_level,
            http=http, loop=loop, log_json=log_json, shutdown_delay_s=shutdown_delay_s,
        )


_AUTO = {"http": ("httptools", "h11"), "loop": ("uvloop", "asyncio")}
"""Each choice's C implementation (also the module to import) and its pure-Python one."""


def _importable(module: str) -> bool:
    """True when ``module`` imports here (installed, and built for this Python)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def server_stack(http: str = "auto", loop: str = "auto") -> tuple[str, str]:
    """The HTTP parser and event loop uvicorn is to run, ``auto`` resolved as uvicorn resolves it (the C
    one when it can be imported, else the pure-Python one), so what is logged and measured is what
    runs. A C one named but not installed is a ``ValueError`` naming the setting."""
    chosen = []
    for name, setting, value in (("http", "http_protocol", http), ("loop", "event_loop", loop)):
        fast, plain = _AUTO[name]
        if value not in ("auto", fast, plain):
            raise ValueError(f"{setting}: {value!r} is none of 'auto', {fast!r}, {plain!r}")
        if value == plain:
            chosen.append(plain)  # nothing to import: the C one stays unloaded
        elif _importable(fast):
            chosen.append(fast)
        elif value == fast:
            raise ValueError(
                f"{setting} = {fast!r}, but {fast} is not installed here; install it or set {plain!r}"
            )
        else:
            chosen.append(plain)
    return chosen[0], chosen[1]


METRICS_DIR_PREFIX = "fulcrum-metrics-"
"""How ``fulcrum serve --workers N`` names its metrics directory in the temp dir: then its pid, a dash."""

_OWNED_DIR = re.compile(re.escape(METRICS_DIR_PREFIX) + r"(\d+)-[^/]+")


@contextlib.contextmanager
def _shared_metrics(workers: int, metrics_dir: str | None) -> Iterator[None]:
    """Several workers and no ``metrics_dir``: give them a fresh one, so a scrape of any worker reports
    them all (``observability/shared_metrics.py``), and remove it when they stop. A supervisor that was
    killed could not remove its own: the next one removes it (its pid, in the name, is gone)."""
    if workers == 1 or metrics_dir:
        yield
        return
    _remove_stale_metrics_dirs()
    directory = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
    os.environ["FULCRUM_METRICS_DIR"] = directory
    try:
        yield
    finally:
        del os.environ["FULCRUM_METRICS_DIR"]
        shutil.rmtree(directory, ignore_errors=True)


def _remove_stale_metrics_dirs() -> None:
    """Remove the temp dir's metrics directories (this prefix, this user's, real directories, never a
    link) whose supervisor is gone; a user-given ``metrics_dir`` is never touched."""
    temp = Path(tempfile.gettempdir())
    for path in temp.glob(f"{METRICS_DIR_PREFIX}*"):
        owner = _OWNED_DIR.fullmatch(path.name)
        if owner is None or alive(int(owner.group(1))):
            continue
        try:
            stat = path.lstat()
        except OSError:  # removed since the listing
            continue
        if S_ISDIR(stat.st_mode) and stat.st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)


class _TcpConfig(uvicorn.Config):
    """uvicorn's config, with a listening socket that says it is TCP, so replies are not held back.

    With ``workers > 1`` uvicorn binds the socket itself and leaves its protocol number at 0; the
    connections it accepts inherit that, asyncio then does not switch on ``TCP_NODELAY``, and on
    Linux every keep-alive reply after the first waits ~40 ms for the client's delayed ACK
    (measured: 89 req/s instead of thousands). Re-wrapping the bound socket with ``IPPROTO_TCP``
    restores what a single worker gets.
    """

    def __init__(
        self, app: str, *, reuse_port: bool = False, bounded_exit: bool = False,
        shutdown_delay_s: float = 0.0, **options: Any,
    ) -> None:
        super().__init__(app, **options)
        self.reuse_port = reuse_port
        self.bounded_exit = bounded_exit
        self.shutdown_delay_s = shutdown_delay_s

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        """uvicorn's event loop, kept running when code other than the server's stops it. With
        ``bounded_exit`` (``fulcrum serve``, ``demo``, ``dev``), making it in a worker also bounds how long
        that worker's exit waits for threads plugins started themselves (``exit_threads.py``): armed
        where the server really runs, never where a test fakes the run."""
        made = super().get_loop_factory()
        factory = made if made is not None else asyncio.new_event_loop
        if not self.bounded_exit:
            return lambda: keep_running(factory())

        def serving_loop() -> asyncio.AbstractEventLoop:
            exit_threads.arm()
            return keep_running(factory())

        return serving_loop

    def bind_socket(self) -> socket.socket:
        if self.reuse_port:
            return _reuse_port_socket(self.host, self.port)
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling :mod:`~fulcrum_core.exit_threads` the status its worker exits with: 0 once
    it has run, stopped by a signal too (both runners take the ``KeyboardInterrupt`` of Ctrl-C as a
    stop), a ``SystemExit``'s (a failed start), else 1 (the exception ends the process).

    With a ``shutdown_delay_s``, a SIGTERM once serving first turns ``/readyz`` to 503
    (:mod:`~fulcrum_core.stopping`) and serves on for the delay, so the load balancer stops sending
    before the socket closes; SIGINT, a second SIGTERM or the delay's end stop it as uvicorn does."""

    _stops_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        delay = getattr(self.config, "shutdown_delay_s", 0.0)
        if sig == signal.SIGTERM and delay > 0 and self.started and self._stops_at is None:
            self._stops_at = time.monotonic() + delay
            stopping.begin(delay)
            log.info("told to stop (SIGTERM): /readyz answers 503; serving on for %s s, then stopping", delay)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stops_at is not None and not self.should_exit and time.monotonic() >= self._stops_at:
            super().handle_exit(signal.SIGTERM, None)  # the stop SIGTERM asked for, its status kept
        return await super().on_tick(counter)

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            super().run(sockets)
        except KeyboardInterrupt:
            exit_threads.exits_with(0)
            raise
        except SystemExit as exc:
            code = exc.code
            exit_threads.exits_with(code if isinstance(code, int) else 0 if code is None else 1)
            raise
        except BaseException:
            exit_threads.exits_with(1)
            raise
        exit_threads.exits_with(0)


class _Worker(multiprocess.Process):
    """A worker process of uvicorn's supervisor (``--workers N``), serving with :class:`_Server`."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = _Server(config=self.config)
        return self._server


@contextlib.contextmanager
def _workers_of_ours() -> Iterator[None]:
    """uvicorn's supervisor makes its workers from the class its module names: :class:`_Worker`, while
    this (its own) process supervises them."""
    made = multiprocess.Process
    multiprocess.Process = _Worker  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = made  # type: ignore[misc]


log = logging.getLogger("fulcrum.serve")

_STOPPED = "Event loop stopped before Future completed."
"""What ``run_until_complete`` raises, on asyncio's loop and on uvloop, when ``stop()`` came first."""

_STOPPED_BY_OTHERS = ThrottledWarning(
    log, "the event loop was stopped by code that is not the server's (a plugin calling loop.stop()?); "
    "it runs on", level=logging.ERROR,
)


def keep_running(loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
    """``loop``, whose ``run_until_complete`` runs the loop again when something stopped it before its
    future was done: the server's own future ends only when it shuts down, so a stop can only come
    from other code, a plugin calling ``loop.stop()`` (or scheduling it). Before, that ended the
    worker, every request it held with it. The stop is logged (at most once in 10 s) and the worker
    goes on."""
    run = loop.run_until_complete

    def run_until_complete(future: Awaitable[Any]) -> Any:
        if loop.is_running():
            return run(future)  # refused as it always is, before anything is scheduled
        task = asyncio.ensure_future(future, loop=loop)
        while True:
            try:
                return run(task)
            except RuntimeError as exc:
                if task.done() or str(exc) != _STOPPED:
                    raise
                _STOPPED_BY_OTHERS()

    loop.run_until_complete = run_until_complete  # type: ignore[method-assign,assignment]
    return loop


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound with ``SO_REUSEPORT``: every process binding the port this way gets its own
    accept queue, and the kernel spreads new connections over them evenly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def run_server(
    app: str,
    *,
    host: str,
    port: int,
    workers: int = 1,
    reuse_port: bool = False,
    app_dir: str | None = None,
    log_level: str = "info",
    http: str = "auto",
    loop: str = "auto",
    reload_dirs: Sequence[str] | None = None,
    log_json: bool = False,
    shutdown_delay_s: float = 0.0,
) -> None:
    """Serve the ASGI factory ``app`` ("module:function") with uvicorn, on the HTTP parser and event loop
    ``http`` and ``loop`` name (:func:`server_stack`). ``log_json``: the supervisor of ``workers > 1``
    logs JSON lines too, as its workers do (each worker's app sets up its own).

    ``reload_dirs`` (``fulcrum dev``) runs the one worker in a process that uvicorn's reloader starts
    again when a file under them changes; that process builds its loop from this config, so a plugin
    stopping the loop leaves it serving there too (:func:`keep_running`).

    ``workers > 1`` runs uvicorn's supervisor over one shared listening socket. There, asyncio's accept
    loop takes every pending connection it can in one go, so long-lived keep-alive connections that
    arrive together can all land on one worker. ``reuse_port`` (one worker per process) binds with
    ``SO_REUSEPORT`` instead: start one ``fulcrum serve --reuse-port`` per core under the process
    manager, and the kernel balances connections across them. ``log_level`` is a level name.

    ``shutdown_delay_s``: how long a worker told to stop by SIGTERM serves on, unready, before it stops
    (:class:`_Server`).

    One worker, with ``reuse_port`` or without, ends as ``uvicorn.run`` ends it: Ctrl-C is a stop (status
    0), an app that never started exits 3. Each worker this runs (``reload_dirs``' too) bounds how long its
    exit waits for threads plugins started themselves (``exit_threads.py``), keeping that status.
    """
    if app_dir:
        sys.path.insert(0, app_dir)
    # A level's number: uvicorn's own names leave out ``warn`` and ``fatal``, which the setting allows.
    level = logging.getLevelNamesMapping()[log_level.upper()]
    http, loop = server_stack(http, loop)
    options: dict[str, Any] = {
        "factory": True, "host": host, "port": port, "log_level": level, "access_log": False,
        "http": http, "loop": loop,
    }
    if reload_dirs is not None:
        if workers != 1 or reuse_port:
            raise ValueError("reload_dirs runs one worker, restarted on change; not several, not reuse_port")
        # Each worker the reloader starts bounds its exit as serve's do (the reloader's process does not).
        config = _TcpConfig(app, reload=True, reload_dirs=list(reload_dirs), bounded_exit=True, **options)
        sock = config.bind_socket()
        # Listening from now on, not from when the worker has built the app (seconds later, and again
        # on every reload): a request sent meanwhile waits for it instead of being refused.
        sock.listen(config.backlog)
        with contextlib.suppress(KeyboardInterrupt):  # the reloader stops its worker itself
            ChangeReload(config, target=_Server(config).run, sockets=[sock]).run()
        return
    if reuse_port and workers != 1:
        raise ValueError("reuse_port runs one worker per process; start several processes instead")
    if workers == 1:  # in this process; with reuse_port, on a socket of its own bound with SO_REUSEPORT
        config = _TcpConfig(
            app, reuse_port=reuse_port, bounded_exit=True, shutdown_delay_s=shutdown_delay_s, **options
        )
        server = _Server(config)
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[config.bind_socket()] if reuse_port else None)
        if not server.started:
            exit_threads.exits_with(STARTUP_FAILURE)
            sys.exit(STARTUP_FAILURE)  # as uvicorn.run does: the app failed to start
        return
    config = _TcpConfig(
        app, workers=workers, timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS, bounded_exit=True,
        shutdown_delay_s=shutdown_delay_s, **options,
    )
    if log_json:  # after the config, which gave uvicorn's loggers their text handlers
        from fulcrum_core.observability.logging import configure_logging

        configure_logging(log_level)
    with _workers_of_ours():
        Multiprocess(config, sockets=[config.bind_socket()]).run()


@click.command()
@click.option(
    "--host", default=None, callback=_host, help="Interface to bind (default: settings, 127.0.0.1)."
)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: settings, 8000).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Worker processes sharing one socket (metrics summed across them).",
)
@click.option(
    "--reuse-port", is_flag=True,
    help="Bind with SO_REUSEPORT (one worker): run one such process per core; the kernel balances them.",
)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int, reuse_port: bool) -> None:
    """Serve the API with the plugins installed in this environment."""
    if reuse_port and workers != 1:
        raise click.UsageError("--reuse-port runs one worker per process: start several processes instead")
    settings = settings_for(ctx)
    host, port = host or settings.host, port or settings.port
    refuse_unusable_state_dir(settings.state_dir)
    if not reuse_port:  # with SO_REUSEPORT another process on the port is the point
        refuse_busy_port(host, port)  # before the whole startup, which uvicorn's bind error came after
    _run(
        host, port, workers, ctx.obj["config_file"],
        reuse_port=reuse_port, log_level=settings.log_level, metrics_dir=settings.metrics_dir,
        http=settings.http_protocol, loop=settings.event_loop, log_json=settings.log_json,
        shutdown_delay_s=settings.shutdown_delay_seconds,
    )


@click.group(invoke_without_command=True)
@click.option(
    "--host", default=None, callback=_host, help="Interface to bind (default: FULCRUM_HOST, 127.0.0.1)."
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: FULCRUM_PORT, 8000)."
)
@click.option("--no-serve", is_flag=True, help="Migrate and seed, then exit.")
@click.pass_context
def demo(ctx: click.Context, host: str | None, port: int | None, no_serve: bool) -> None:
    """Migrate and seed a demo database, then serve it with the three plugins on.

    The database is FULCRUM_DATABASE_URL (or database_url in --config); unset, a SQLite file under
    FULCRUM_STATE_DIR (default .fulcrum/).
    """
    if ctx.invoked_subcommand is not None:
        refuse_own_options(ctx)
        return
    from fulcrum_core.demo import prepare_demo

    # The demo has no bank login behind it: the OAuth consent page offers the seeded customers instead.
    os.environ.setdefault("FULCRUM_OAUTH_DEV_LOGIN", "1")
    settings = settings_for(ctx)
    host, port = host or settings.host, port or settings.port
    refuse_unusable_state_dir(settings.state_dir)
    if not no_serve:
        refuse_busy_port(host, port)  # before migrating and seeding, and before "Serving on"
    report = prepare_demo(settings)
    click.echo(report)
    if not no_serve:
        base = f"http://{host}:{port}"
        click.echo(f"Serving on {base}  (OpenAPI: {base}/schema)")
        if settings.issuer.rstrip("/") != base:
            click.echo(
                f"Note: the OAuth issuer is {settings.issuer}; for OAuth clients of this server set "
                f"FULCRUM_ISSUER={base} here and for `fulcrum token issue`."
            )
        _run(
            host, port, 1, ctx.obj["config_file"], log_level=settings.log_level,
            http=settings.http_protocol, loop=settings.event_loop,
        )


def refuse_unusable_state_dir(state_dir: str) -> None:
    """A ``ClickException`` (exit 1) when the state directory cannot be made or written, said before
    anything runs: each worker died building the app (its signing keys live there) with a traceback."""
    path = Path(state_dir)
    where = f"the state directory {path} (state_dir, FULCRUM_STATE_DIR)"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{where} cannot be made: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise click.ClickException(f"{where} cannot be written by this user")


def refuse_busy_port(host: str, port: int, *, issuer_follows: bool = False) -> None:
    """A ``ClickException`` (exit 1) when ``host:port`` cannot be bound, a server already on it: said
    first, where uvicorn's bind error came only after the demo was seeded and "Serving on" printed
    (``fulcrum dev``: after its token). ``issuer_follows``: the server names its port as the issuer
    itself, so the advice leaves ``FULCRUM_ISSUER`` out."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            reason = "is in use (another server on it?)" if in_use else f"cannot be bound: {exc.strerror}"
            issuer = "" if issuer_follows else f" (and FULCRUM_ISSUER=http://{host}:<port>)"
            raise click.ClickException(
                f"port {port} on {host} {reason}; stop what listens there, or pick another with "
                f"--port{issuer}"
            ) from None


def _attach_demo_subcommands() -> None:
    from fulcrum_core.cli.demo_data import customers

    demo.add_command(customers)


_attach_demo_subcommands()
