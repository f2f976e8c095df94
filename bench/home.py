"""Benchmark: ``GET /v1/home`` of the real app against a bare litestar endpoint serving the same bytes.

One run starts, each in its own uvicorn process on 127.0.0.1 and a free port:

1. the real app (``create_app``) with the three first-party plugins (approved through the demo
   registry seed) plus 27 synthetic plugins, on SQLite, one worker;
2. a bare litestar app whose one route returns the real app's home response, precomputed, one worker;
3. with ``--postgres URL``: the real app on PostgreSQL with one and with two workers.

Each is driven by ``wrk`` (``--connections`` connections, ``--seconds`` seconds, after a short
warm-up) and the script prints requests per second, p50 and p99 latency, and the ratio to the bare
endpoint. Run from the repository root::

    uv run python bench/home.py [--seconds 10] [--connections 32] [--postgres postgresql+psycopg://...]

Nothing here is asserted; the figures go to ``bench/README.md``. Synthetic plugins are half
``async def`` (finishing without waiting, so the dispatcher runs them eagerly) and half plain
functions declared ``@nonblocking``, each offering one item, as cheap plugins do.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
from litestar import Litestar, Response, get

CUSTOMER = "c-0755-001"
SYNTHETIC = 27
SLOTS = ("home.banner/v1", "home.kingkong/v1", "home.notice/v1")
HERE = Path(__file__).resolve().parent


# --- the apps (imported by uvicorn in the worker processes) --------------------------------------------


def _synthetic(index: int) -> object:
    """One synthetic plugin: a manifest and a cheap ``home_slot_offers``."""
    from fulcrum_sdk import hookimpl, nonblocking
    from fulcrum_sdk.manifest import Manifest
    from fulcrum_sdk.models import Action, LocalizedText, SlotOffer

    plugin_id = f"synthetic-{index:02d}"
    slot = SLOTS[index % len(SLOTS)]
    placement = "slot:" + slot.split("/")[0]
    manifest = msgspec.convert(
        {
            "id": plugin_id, "name": {"zh-CN": f"合成插件 {index}"}, "description": {"zh-CN": "基准测试用"},
            "publisher": "bench", "kind": "department", "sdk": ">=0.1,<1", "hooks": ["home_slot_offers"],
            "slots": [slot], "scopes": {"required": {placement: "bench", "profile:basic": "bench"}},
            "owner": {"name": "Bench", "email": "bench@example.com"}, "version": "1.0.0",
        },
        Manifest,
    )
    offer = SlotOffer(
        slot=slot, key=f"{plugin_id}-item",
        title=LocalizedText(zh_CN=f"合成内容 {index}", en=f"Synthetic {index}"),
        action=Action(uri=f"fulcrum://open/{plugin_id}"), priority=index,
    )

    class Plugin:
        MANIFEST = manifest

    if index % 2:

        async def home_slot_offers(ctx: Any) -> list[SlotOffer]:
            return [offer] if ctx.customer.locale else []

    else:

        @nonblocking
        def home_slot_offers(ctx: Any) -> list[SlotOffer]:
            return [offer] if ctx.customer.locale else []

    Plugin.home_slot_offers = staticmethod(hookimpl(home_slot_offers))  # type: ignore[attr-defined]
    return Plugin()


def real_app() -> Any:
    """The real app from ``FULCRUM_*`` settings with the installed plugins plus the synthetic ones."""
    from fulcrum_core.app import build_runtime, create_app
    from fulcrum_core.settings import load_settings

    settings = load_settings()
    runtime = build_runtime(settings, extra_plugins=[_synthetic(i) for i in range(SYNTHETIC)])
    return create_app(settings, runtime=runtime)


def bare_app() -> Any:
    """A bare litestar app returning the bytes in ``FULCRUM_BENCH_BODY`` (a file) at ``/v1/home``."""
    body = Path(os.environ["FULCRUM_BENCH_BODY"]).read_bytes()

    @get("/v1/home")
    async def home() -> Response[bytes]:
        return Response(body, media_type="application/json")

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([home, healthz], openapi_config=None)


# --- driving them -------------------------------------------------------------------------------------


class Result(msgspec.Struct):
    """One wrk run; ``full_pages`` is the share of first-party plugin calls that contributed (real app)."""

    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    full_pages: float | None = None


_CALLS = re.compile(
    r'^fulcrum_plugin_calls_total\{hook="home_slot_offers",outcome="(\w+)",plugin="([\w-]+)"\} (\S+)$'
)


def _first_party_ok(port: int, staff: str) -> float:
    """Of the three first-party plugins' calls so far, the share that returned ``ok`` (from /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {staff}"}).text
    ok = total = 0.0
    for line in text.splitlines():
        match = _CALLS.match(line)
        if match and not match.group(2).startswith("synthetic-"):
            total += float(match.group(3))
            ok += float(match.group(3)) if match.group(1) == "ok" else 0.0
    return ok / total if total else 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(factory: str, env: dict[str, str], workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", f"home:{factory}", "--app-dir", str(HERE),
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--no-access-log", "--log-level", "warning",
    ]
    proc = subprocess.Popen(cmd, env={**os.environ, **env})  # noqa: S603 - our own argv, no shell
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"{factory} did not start on port {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _wrk(label: str, port: int, token: str, seconds: int, connections: int) -> Result:
    url = f"http://127.0.0.1:{port}/v1/home"
    base = ["wrk", "-t1", f"-c{connections}", "--latency", "-H", f"Authorization: Bearer {token}"]
    subprocess.run([*base, "-d2s", url], check=True, capture_output=True)  # noqa: S603 - warm-up
    out = subprocess.run(  # noqa: S603 - our own argv, no shell
        [*base, f"-d{seconds}s", url], check=True, capture_output=True, text=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(label, rps, p50, p99, int(bad.group(1)) if bad else 0)


def _prepare(state_dir: Path, database_url: str | None) -> tuple[dict[str, str], str, str]:
    """Migrate and seed; the environment for the servers, a customer token and a staff token."""
    from fulcrum_core.auth.tokens import TokenService
    from fulcrum_core.demo import prepare_demo
    from fulcrum_core.settings import load_settings
    from fulcrum_sdk.scopes import APP_SCOPES

    env = {
        "FULCRUM_STATE_DIR": str(state_dir), "FULCRUM_DEV_MODE": "true", "FULCRUM_LOG_LEVEL": "WARNING",
        "FULCRUM_CONFIG": str(state_dir / "bench.toml"),
        # No branch layer: every installed plugin (the 27 synthetic ones too) is on for the customer.
        "FULCRUM_BRANCHES_DIR": str(state_dir / "no-branches"),
    }
    # The load generator is one client: lift the per-client limit so it measures the page, not the 429.
    (state_dir / "bench.toml").write_text("[rate_limit]\nenabled = false\n")
    if database_url:
        env["FULCRUM_DATABASE_URL"] = database_url
    settings = load_settings(environ=env)
    prepare_demo(settings)
    tokens = TokenService.from_settings(settings)
    token = tokens.issue(CUSTOMER, sorted(APP_SCOPES), ttl_seconds=300)
    return env, token, tokens.issue("bench", ["platform:read"], kind="staff", ttl_seconds=300)


def main() -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgres", default=os.environ.get("FULCRUM_BENCH_POSTGRES_URL"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is required (apt-get install wrk)")

    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="fulcrum-bench-") as tmp:
        state = Path(tmp) / "sqlite"
        state.mkdir()
        env, token, staff = _prepare(state, None)
        real, port = _serve("real_app", env)
        try:
            page = httpx.get(f"http://127.0.0.1:{port}/v1/home", headers={"Authorization": f"Bearer {token}"})
            page.raise_for_status()
            body = page.content
            items = sum(len(v) for v in page.json()["slots"].values())
            print(f"home page: {len(body)} bytes, {items} items, degraded={page.json()['degraded']}")
            result = _wrk("real app, SQLite, 1 worker", port, token, args.seconds, args.connections)
            results.append(msgspec.structs.replace(result, full_pages=_first_party_ok(port, staff)))
        finally:
            _stop(real)
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        bare, port = _serve("bare_app", {"FULCRUM_BENCH_BODY": str(body_file)})
        try:
            label = "bare litestar, same bytes, 1 worker"
            results.append(_wrk(label, port, token, args.seconds, args.connections))
        finally:
            _stop(bare)
        if args.postgres:
            pg_state = Path(tmp) / "pg"
            pg_state.mkdir()
            pg_env, pg_token, pg_staff = _prepare(pg_state, args.postgres)
            for workers in (1, 2):
                server, port = _serve("real_app", pg_env, workers)
                try:
                    label = f"real app, PostgreSQL, {workers} worker{'s' if workers > 1 else ''}"
                    result = _wrk(label, port, pg_token, args.seconds, args.connections)
                    # With 2 workers this is one worker's view (whichever answers the scrape).
                    ok = _first_party_ok(port, pg_staff)
                    results.append(msgspec.structs.replace(result, full_pages=ok))
                finally:
                    _stop(server)

    bare_rps = next(r.rps for r in results if r.label.startswith("bare"))
    python = sys.version.split()[0]
    print(f"\nwrk -t1 -c{args.connections} -d{args.seconds}s, python {python}, {os.cpu_count()} CPUs")
    widths = {"req/s": 9, "p50 ms": 8, "p99 ms": 8, "vs bare": 8, "non-2xx": 8, "1st-party ok": 12}
    print(f"{'server':40s} " + " ".join(f"{c:>{w}s}" for c, w in widths.items()))
    for r in results:
        ratio = r.rps / bare_rps
        full = "" if r.full_pages is None else f"{r.full_pages:12.0%}"
        print(f"{r.label:40s} {r.rps:9.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {ratio:8.2f} {r.errors:8d} {full}")


if __name__ == "__main__":
    main()
