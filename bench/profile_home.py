"""Where a served home page's time goes: py-spy samples of ``home.py``'s servers under ``wrk``.

Starts the real app (and, with ``--bare``, the bare endpoint) exactly as ``home.py`` does, drives
``GET /v1/home`` with ``wrk`` for ``--seconds``, and meanwhile samples the server process with
``py-spy record --format raw`` (idle excluded). Each sample is charged to its innermost Python frame
(self time); the table groups them by the part of the stack that frame belongs to, and lists the
dearest functions. Run from the repository root::

    uv run python bench/profile_home.py --synthetic campaign --bare
    uv run python bench/profile_home.py --http h11 --loop asyncio --raw home.raw

py-spy comes from ``PATH``, else through ``uvx py-spy`` (needs ptrace: run as root or with
``kernel.yama.ptrace_scope = 0``). Time spent in C code (httptools, uvloop, msgspec, the socket calls)
is charged to the Python function that called it. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import home  # bench/home.py: the apps and how they are started and driven
import httpx

# (group, pattern on the innermost frame's file), first match wins; the order puts the narrower first.
GROUPS: tuple[tuple[str, str], ...] = (
    ("HTTP protocol: uvicorn's, h11", r"uvicorn/protocols/|(^|/)h11/"),
    ("uvicorn: the rest", r"uvicorn/"),
    ("event loop, sockets, C parser (uvloop, httptools, asyncio)", r"(asyncio|uvloop|selectors|socket)"),
    ("litestar: routing, middleware, response", r"litestar/"),
    (
        "dispatcher: admission, first steps, breaker, recording",
        r"fulcrum_core/dispatch/(dispatcher|eager|breaker|bulkhead|clock|stats|results|resilience|shared)",
    ),
    ("plugin contexts", r"fulcrum_core/dispatch/context|fulcrum_sdk/context"),
    ("assembly and campaigns", r"fulcrum_core/(assembly|campaigns)"),
    ("the home handler and its dependencies", r"fulcrum_core/api/"),
    ("auth and request id", r"fulcrum_core/(auth|observability/logging)"),
    ("metrics", r"fulcrum_core/observability/|prometheus_client"),
    (
        "storage and consent caches",
        r"fulcrum_core/(plugins|registry_host|oauth)|fulcrum_core/data/|sqlalchemy|sqlite",
    ),
    ("the three first-party plugins' own code", r"fulcrum_(wealth_checkup|pension|merchant_promo)/"),
    ("result checks and the SDK", r"fulcrum_sdk/"),
    ("the rest of the platform", r"fulcrum_core/"),
    ("the synthetic plugins and the benchmark's apps", r"(^|/)(bench/)?home\.py$"),
    ("msgspec, anyio, stdlib and the rest", r""),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _py_spy() -> list[str]:
    if found := shutil.which("py-spy"):
        return [found]
    if uvx := shutil.which("uvx"):
        return [uvx, "py-spy"]
    sys.exit("py-spy is required: install it, or install uv so that `uvx py-spy` can run it")


def _innermost(raw: str) -> Counter[tuple[str, str]]:
    """Samples per innermost frame, as (file, function), from py-spy's raw (collapsed stacks) output."""
    seen: Counter[tuple[str, str]] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frame = _FRAME.match(stack.rsplit(";", 1)[-1])
        if frame:
            seen[frame["file"], frame["function"]] += int(count)
    return seen


def _group(file: str) -> str:
    path = file.replace(os.sep, "/")
    return next(name for name, pattern in GROUPS if re.search(pattern, path))


def _report(title: str, samples: Counter[tuple[str, str]], cpu_us: float, args: argparse.Namespace) -> None:
    """Shares by group and the dearest functions, and each share of the server's CPU time a request
    (read from ``/proc`` over the same wrk run: py-spy drops the samples it cannot read whole)."""
    total = sum(samples.values())
    print(f"\n{title}: {total} samples, idle excluded; {cpu_us:.0f} µs of server CPU a request")
    if not total:
        return
    groups: Counter[str] = Counter()
    for (file, _), n in samples.items():
        groups[_group(file)] += n
    per_request = cpu_us / total
    print(f"  {'share':>7s} {'µs/req':>7s}")
    for name, n in groups.most_common():
        print(f"  {100 * n / total:5.1f} % {n * per_request:7.1f}  {name}")
    top = args.top
    print(f"  the {top} dearest functions (self time):")
    for (file, function), n in samples.most_common(top):
        where = "/".join(Path(file).parts[-2:])
        print(f"  {100 * n / total:5.1f} % {n * per_request:7.1f}  {function}  ({where})")


