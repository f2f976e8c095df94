"""Benchmark: ``GET /v1/home`` of the real app against a bare litestar endpoint serving the same bytes.

One run starts, each in its own uvicorn process on 127.0.0.1 and a free port:

1. the real app (``create_app``) with the three first-party plugins (approved through the demo
   registry seed) plus 27 synthetic plugins, on SQLite, one worker;
2. a bare litestar app whose one route returns the real app's home response, precomputed, one worker;
3. with ``--postgres URL``: the real app on PostgreSQL with one and with two workers;
4. with ``--plain``: the floor, the same plugins called in a plain loop with no platform around
   them (``plain_app``), to show how much of the gap is the plugins' own work and the assembly.

Each is driven by ``wrk`` (``--connections`` connections, ``--seconds`` seconds, after a short
warm-up) and the script prints requests per second, p50 and p99 latency, and the ratio to the bare
endpoint. Run from the repository root::

    uv run python bench/home.py [--seconds 10] [--connections 32] [--postgres postgresql+psycopg://...]

Nothing here is asserted; the figures go to ``bench/README.md``. Synthetic plugins are half
``async def`` (finishing without waiting, so the dispatcher runs them eagerly) and half plain
functions declared ``@nonblocking``, each offering one item, as cheap plugins do. With
``--synthetic campaign`` they implement ``home_slot_campaigns`` instead of ``home_slot_offers`` (the
same item, for everyone): the host then calls them about once a minute and filters per page.
"""

from __future__ import annotations

import argparse
import contextlib
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
SYNTHETIC_HOOKS = {"offers": "home_slot_offers", "campaign": "home_slot_campaigns"}
SYNTHETIC_ENV = "FULCRUM_BENCH_SYNTHETIC"

STACK = ("auto", "auto")
"""The HTTP parser and event loop every server runs on (``--http``, ``--loop``): all of them alike."""
"""Which hook the synthetic plugins implement (``offers`` or ``campaign``); read by the server processes."""
SLOTS = ("home.banner/v1", "home.kingkong/v1", "home.notice/v1")
HERE = Path(__file__).resolve().parent


# --- the apps (imported by uvicorn in the worker processes) --------------------------------------------


def _synthetic_hook() -> str:
    return SYNTHETIC_HOOKS[os.environ.get(SYNTHETIC_ENV, "offers")]


def _synthetic(index: int) -> object:
    """One synthetic plugin: a manifest and a cheap ``home_slot_offers`` (or ``home_slot_campaigns``)."""
    from fulcrum_sdk import hookimpl, nonblocking
    from fulcrum_sdk.manifest import Manifest
    from fulcrum_sdk.models import Action, LocalizedText, SlotOffer

    plugin_id = f"synthetic-{index:02d}"
    slot = SLOTS[index % len(SLOTS)]
    placement = "slot:" + slot.split("/")[0]
    manifest = msgspec.convert(
        {
            "id": plugin_id,
            "name": {"zh-CN": f"合成插件 {index}"},
            "description": {"zh-CN": "基准测试用"},
            "publisher": "bench",
            "kind": "department",
            "sdk": ">=0.1,<1",
            "hooks": [_synthetic_hook()],
            "slots": [slot],
            "scopes": {"required": {placement: "bench", "profile:basic": "bench"}},
            "owner": {"name": "Bench", "email": "bench@example.com"},
            "version": "1.0.0",
        },
        Manifest,
    )
    offer = SlotOffer(
        slot=slot,
        key=f"{plugin_id}-item",
        title=LocalizedText(zh_CN=f"合成内容 {index}", en=f"Synthetic {index}"),
        action=Action(uri=f"fulcrum://open/{plugin_id}"),
        priority=index,
    )

    class Plugin:
        MANIFEST = manifest

    async def waits_never(ctx: Any) -> list[SlotOffer]:
        return [offer] if ctx.plugin_id else []

    @nonblocking
    def plain(ctx: Any) -> list[SlotOffer]:
        return [offer] if ctx.plugin_id else []

    hook: Any = waits_never if index % 2 else plain
    name = _synthetic_hook()
    hook.__name__ = name
    setattr(Plugin, name, staticmethod(hookimpl(hook)))
    return Plugin()


