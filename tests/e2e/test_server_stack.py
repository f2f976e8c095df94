"""``fulcrum serve`` for real on each HTTP parser and event loop it can run: httptools and uvloop (``auto``,
the default) and h11 and asyncio (the pure-Python ones). The same requests get the same answers on both,
and the server process has loaded the C parser and loop only when it was to run them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import msgspec
import pytest
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.settings import Settings
from fulcrum_sdk.scopes import APP_SCOPES

from tests.e2e.serving import FULCRUM, free_port, serving

MAPS = Path("/proc/self/maps")


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
    subprocess.run([FULCRUM, "demo", "--no-serve"], env=env, check=True, capture_output=True, cwd=root)
    return root, env


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
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving([], port, {**env, **stack, "FULCRUM_ISSUER": base}, root) as (pid, _log):
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