def _profile(
    label: str, servers: list[subprocess.Popen[bytes]], port: int, tokens: list[str], args: argparse.Namespace
) -> tuple[Counter[tuple[str, str]], float]:
    """Sample the server while wrk drives it: one py-spy run over the measured part of one wrk run;
    the samples per innermost frame and the server's CPU µs per request over that wrk run."""
    pid = home._processes([p.pid for p in servers])[-1]  # the worker, under fulcrum serve's runner
    with tempfile.NamedTemporaryFile(suffix=".raw", delete=False) as out:
        raw_path = out.name
    record = [
        *_py_spy(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(args.rate),
        "--duration",
        str(args.seconds),
        "--format",
        "raw",
        "--gil",
        *(["--nonblocking"] if args.nonblocking else []),
        "--output",
        raw_path,
    ]
    runs: list[home.Result] = []
    load = threading.Thread(
        target=lambda: runs.append(
            home._wrk(label, port, tokens, args.seconds + 2, args.connections, servers=servers)
        )
    )
    load.start()
    try:
        threading.Event().wait(2.5)  # wrk's warm-up, then sample inside its measured run
        subprocess.run(record, check=True, capture_output=True)  # noqa: S603 - our own argv
    finally:
        load.join()
    raw = Path(raw_path).read_text()
    if args.raw:
        Path(f"{args.raw}.{label}" if args.bare else args.raw).write_text(raw)
    os.unlink(raw_path)
    return _innermost(raw), runs[0].cpu_us or 0.0


def main() -> None:
    """Profile the real app (and the bare endpoint) under load and print where the time goes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="how long py-spy samples")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--customers", type=int, default=15)
    parser.add_argument("--top", type=int, default=15, help="how many functions to list")
    parser.add_argument(
        "--nonblocking", action="store_true", help="sample without pausing the server (drops many samples)"
    )
    parser.add_argument("--bare", action="store_true", help="also profile the bare endpoint")
    parser.add_argument("--raw", help="also keep py-spy's raw output here (for a flame graph)")
    parser.add_argument("--synthetic", choices=sorted(home.SYNTHETIC_HOOKS), default="offers")
    parser.add_argument("--http", choices=["auto", "httptools", "h11"], default="auto")
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto")
    args = parser.parse_args()
    from fulcrum_core.cli.serve import server_stack

    home.STACK = server_stack(args.http, args.loop)
    os.environ[home.SYNTHETIC_ENV] = args.synthetic
    if shutil.which("wrk") is None:
        sys.exit("wrk is required (apt-get install wrk)")
    customers = home._demo_customers(args.customers)
    stack = f"HTTP {home.STACK[0]} on {home.STACK[1]}, synthetic plugins: {args.synthetic}"
    with tempfile.TemporaryDirectory(prefix="fulcrum-profile-") as tmp:
        env = home._prepare(Path(tmp), None, caches=True)
        tokens, _ = home._tokens(env, customers)
        real, port = home._serve("real_app", env)
        try:
            body = Path(tmp) / "body.json"
            page = httpx.get(
                f"http://127.0.0.1:{port}/v1/home", headers={"Authorization": f"Bearer {tokens[0]}"}
            )
            page.raise_for_status()
            body.write_bytes(page.content)
            _report(f"real app ({stack})", *_profile("real", real, port, tokens, args), args)
        finally:
            home._stop(real)
        if args.bare:
            bare, bare_port = home._serve("bare_app", {"FULCRUM_BENCH_BODY": str(body)})
            try:
                _report(f"bare endpoint ({stack})", *_profile("bare", bare, bare_port, tokens, args), args)
            finally:
                home._stop(bare)


if __name__ == "__main__":
    main()