def real_app() -> Any:
    """The real app from ``FULCRUM_*`` settings with the installed plugins plus the synthetic ones."""
    from fulcrum_core.app import build_runtime, create_app
    from fulcrum_core.asgi import freeze_startup_heap
    from fulcrum_core.settings import load_settings

    settings = load_settings()
    runtime = build_runtime(settings, extra_plugins=[_synthetic(i) for i in range(SYNTHETIC)])
    app = create_app(settings, runtime=runtime)
    freeze_startup_heap()  # as fulcrum serve's app factory does
    return app


def plain_app() -> Any:
    """The floor: the same plugins' ``home_slot_offers`` called one after another in a plain loop (what
    a pluggy multicall does, plus awaiting the ``async def`` ones), for customer ``CUSTOMER``, with one
    context per plugin built at startup, then assembled and encoded as the real app does. No
    authentication, request id, branch selection, consent, breaker, bulkhead, deadline, result check or
    metrics: what serving the page costs with no platform around the plugins at all. Campaign plugins
    (``--synthetic campaign``) are called once at startup and their offers joined on every page."""
    import inspect
    from datetime import UTC, datetime

    from fulcrum_core.api.home import HomeResponse
    from fulcrum_core.app import build_runtime
    from fulcrum_core.asgi import freeze_startup_heap
    from fulcrum_core.assembly.home import assemble_home
    from fulcrum_core.settings import load_settings
    from fulcrum_sdk.context import AudienceContext

    settings = load_settings()
    runtime = build_runtime(settings, extra_plugins=[_synthetic(i) for i in range(SYNTHETIC)])
    plugins = runtime.plugins.enabled_for("home_slot_offers")
    contexts = runtime.contexts.for_request(CUSTOMER, request_id="plain", now=datetime.now(UTC))
    calls = [(p.id, p.impls["home_slot_offers"].function, contexts.for_plugin(p)) for p in plugins]
    # Campaigns (``--synthetic campaign``): called once here, merged into every page as the app does.
    campaigns = {}
    for p in runtime.plugins.enabled_for("home_slot_campaigns"):
        audience = AudienceContext(plugin_id=p.id, scopes=p.granted, now=contexts.now, settings=p.settings)
        value = p.impls["home_slot_campaigns"].function(audience)
        campaigns[p.id] = tuple(_finished(value) if inspect.iscoroutine(value) else value)
    granted = {p.id: p.granted for p in (*plugins, *runtime.plugins.enabled_for("home_slot_campaigns"))}
    encode = msgspec.json.Encoder().encode

    @get("/v1/home")
    async def home() -> Response[bytes]:
        offers = {}
        for pid, function, ctx in calls:
            value = function(ctx)
            offers[pid] = (await value) if inspect.iscoroutine(value) else value
        slots = assemble_home(
            offers, inventory=settings.slots, granted=granted, customer=contexts.customer, now=contexts.now,
            campaigns=campaigns,
        )
        return Response(encode(HomeResponse(slots=slots, degraded=[], request_id="plain")),
                        media_type="application/json")

    @get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app = Litestar([home, healthz], openapi_config=None)
    freeze_startup_heap()
    return app


def _finished(coro: Any) -> Any:
    """The value of a coroutine that returns without waiting (a synthetic hook), run outside any loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a synthetic hook waited")


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
    """One wrk run; ``first_party_ok`` is the share of first-party plugin calls that contributed."""

    label: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    first_party_ok: float | None = None
    # The servers' CPU time (user + system, every process) per request during the run, in µs.
    cpu_us: float | None = None


_CALLS = re.compile(
    r'^fulcrum_plugin_calls_total\{hook="home_slot_offers",outcome="(\w+)",plugin="([\w-]+)"\} (\S+)$'
)


def _calls(port: int, staff: str) -> tuple[float, float]:
    """The three first-party plugins' ``home_slot_offers`` calls so far: (ok, all), from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {staff}"}).text
    ok = total = 0.0
    for line in text.splitlines():
        match = _CALLS.match(line)
        if match and not match.group(2).startswith("synthetic-"):
            total += float(match.group(3))
            ok += float(match.group(3)) if match.group(1) == "ok" else 0.0
    return ok, total


