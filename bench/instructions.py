"""Instructions per ``GET /v1/home`` inside one process, counted by callgrind: noise does not move them.

On a shared VM the same code measures 290 or 490 µs a page from one minute to the next, so a change
of a few per cent cannot be seen in timings. Valgrind's callgrind counts the instructions the CPU
executes instead: this runs :mod:`inprocess`'s requests under it, collecting only while the measured
requests run (warm-up, startup and shutdown are not counted), each thread apart. The event loop's
thread is the page; the others are background work (the registry watcher, read-cache refreshes in
worker threads). Instructions are not time (a cache miss costs many), so read them next to
``inprocess.py`` and ``home.py``, as a tie-breaker between two trees measured alike.

    apt-get install valgrind
    uv run python bench/instructions.py --requests 1000 --variant full --synthetic campaign --customers 15

``--cold`` counts the page with the per-worker read caches off, as ``inprocess.py --cold`` times it;
``--postgres URL`` runs the app on that PostgreSQL database, whose reads run in worker threads.
The run takes about two minutes per thousand pages (valgrind runs the interpreter ≈ 50× slower).

``--functions N`` also prints the N Python functions that cost the most instructions per page,
callees included, with how often each runs per page. It needs Python 3.12 or newer, whose perf
support (``PYTHONPERFSUPPORT=1``) enters every Python function through a small trampoline of its
own and writes their addresses to ``/tmp/perf-<pid>.map``; callgrind counts each trampoline as a
function, and the map names it. The trampolines cost instructions of their own and stop the
interpreter inlining Python-to-Python calls, so pages count about a third more than without them
and small functions look dearer than they are: compare shares within one such run, not with
ordinary counts. A Python 3.12 environment beside the project's own::

    UV_PROJECT_ENVIRONMENT=../fulcrum-py312 uv sync --all-packages --python 3.12
    UV_PROJECT_ENVIRONMENT=../fulcrum-py312 uv run --python 3.12 python bench/instructions.py --functions 40
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import home
import inprocess

CHILD = "FULCRUM_BENCH_CALLGRIND_CHILD"


def _collect(on: bool) -> None:
    """Switch callgrind's collection on or off for this process."""
    subprocess.run(  # noqa: S603 - our own argv
        ["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],  # noqa: S607
        check=True, capture_output=True,
    )


# Under valgrind the app runs ≈ 50 times slower, so read caches of 1 s would refresh ≈ 50 times as
# often per page as at full speed; stretched alike, a page sees about as many refreshes as it would.
STRETCHED = "storage_cache_ms = 60000\nconsent_cache_ms = 60000\ncampaign_ttl_ms = 3600000\n"
COLD = "campaign_ttl_ms = 3600000\n"
"""``--cold``: the read caches off (``inprocess._app`` turns them off), the campaign cache still stretched."""


async def _ready(app: Any, variant: str, token: bytes) -> None:
    """Wait until the registry watcher's first poll has applied the approved first-party releases."""
    wanted = set(inprocess.FIRST_PARTY) if variant in ("full", "first-party") else set()
    for attempt in itertools.count():
        status, page = await inprocess._call(app, "/v1/home", token) if app else (200, b"")
        if status != 200:
            raise SystemExit(f"{variant}: /v1/home answered {status}: {page[:300]!r}")
        plugins = app.state["runtime"].plugins if app else None
        running = {p.id for p in plugins.enabled_for("home_slot_offers")} if plugins else set()
        if wanted <= running:
            return
        if attempt > 600:
            raise SystemExit(f"{variant}: {sorted(wanted - running)} never ran")
        await asyncio.sleep(0.2)


async def _pages(variant: str, requests: int, state: Path, tokens: list[bytes], cold: bool) -> None:
    inprocess.EXTRA_SETTINGS = COLD if cold else STRETCHED
    if variant == "bare":  # the bare endpoint serves the real app's page of the first customer
        app = inprocess._app("full", state, state / "body.json", False)
        stop_full, _ = await inprocess._lifespan(app)
        await _ready(app, "full", tokens[0])
        _, page = await inprocess._call(app, "/v1/home", tokens[0])
        (state / "body.json").write_bytes(page)
        await stop_full()
    app = inprocess._app(variant, state, state / "body.json", cold)
    stop: Callable[[], Awaitable[None]] | None = None
    if variant not in ("bare", "plain"):
        stop, _ = await inprocess._lifespan(app)
    await _ready(app if stop is not None else None, variant, tokens[0])
    if stop is not None:
        await inprocess.read_reports(app, tokens)
    turns = itertools.cycle(tokens)
    for _ in range(300):
        await inprocess._call(app, "/v1/home", next(turns))
    _collect(True)
    for _ in range(requests):
        await inprocess._call(app, "/v1/home", next(turns))
    _collect(False)
    if stop is not None:
        await stop()


def _child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fulcrum-instructions-", ignore_cleanup_errors=True) as tmp:
        state = Path(tmp)
        env = home._prepare(state, args.postgres, caches=True)
        os.environ.update(env)
        os.environ[home.SYNTHETIC_ENV] = args.synthetic
        tokens, _ = home._tokens(env, home._demo_customers(args.customers))
        inprocess.run(
            _pages(args.variant, args.requests, state, [t.encode() for t in tokens], args.cold), args.loop
        )


def _totals(out: Path) -> dict[str, int]:
    """Thread number → instructions counted, from callgrind's per-thread output files."""
    found: dict[str, int] = {}
    for path in sorted(out.glob("cg.*")):
        match = re.search(r"^totals:\s+(\d+)", path.read_text(errors="replace"), re.M)
        if match:
            found[path.name.rsplit("-", 1)[-1]] = int(match.group(1))
    return found


_NAME = re.compile(r"\((\d+)\)(?: (.*))?")


def _python_functions(counts: Path, perf_map: Path, pages: int, top: int) -> list[tuple[int, float, str]]:
    """The ``top`` Python functions of one callgrind file by inclusive instructions per page, with calls
    per page: each trampoline's calls (callgrind's ``calls=`` lines, followed by their inclusive
    cost) named from the perf map."""
    starts: list[int] = []
    spans: list[tuple[int, str]] = []
    for line in sorted(perf_map.read_text().splitlines(), key=lambda entry: int(entry.split(" ", 1)[0], 16)):
        address, size, name = line.split(" ", 2)
        starts.append(int(address, 16))
        spans.append((int(address, 16) + int(size, 16), name.removeprefix("py::")))

    def python_name(function: str) -> str | None:
        if not function.startswith("0x"):
            return None
        address = int(function.split("'", 1)[0], 16)
        i = bisect.bisect_right(starts, address) - 1
        return spans[i][1] if i >= 0 and address < spans[i][0] else None

    names: dict[str, str] = {}

    def resolve(spec: str) -> str:  # callgrind's name compression: "(id) name" once, "(id)" after
        match = _NAME.match(spec)
        if match is None:
            return spec
        if match.group(2) is not None:
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), spec)

    inclusive: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    callee, pending, made = "", False, 0
    for line in counts.read_text(errors="replace").splitlines():
        if line.startswith(("fn=", "cfn=")):
            named = resolve(line.split("=", 1)[1].strip())
            if line.startswith("cfn="):
                callee = named
        elif line.startswith("calls="):
            pending, made = True, int(line[6:].split()[0])
        elif pending and line[:1] in "0123456789+-*":
            fields = line.split()
            inclusive[callee] += int(fields[1])
            calls[callee] += made
            pending = False
    rows: dict[str, list[int]] = {}
    for function, cost in inclusive.items():
        python = python_name(function)
        if python is not None:
            row = rows.setdefault(python, [0, 0])
            row[0] += cost
            row[1] += calls[function]
    ranked = sorted(rows.items(), key=lambda item: -item[1][0])[:top]
    return [(cost // pages, made / pages, _short(python)) for python, (cost, made) in ranked]


def _short(name: str) -> str:
    """``function:file`` with the file relative to the repository, site-packages or the stdlib."""
    function, _, path = name.partition(":")
    for root in (str(Path(__file__).resolve().parents[1]) + "/", "site-packages/", "/python3."):
        if root in path:
            path = path.split(root, 1)[1]
            path = path.split("/", 1)[1] if root == "/python3." else path
            break
    return f"{function} ({path})"


def main() -> None:
    """Re-run this script under callgrind, then print instructions per page by thread."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "--variant", choices=["full", "first-party", "synthetic", "none", "plain", "bare"],
        default="full",
    )
    parser.add_argument("--synthetic", choices=sorted(home.SYNTHETIC_HOOKS), default="campaign")
    parser.add_argument("--customers", type=int, default=15)
    parser.add_argument(
        "--loop", choices=inprocess.LOOPS, default="uvloop",
        help="the event loop (uvloop: as fulcrum serve runs)",
    )
    parser.add_argument(
        "--cold", action="store_true",
        help="the read caches off (storage_cache_ms = consent_cache_ms = 0), as inprocess.py --cold",
    )
    parser.add_argument(
        "--postgres", metavar="URL", default=os.environ.get("FULCRUM_BENCH_POSTGRES_URL"),
        help="the real app on this PostgreSQL database (its reads run in worker threads: read both counts)",
    )
    parser.add_argument(
        "--functions", type=int, default=0, metavar="N",
        help="also list the N Python functions costing the most per page (Python 3.12 or newer)",
    )
    parser.add_argument(
        "--unread", action="store_true",
        help="customers do not open the wealth check-up's report first: its owed notices stay offered",
    )
    args = parser.parse_args()
    inprocess.READ_REPORTS = not args.unread
    if os.environ.get(CHILD):
        _child(args)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    if args.functions and sys.version_info < (3, 12):
        raise SystemExit("--functions needs Python 3.12 or newer (its perf trampolines name the functions)")
    functions: list[tuple[int, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="fulcrum-callgrind-") as tmp:
        out = Path(tmp)
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={out}/cg.%p", sys.executable, __file__, *sys.argv[1:],
        ]
        child_env = {**os.environ, CHILD: "1", "PYTHONHASHSEED": "0"}
        if args.functions:
            child_env["PYTHONPERFSUPPORT"] = "1"
        subprocess.run(  # noqa: S603 - our own argv
            command, check=True, env=child_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        totals = _totals(out)
        if args.functions:
            loop_file = next(out.glob("cg.*-01"), None)
            if loop_file is not None:
                perf_map = Path(f"/tmp/perf-{loop_file.name.split('.')[1].split('-')[0]}.map")  # noqa: S108 - Python writes it there
                try:
                    functions = _python_functions(loop_file, perf_map, args.requests, args.functions)
                finally:
                    perf_map.unlink(missing_ok=True)
    if not totals:
        raise SystemExit("callgrind wrote no counts")
    loop = totals.get("01", 0)
    rest = sum(n for thread, n in totals.items() if thread != "01")
    print(
        f"{args.requests} pages, variant {args.variant}, synthetic {args.synthetic}, "
        f"{args.customers} customer(s), {'caches off' if args.cold else 'caches on'}, "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, python {sys.version.split()[0]}"
    )
    print(f"instructions per page: {loop / args.requests:,.0f} on the event loop's thread, "
          f"{rest / args.requests:,.0f} in other threads")
    if functions:
        print(
            "\nPython functions on the event loop's thread, callees included (perf trampolines: see above;"
            " a function nested in itself, or entered again each time a coroutine resumes, counts per entry)"
        )
        print(f"{'per page':>10s} {'calls':>6s}  function")
        for cost, made, name in functions:
            print(f"{cost:10,d} {made:6.1f}  {name}")


if __name__ == "__main__":
    main()
