"""``fulcrum serve`` for real on each HTTP parser and event loop it can run: httptools and uvloop (``auto``,
the default) and h11 and asyncio (the pure-Python ones). The same requests get the same answers on both,
and the server process has loaded the C parser and loop only when it was to run them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.settings import Settings
from fulcrum_sdk.scopes import APP_SCOPES

MAPS = Path("/proc/self/maps")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _loaded(pid: int) -> set[str]:
    """Which of httptools and uvloop the process ``pid`` has loaded (their extension modules mapped)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in ("httptools", "uvloop") if f"/{name}/" in maps}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A migrated, seeded SQLite demo; the environment that serves it."""
    root = tmp_path_factory.mktemp("stack")
    env = {
        **os.environ,
        "FULCRUM_STATE_DIR": str(root / "state"),
        "FULCRUM_BRANCHES_DIR": str(root / "no-branches"),
    }
    for name in ("FULCRUM_METRICS_DIR", "FULCRUM_HTTP_PROTOCOL", "FULCRUM_EVENT_LOOP"):
        env.pop(name, None)
    cli = str(Path(sys.executable).parent / "fulcrum")
    subprocess.run([cli, "demo", "--no-serve"], env=env, check=True, capture_output=True, cwd=root)
    return root, env


@contextlib.contextmanager
def _serving(root: Path, env: dict[str, str], stack: dict[str, str]) -> Iterator[tuple[str, int]]:
    """``fulcrum serve`` on ``stack`` (variables); its base URL and pid while it runs."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, **stack, "FULCRUM_ISSUER": base}
    log = root / f"serve-{port}.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "fulcrum"), "serve", "--port", str(port)],
            env=env,
            cwd=root,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not become ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield base, server.pid
    finally:
        server.terminate()
        server.wait(30)
    assert "Traceback" not in log.read_text()


STACKS = {
    "auto": ({}, {"httptools", "uvloop"}),
    "pure-python": ({"FULCRUM_HTTP_PROTOCOL": "h11", "FULCRUM_EVENT_LOOP": "asyncio"}, set()),
    "httptools-on-asyncio": (
        {"FULCRUM_HTTP_PROTOCOL": "httptools", "FULCRUM_EVENT_LOOP": "asyncio"},
        {"httptools"},
    ),
}


@pytest.mark.skipif(not MAPS.exists(), reason="reads which libraries a server loaded from /proc (Linux)")
@pytest.mark.parametrize("name", list(STACKS))
def test_the_same_requests_get_the_same_answers_on_each_stack(
    prepared: tuple[Path, dict[str, str]], name: str
) -> None:
    root, env = prepared
    stack, expected = STACKS[name]
    with _serving(root, env, stack) as (base, pid):
        assert _loaded(pid) == expected
        tokens = TokenService.from_settings(Settings(state_dir=env["FULCRUM_STATE_DIR"], issuer=base))
        auth = {"Authorization": f"Bearer {tokens.issue('c-0755-001', sorted(APP_SCOPES))}"}
        with httpx.Client(base_url=base, timeout=10) as client:  # one keep-alive connection
            pages = [client.get("/v1/home", headers=auth) for _ in range(3)]
            assert [p.status_code for p in pages] == [200, 200, 200]
            assert all(p.json()["slots"]["home.banner/v1"] for p in pages)
            assert len({p.headers["x-request-id"] for p in pages}) == 3

            body = msgspec.json.encode(
                {"type": "pension.personal_contribution", "params": {"amount_fen": 100}}
            )
            post = {**auth, "Idempotency-Key": f"stack-{name}", "Content-Type": "application/json"}
            first = client.post("/v1/transactions", content=body, headers=post)
            again = client.post("/v1/transactions", content=body, headers=post)
            assert first.status_code == 201, first.text
            assert again.status_code == 201
            assert again.headers["idempotent-replayed"] == "true"
            assert again.json()["id"] == first.json()["id"]

            bad = client.post(
                "/v1/transactions",
                content=b'{"type": "pension.personal_contribution", "params": {',
                headers={**post, "Idempotency-Key": f"stack-{name}-bad"},
            )
            assert bad.status_code == 400
            missing = client.get("/v1/nowhere", headers={"X-Request-ID": "trace-stack-1"})
            assert missing.status_code == 404
            assert missing.headers["x-request-id"] == "trace-stack-1"
            assert client.get("/v1/home").status_code == 401