REPORT = "/v1/pages/wealth-checkup/report"


def _read_reports(port: int, tokens: list[str]) -> None:
    """Each customer opens the wealth check-up's report once, as before anything in-process is measured
    (see ``inprocess.READ_REPORTS``): the owed notices are seen, and the pages offer no popup."""
    for token in tokens:
        httpx.get(f"http://127.0.0.1:{port}{REPORT}", headers={"Authorization": f"Bearer {token}"})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(
    factory: str, env: dict[str, str], workers: int = 1, processes: int = 1
) -> tuple[list[subprocess.Popen[bytes]], int]:
    """Start ``factory`` on a free port through fulcrum serve's own runner: ``workers`` under uvicorn's
    supervisor (one shared socket), or ``processes`` single-worker servers with ``SO_REUSEPORT``."""
    port = _free_port()
    reuse = processes > 1
    code = (
        "from fulcrum_core.cli.serve import run_server; "
        f"run_server('home:{factory}', host='127.0.0.1', port={port}, workers={workers}, "
        f"reuse_port={reuse}, app_dir={str(HERE)!r}, log_level='warning', http={STACK[0]!r}, "
        f"loop={STACK[1]!r})"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env})  # noqa: S603 - our argv
        for _ in range(processes)
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and all(p.poll() is None for p in procs):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                time.sleep(max(workers, processes) * 1.5)  # every server up, the registry's first poll done
                return procs, port
        except httpx.HTTPError:
            time.sleep(0.2)
    _stop(procs)
    raise RuntimeError(f"{factory} did not start on port {port}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


_LUA = """
local tokens = {%s}
local i = 0
request = function()
  i = i %% #tokens + 1
  return wrk.format("GET", nil, {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


def _processes(pids: list[int]) -> list[int]:
    """``pids`` and all their descendants (uvicorn's workers under its supervisor), from ``/proc``."""
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            todo.extend(int(child) for child in task.read_text().split())
    return found


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far (Linux ``/proc/<pid>/stat``, fields 14 and 15)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _wrk(
    label: str,
    port: int,
    tokens: list[str],
    seconds: int,
    connections: int,
    warm: int = 2,
    servers: list[subprocess.Popen[bytes]] | None = None,
) -> Result:
    """Drive ``/v1/home`` on ``port``, the requests taking turns over ``tokens`` (one customer each);
    with ``servers``, also their CPU time per request."""
    url = f"http://127.0.0.1:{port}/v1/home"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_LUA % ", ".join(f'"{t}"' for t in tokens))
    try:
        base = ["wrk", "-t1", f"-c{connections}", "--latency", "-s", script.name]
        if warm:
            subprocess.run([*base, f"-d{warm}s", url], check=True, capture_output=True)  # noqa: S603
        pids = _processes([p.pid for p in servers]) if servers else []
        cpu_before = _cpu_seconds(pids)
        out = subprocess.run(  # noqa: S603 - our own argv, no shell
            [*base, f"-d{seconds}s", url], check=True, capture_output=True, text=True
        ).stdout
        cpu = _cpu_seconds(pids) - cpu_before
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    done = int(re.search(r"^\s*(\d+) requests in", out, re.M).group(1))  # type: ignore[union-attr]
    cpu_us = cpu / done * 1e6 if pids and done else None
    return Result(label, rps, p50, p99, int(bad.group(1)) if bad else 0, cpu_us=cpu_us)


def _prepare(state_dir: Path, database_url: str | None, *, caches: bool) -> dict[str, str]:
    """Migrate and seed; the environment for the servers."""
    from fulcrum_core.demo import prepare_demo
    from fulcrum_core.settings import load_settings

    env = {
        "FULCRUM_STATE_DIR": str(state_dir),
        "FULCRUM_DEV_MODE": "true",
        "FULCRUM_LOG_LEVEL": "WARNING",
        "FULCRUM_CONFIG": str(state_dir / "bench.toml"),
        # No branch layer: every installed plugin (the 27 synthetic ones too) is on for the customer.
        "FULCRUM_BRANCHES_DIR": str(state_dir / "no-branches"),
    }
    # The load generator is one client: lift the per-client limit so it measures the page, not the 429.
    config = "[rate_limit]\nenabled = false\n"
    if not caches:
        config = "storage_cache_ms = 0\nconsent_cache_ms = 0\n" + config
    (state_dir / "bench.toml").write_text(config)
    if database_url:
        env["FULCRUM_DATABASE_URL"] = database_url
    prepare_demo(load_settings(environ=env))
    return env


def _tokens(env: dict[str, str], customers: list[str]) -> tuple[list[str], str]:
    """Fresh customer tokens (they live 5 minutes) and a staff token for /metrics."""
    from fulcrum_core.auth.tokens import TokenService
    from fulcrum_core.settings import load_settings
    from fulcrum_sdk.scopes import APP_SCOPES

    service = TokenService.from_settings(load_settings(environ=env))
    tokens = [service.issue(c, sorted(APP_SCOPES), ttl_seconds=300) for c in customers]
    return tokens, service.issue("bench", ["platform:read"], kind="staff", ttl_seconds=300)


def _demo_customers(count: int) -> list[str]:
    from fulcrum_core.data.provider import DemoDataProvider

    everyone = [c.id for c in DemoDataProvider.from_seed().customers()]
    return [CUSTOMER, *[c for c in everyone if c != CUSTOMER]][:count]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _print(title: str, rows: list[tuple[str, list[Result], list[float] | None]]) -> None:
    """The table: one row per server, medians over the rounds; ``None`` ratios: the bare endpoint."""
    print(f"\n{title}")
    print(
        f"{'server':50s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'vs bare':>8s} {'range':>10s} "
        f"{'non-2xx':>8s} {'1st-party ok':>12s} {'cpu µs/req':>10s}"
    )
    for label, runs, ratios in rows:
        ratio = _median(ratios) if ratios else (None if ratios is not None else 1.0)
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios and len(ratios) > 1 else ""
        rps = _median([r.rps for r in runs])
        p50 = _median([r.p50_ms for r in runs])
        p99 = _median([r.p99_ms for r in runs])
        errors = sum(r.errors for r in runs)
        oks = [r.first_party_ok for r in runs if r.first_party_ok is not None]
        share = f"{_median(oks):12.0%}" if oks else ""
        shown = f"{ratio:8.2f}" if ratio is not None else ""
        cpus = [r.cpu_us for r in runs if r.cpu_us is not None]
        cpu = f"{_median(cpus):10.0f}" if cpus else ""
        print(
            f"{label:50s} {rps:8.0f} {p50:7.2f} {p99:7.2f} {shown:>8s} {spread:>10s} {errors:8d} "
            f"{share:>12s} {cpu:>10s}"
        )


def main() -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--unread", action="store_true",
        help="customers do not open the wealth check-up's report first: its owed notices stay offered",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating real/bare runs; medians reported")
    parser.add_argument(
        "--customers", type=int, default=15, help="demo customers the requests take turns over"
    )
    parser.add_argument("--cold", action="store_true", help="also run the real app with its read caches off")
    parser.add_argument("--postgres", default=os.environ.get("FULCRUM_BENCH_POSTGRES_URL"))
    parser.add_argument(
        "--plain", action="store_true",
        help="also run the floor: the same plugins in a plain loop with no platform around them",
    )
    parser.add_argument(
        "--synthetic", choices=sorted(SYNTHETIC_HOOKS), default="offers",
        help="the hook the 27 synthetic plugins implement: per customer (offers) or per audience (campaign)",
    )
    parser.add_argument(
        "--http", choices=["auto", "httptools", "h11"], default="auto",
        help="every server's HTTP parser (auto: httptools when installed, as fulcrum serve)",
    )
    parser.add_argument(
        "--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
        help="every server's event loop (auto: uvloop when installed, as fulcrum serve)",
    )
    args = parser.parse_args()
    global STACK  # one setting for the whole run, read where the servers start
    from fulcrum_core.cli.serve import server_stack

    STACK = server_stack(args.http, args.loop)
    os.environ[SYNTHETIC_ENV] = args.synthetic  # the servers started below inherit it
    if shutil.which("wrk") is None:
        sys.exit("wrk is required (apt-get install wrk)")
    customers = _demo_customers(args.customers)

    with tempfile.TemporaryDirectory(prefix="fulcrum-bench-") as tmp:
        # (label, database URL, uvicorn workers, separate SO_REUSEPORT processes, caches on)
        variants = [("real app, SQLite, 1 worker", None, 1, 1, True)]
        if args.cold:
            variants.append(("real app, SQLite, 1 worker, caches off", None, 1, 1, False))
        if args.postgres:
            variants += [
                ("real app, PostgreSQL, 1 worker", args.postgres, 1, 1, True),
                ("real app, PostgreSQL, 2 workers (shared socket)", args.postgres, 2, 1, True),
                ("real app, PostgreSQL, 2 processes (SO_REUSEPORT)", args.postgres, 1, 2, True),
            ]
        results: dict[str, list[Result]] = {label: [] for label, *_ in variants}
        bare_runs: list[Result] = []
        plain_runs: list[Result] = []
        plain_ratios: list[float] = []
        plain: list[subprocess.Popen[bytes]] = []
        bare: list[subprocess.Popen[bytes]] = []
        ratios: dict[str, list[float]] = {label: [] for label, *_ in variants}
        body_file = Path(tmp) / "body.json"
        try:
            for n, (label, url, workers, processes, caches) in enumerate(variants):
                state = Path(tmp) / f"state-{n}"
                state.mkdir()
                env = _prepare(state, url, caches=caches)
                real, port = _serve("real_app", env, workers, processes)
                try:
                    tokens, staff = _tokens(env, customers)
                    page = httpx.get(
                        f"http://127.0.0.1:{port}/v1/home", headers={"Authorization": f"Bearer {tokens[0]}"}
                    )
                    page.raise_for_status()
                    if n == 0:
                        body_file.write_bytes(page.content)
                        items = sum(len(v) for v in page.json()["slots"].values())
                        print(
                            f"home page of {CUSTOMER}: {len(page.content)} bytes, {items} items, "
                            f"degraded={page.json()['degraded']}; "
                            f"requests take turns over {len(customers)} customers"
                        )
                        bare, bare_port = _serve("bare_app", {"FULCRUM_BENCH_BODY": str(body_file)})
                        if args.plain:
                            plain, plain_port = _serve("plain_app", env)
                    if not args.unread:
                        _read_reports(port, tokens)
                    for _ in range(args.rounds):
                        tokens, staff = _tokens(env, customers)
                        ok0, all0 = _calls(port, staff)
                        run = _wrk(label, port, tokens, args.seconds, args.connections, servers=real)
                        ok1, all1 = _calls(port, staff)  # with 2 workers: whichever worker answers the scrape
                        run.first_party_ok = (ok1 - ok0) / (all1 - all0) if all1 > all0 else None
                        results[label].append(run)
                        bare_run = _wrk(
                            "bare", bare_port, tokens, args.seconds, args.connections, servers=bare
                        )
                        bare_runs.append(bare_run)
                        ratios[label].append(run.rps / bare_run.rps)
                        if plain and n == 0:
                            plain_run = _wrk(
                                "plain", plain_port, tokens, args.seconds, args.connections, servers=plain
                            )
                            plain_runs.append(plain_run)
                            plain_ratios.append(plain_run.rps / bare_run.rps)
                finally:
                    _stop(real)
        finally:  # a variant that fails (its database, its server) leaves no server running
            _stop(bare)
            _stop(plain)

    python = sys.version.split()[0]
    rows: list[tuple[str, list[Result], list[float] | None]] = [
        (label, runs, ratios[label]) for label, runs in results.items()
    ]
    if plain_runs:
        rows.append(("plain loop, same plugins, no platform, 1 worker", plain_runs, plain_ratios))
    rows.append(("bare litestar, same bytes, 1 worker", bare_runs, None))
    _print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s x {args.rounds} rounds, each real run followed by a "
        f"bare run; medians; 'vs bare' is the median of the per-round ratios, 'range' their lowest and "
        f"highest (python {python}, {os.cpu_count()} CPUs, HTTP {STACK[0]} on {STACK[1]})",
        rows,
    )


if __name__ == "__main__":
    main()
