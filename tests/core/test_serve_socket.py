"""``fulcrum serve --workers N`` listens on a socket whose connections get TCP_NODELAY.

Without it, every keep-alive reply after the first waits for the client's delayed ACK (~40 ms on
Linux), which the benchmark measured as 89 req/s for two workers instead of thousands.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.cli import serve as serve_module
from fulcrum_core.cli.serve import WORKER_HEALTHCHECK_SECONDS, _TcpConfig, run_server


def _nodelay_of_accepted(listener: socket.socket) -> int:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        host, port = listener.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    return asyncio.run(main())


def test_the_multi_worker_listener_is_tcp_and_its_connections_send_at_once() -> None:
    config = _TcpConfig("fulcrum_core.asgi:app_factory", factory=True, host="127.0.0.1", port=0, workers=2)
    listener = config.bind_socket()
    assert listener.proto == socket.IPPROTO_TCP
    assert listener.getsockname()[0] == "127.0.0.1"
    assert _nodelay_of_accepted(listener) != 0


def test_a_socket_without_the_protocol_number_would_not_get_it() -> None:
    # The failure the re-wrapping prevents, shown on a plain listener made the way uvicorn makes it.
    listener = socket.socket(socket.AF_INET)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    assert listener.proto == 0
    assert _nodelay_of_accepted(listener) == 0


def test_reuse_port_sockets_share_a_port_and_each_gets_nodelay() -> None:
    first = _TcpConfig("fulcrum_core.asgi:app_factory", reuse_port=True, host="127.0.0.1", port=0)
    a = first.bind_socket()
    port = a.getsockname()[1]
    second = _TcpConfig("fulcrum_core.asgi:app_factory", reuse_port=True, host="127.0.0.1", port=port)
    b = second.bind_socket()  # a second process's socket on the same port: no EADDRINUSE
    try:
        assert b.getsockname()[1] == port
        assert a.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        a.listen()
        assert a.proto == socket.IPPROTO_TCP
        assert _nodelay_of_accepted(a) != 0
    finally:
        a.close()
        b.close()


def test_reuse_port_is_one_worker_per_process() -> None:
    with pytest.raises(ValueError, match="one worker per process"):
        run_server("fulcrum_core.asgi:app_factory", host="127.0.0.1", port=0, workers=2, reuse_port=True)
    result = CliRunner().invoke(main, ["serve", "--reuse-port", "--workers", "2"])
    assert result.exit_code == 2
    assert "--reuse-port runs one worker per process" in result.output


def test_workers_get_time_to_start_before_the_supervisor_gives_up_on_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A spawned worker answers the health check only after importing the CLI again; uvicorn's 5 s
    default killed workers starting on a busy host, over and over."""
    seen: dict[str, Any] = {}

    class Supervisor:
        def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
            seen["timeout"] = config.timeout_worker_healthcheck
            for sock in sockets:
                sock.close()

        def run(self) -> None:
            seen["ran"] = True

    monkeypatch.setattr(serve_module, "Multiprocess", Supervisor)
    run_server("fulcrum_core.asgi:app_factory", host="127.0.0.1", port=0, workers=2)
    assert seen == {"timeout": WORKER_HEALTHCHECK_SECONDS, "ran": True}
    assert WORKER_HEALTHCHECK_SECONDS >= 30


def test_the_cli_imports_a_commands_module_only_when_the_command_runs() -> None:
    """``import fulcrum_core.cli`` (what every spawned worker and every ``fulcrum`` call does first)
    loads no database, web or OAuth library; the command that runs loads what it needs."""
    probe = (
        "import sys, fulcrum_core.cli as cli\n"
        "heavy = {'sqlalchemy', 'alembic', 'litestar', 'authlib', 'uvicorn'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    runner = CliRunner().invoke(main, ["serve", "--help"])
    assert runner.exit_code == 0
    assert "--reuse-port" in runner.output
    unknown = CliRunner().invoke(main, ["sreve"])
    assert unknown.exit_code == 2
    assert "No such command 'sreve'" in unknown.output


def test_the_reloading_server_accepts_connections_before_its_worker_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fulcrum dev`` prints its token and URL as the reloader starts, seconds before the worker has
    built the app: the socket listens from then on, so a request sent meanwhile (or during a reload)
    waits for the worker instead of being refused."""
    connected: list[bool] = []

    class NoWorker:
        """The reloader, standing still before it starts the worker."""

        def __init__(self, config: Any, *, target: Any, sockets: list[socket.socket]) -> None:
            self.sockets = sockets

        def run(self) -> None:
            (sock,) = self.sockets
            try:
                with socket.create_connection(sock.getsockname()[:2], timeout=2):
                    connected.append(True)
            except ConnectionRefusedError:
                connected.append(False)
            finally:
                sock.close()

    monkeypatch.setattr(serve_module, "ChangeReload", NoWorker)
    run_server("fulcrum_core.asgi:app_factory", host="127.0.0.1", port=0, reload_dirs=["."])
    assert connected == [True]
