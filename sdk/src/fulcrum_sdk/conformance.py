"""The conformance kit's hook checks: call every implemented hook as the host would, for every persona.

The registry's checks judge a wheel without importing it; these judge the plugin's behaviour. Each
implemented hook is called through :class:`~fulcrum_sdk.testing.PluginHarness` for every demo persona
and for each grant a real customer may bring (the required scopes; the optional ones too; for a
partner, no consent), within the hook's deadline. A call must not raise, must return valid data and
must touch no scope the plugin was not given — a :class:`~fulcrum_sdk.errors.ScopeDenied` is a
finding naming the scope.

    results = run_conformance(my_plugin)
    failed = [r for r in results if r.status == "failed"]

``python -m fulcrum_sdk.conformance PLUGIN_ID --path DIR`` runs the same checks on the plugin
installed in ``DIR`` (an unpacked wheel) and prints them as JSON; ``fulcrum plugin check`` uses it so
the plugin runs from the artifact, in its own interpreter.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

import msgspec

from fulcrum_sdk._declared import type_problem
from fulcrum_sdk._personas import PERSONAS
from fulcrum_sdk._validate import (
    MAX_SEARCH_QUERY,
    ResultError,
    page_path_problem,
    page_query_problem,
    received_page_path,
    received_search_query,
)
from fulcrum_sdk.errors import NO_CONSENT, DataUnavailable, ScopeDenied, TransactionRefused
from fulcrum_sdk.hookspecs import HOOK_NAMES, PROJECT_NAME
from fulcrum_sdk.manifest import Manifest, manifest_from_distribution
from fulcrum_sdk.models import FEED_COLUMNS
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES
from fulcrum_sdk.testing import PluginHarness, load_manifest_beside, make_plugin_manager

__all__ = [
    "DEFAULT_DEADLINES_MS",
    "ConformanceResult",
    "format_results",
    "main",
    "run_conformance",
]

Status = Literal["passed", "failed", "skipped"]

DEFAULT_DEADLINES_MS: dict[str, int] = {
    "home_slot_offers": 150,
    "home_slot_campaigns": 150,
    "search": 300,
    "feed_items": 300,
    "page": 300,
    "execute_transaction": 5000,
    "register_transaction_types": 5000,
}
"""The host's default deadlines per hook, in milliseconds (``register_transaction_types``: startup)."""

_SEARCH_QUERIES = ("理财", "养老", "zzz-no-such-thing")


class ConformanceResult(msgspec.Struct, frozen=True, kw_only=True):
    """One check's outcome, in the registry checks' shape: id, status, message, fix and details."""

    id: str
    status: Status
    message: str
    fix: str | None = None
    details: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True only for ``passed``; a skipped check has not passed."""
        return self.status == "passed"


@dataclass(frozen=True)
class _Grant:
    label: str
    scopes: frozenset[str]
    consented: frozenset[str] | None  # None: every customer-data scope consented to
    consents_unknown: bool = False  # the host could not read the customer's consents


@dataclass
class _Findings:
    errors: dict[str, list[str]] = field(default_factory=dict)  # hook → problems
    slow: list[str] = field(default_factory=list)
    unrequested: dict[str, list[str]] = field(default_factory=dict)  # scope → where
    unguarded: dict[str, list[str]] = field(default_factory=dict)
    timed_out: set[str] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=dict)


class _Timeout(Exception):
    pass


def _call_within(fn: Callable[[], Any], deadline_s: float) -> tuple[Any, float]:
    """Run ``fn`` in a daemon thread; its value and latency, or :class:`_Timeout` after the deadline.

    A thread (not a signal) so a plain function that blocks is abandoned rather than waited for, as
    the host abandons it; the result of a late call is ignored.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        started = time.perf_counter()
        try:
            box["value"] = fn()
        except BaseException as exc:  # reported to the caller's thread
            box["error"] = exc
        box["elapsed"] = time.perf_counter() - started

    thread = threading.Thread(target=target, name="fulcrum-conformance", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        raise _Timeout
    if "error" in box:
        raise box["error"]
    return box.get("value"), float(box["elapsed"])


def _grants(manifest: Manifest) -> list[_Grant]:
    required = frozenset(manifest.scopes.required)
    grants = [_Grant("required scopes", required, None)]
    if manifest.scopes.optional:
        grants.append(_Grant("required and optional scopes", manifest.scopes.all, None))
    if manifest.kind == "partner" and manifest.scopes.all & CUSTOMER_DATA_SCOPES:
        grants.append(_Grant("no customer consent", manifest.scopes.all, frozenset()))
        grants.append(_Grant("customer's consents unknown", manifest.scopes.all, frozenset(), True))
    return grants


def _name_query(manifest: Manifest) -> list[str]:
    """The plugin's name as a customer could search for it (the host passes on 100 characters at
    most), or nothing when no query is left of it."""
    try:
        return [received_search_query(manifest.name.zh_CN[:MAX_SEARCH_QUERY])]
    except ValueError:
        return []


def _calls(
    harness: PluginHarness, hooks: frozenset[str], transactions: Mapping[str, Mapping[str, Any]]
) -> Iterable[tuple[str, str, Callable[[], Any]]]:
    """(hook, what was asked, call) for every request hook the plugin implements."""
    if "home_slot_offers" in hooks:
        yield "home_slot_offers", "home", harness.home_slot_offers
    if "home_slot_campaigns" in hooks:
        yield "home_slot_campaigns", "campaigns", harness.home_slot_campaigns
    if "search" in hooks:
        for query in (*_name_query(harness.manifest), *_SEARCH_QUERIES):
            yield "search", f"search {query!r}", lambda q=query: harness.search(q)  # type: ignore[misc]
    if "feed_items" in hooks:
        for column in FEED_COLUMNS:
            yield "feed_items", f"feed {column!r}", lambda c=column: harness.feed_items(c)  # type: ignore[misc]
    if "page" in hooks:
        for path in _own_paths(harness, hooks):
            yield "page", f"page {path!r}", lambda p=path: _open_page(harness, p)  # type: ignore[misc]
    if "execute_transaction" in hooks:
        for key, params in transactions.items():
            yield (
                "execute_transaction",
                f"transaction {key!r}",
                (
                    lambda k=key, p=params: _execute(harness, k, p)  # type: ignore[misc]
                ),
            )


_NO_SUCH_PAGE = "zzz-no-such-page"


def _own_paths(harness: PluginHarness, hooks: frozenset[str]) -> list[str]:
    """The paths of the deep links into the plugin's own pages that its hooks hand out, its pages' lines
    included (each must open without an error), and one that does not exist (which must answer
    ``None``, not raise)."""
    own = f"fulcrum://{harness.manifest.id}"
    fetches: list[Callable[[], Iterable[Any]]] = []
    if "home_slot_offers" in hooks:
        fetches.append(harness.home_slot_offers)
    if "home_slot_campaigns" in hooks:
        fetches.append(harness.home_slot_campaigns)
    if "search" in hooks:
        fetches += [lambda q=query: harness.search(q) for query in _name_query(harness.manifest)]  # type: ignore[misc]
    if "feed_items" in hooks:
        fetches += [lambda c=column: harness.feed_items(c) for column in FEED_COLUMNS]  # type: ignore[misc]
    found: set[str] = set()
    for fetch in fetches:
        try:
            items = list(fetch())
        except Exception:  # noqa: S112 - that hook's own check reports it
            continue
        found |= {link for i in items if (link := _own_link(own, i.action.uri)) is not None}
    if "page" in hooks:
        # The links on those pages too, a page at a time: a line's action must open as well.
        queue = sorted(found)
        while queue and len(found) < _MAX_PAGES:
            try:
                page = _open_page(harness, queue.pop(0))
            except Exception:  # noqa: S112 - that page's own call reports it
                continue
            lines = [line for section in (page.sections if page else ()) for line in section.lines]
            for line in lines:
                link = _own_link(own, line.action.uri) if line.action else None
                if link is not None and link not in found and len(found) < _MAX_PAGES:
                    found.add(link)
                    queue.append(link)
    return [*sorted(found), _NO_SUCH_PAGE]


_MAX_PAGES = 50
"""At most this many of the plugin's own links are opened (on each persona and grant)."""


def _own_link(own: str, uri: str) -> str | None:
    """``path[?query]`` of ``uri`` when it is a deep link into the plugin (``own``: ``fulcrum://<id>``),
    without a fragment; ``fulcrum://<id>`` with no path (or only a query) is the plugin's too, and
    opens nothing."""
    if uri == own or uri.startswith((own + "/", own + "?", own + "#")):
        return uri[len(own):].removeprefix("/").split("#", 1)[0]
    return None


def _open_page(harness: PluginHarness, link: str) -> Any:
    """The page at one of the plugin's own deep links, ``path[?query]`` (which the host must be able to
    route), or at the made-up path (which must be ``None``: the app then handles the link itself)."""
    sent, _, raw = link.partition("?")
    pairs = parse_qsl(raw, keep_blank_values=True)
    query = dict(pairs)
    path = received_page_path(unquote(sent))  # as the host's route receives it: percent-decoded
    problem = page_query_problem(query, sent=len(pairs)) or page_path_problem(path)
    if problem is not None:
        raise ResultError(f"the deep link fulcrum://{harness.manifest.id}/{link} cannot be opened: {problem}")
    found = harness.page(path, query)
    if path == _NO_SUCH_PAGE and found is not None:
        raise ResultError(f"page({path!r}) returned a Page for a path that is not one of the plugin's pages; "
                          "return None there (the app gets 404 and handles the link itself)")
    if path != _NO_SUCH_PAGE and found is None and harness.manifest.kind == "partner":
        raise ResultError(
            f"the deep link fulcrum://{harness.manifest.id}/{path}, which the plugin hands out, opens no "
            "page (page returned None): the app has no screen of its own for a partner's link"
        )
    return found


def _partner_links_without_pages(
    plugin: object, manifest: Manifest, hooks: frozenset[str]
) -> ConformanceResult:
    """``hook.page`` of a partner without the hook: skipped, unless it hands out links into its own id,
    which nothing could open (the app has no screens of its own for a partner)."""
    try:
        links = _own_paths(PluginHarness(plugin, manifest=manifest), hooks)[:-1]  # not the made-up one
    except Exception:  # the hooks' own checks report a failing harness
        links = []
    if not links:
        return _skipped("hook.page", "the plugin does not implement page")
    return _result(
        "hook.page",
        [f"fulcrum://{manifest.id}/{path}" for path in links],
        "",
        "the plugin hands out deep links into its own id but implements no page hook to open them",
        "implement `page` (see the partner guide, \"Your own screens\") and list it under hooks, or link "
        "to an https page instead",
    )


def _execute(harness: PluginHarness, key: str, params: Mapping[str, Any]) -> Any:
    try:
        return harness.execute(key, params)
    except TransactionRefused as refused:
        return refused  # a business refusal is a valid answer


def _note_denial(findings: _Findings, manifest: Manifest, denied: ScopeDenied, where: str) -> None:
    if denied.scope not in manifest.scopes.all:
        findings.unrequested.setdefault(denied.scope, []).append(where)
    else:
        findings.unguarded.setdefault(denied.scope, []).append(f"{where}: {denied.reason}")


def _second_try(findings: _Findings, hook: str, call: Callable[[], Any], deadline_ms: int) -> str | None:
    """Call a slow hook once more: a busy machine can delay any one call, a slow plugin is slow twice.

    ``None`` when the retry is in time (or fails otherwise: the first call's checks cover that), else
    what the retry did.
    """
    try:
        _, again = _call_within(call, deadline_ms / 1000)
    except _Timeout:
        findings.timed_out.add(hook)
        return f"no answer within {deadline_ms} ms"
    except Exception:
        return None
    return f"took {again * 1000:.1f} ms" if again * 1000 > deadline_ms else None


def _exercise(
    plugin: object,
    manifest: Manifest,
    hooks: frozenset[str],
    deadlines: Mapping[str, int],
    personas: Iterable[str],
    transactions: Mapping[str, Mapping[str, Any]],
) -> _Findings:
    findings = _Findings()
    for grant in _grants(manifest):
        for persona in personas:
            harness = PluginHarness(
                plugin, manifest=manifest, persona=persona, scopes=grant.scopes, consented=grant.consented,
                consents_unknown=grant.consents_unknown,
            )
            for hook, asked, call in _calls(harness, hooks, transactions):
                if hook in findings.timed_out:
                    continue
                where = f"{asked}, persona {persona}, {grant.label}"
                deadline_ms = deadlines.get(hook, DEFAULT_DEADLINES_MS[hook])
                findings.calls[hook] = findings.calls.get(hook, 0) + 1
                try:
                    _, elapsed = _call_within(call, deadline_ms / 1000)
                    first = f"took {elapsed * 1000:.1f} ms" if elapsed * 1000 > deadline_ms else None
                except _Timeout:
                    first = f"no answer within {deadline_ms} ms"
                except DataUnavailable as late:
                    # Customer data (or the consents) the host could not read: the host leaves the plugin
                    # out as degraded (a page answers 503 to retry), uncharged. Only when that happened.
                    if not grant.consents_unknown:
                        findings.errors.setdefault(hook, []).append(f"{where}: DataUnavailable: {late}")
                    continue
                except ScopeDenied as denied:
                    # A page may stop at a missing consent: the app then asks the customer for it. As
                    # on the host, only for granted customer data the customer has not consented to.
                    asks_consent = (
                        denied.reason == NO_CONSENT and denied.scope in harness.scopes & CUSTOMER_DATA_SCOPES
                        and harness.context().data.access(denied.scope) == "denied"
                    )
                    if not (hook == "page" and asks_consent):
                        _note_denial(findings, manifest, denied, where)
                    continue
                except Exception as exc:
                    findings.errors.setdefault(hook, []).append(f"{where}: {type(exc).__name__}: {exc}")
                    continue
                if first is not None:
                    second = _second_try(findings, hook, call, deadline_ms)
                    if second is not None:
                        skipped = "; later calls skipped" if hook in findings.timed_out else ""
                        findings.slow.append(f"{where}: {first}, then {second} on a retry{skipped}")
    return findings


def _result(check_id: str, problems: list[str], passed: str, failed: str, fix: str) -> ConformanceResult:
    if problems:
        return ConformanceResult(
            id=check_id, status="failed", message=failed, fix=fix, details=tuple(_collapsed(problems))
        )
    return ConformanceResult(id=check_id, status="passed", message=passed)


_WHERE = re.compile(r"^(?P<asked>.+?), persona (?P<persona>\S+), (?P<grant>[^:]+): (?P<message>.*)$", re.S)
"""A problem of one run: what was asked, of which persona, under which grant, and what went wrong."""


def _collapsed(problems: list[str]) -> list[str]:
    """``problems`` with those differing only in persona and grant said once, naming the runs that saw
    them: a hook failing the same way for every customer gets one line, not twenty."""
    runs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    order: list[tuple[str, str] | str] = []
    for problem in problems:
        found = _WHERE.match(problem)
        if found is None:
            order.append(problem)
            continue
        key = (found["asked"], found["message"])
        if key not in runs:
            runs[key] = []
            order.append(key)
        runs[key].append((found["persona"], found["grant"]))
    said: list[str] = []
    for item in order:
        if isinstance(item, str):
            said.append(item)
            continue
        (asked, message), seen = item, runs[item]
        if len(seen) == 1:
            said.append(f"{asked}, persona {seen[0][0]}, {seen[0][1]}: {message}")
            continue
        personas = ", ".join(dict.fromkeys(persona for persona, _ in seen))
        grants = "; ".join(dict.fromkeys(grant for _, grant in seen))
        said.append(f"{asked}, {len(seen)} runs (personas {personas}; grants: {grants}): {message}")
    return said


def _skipped(check_id: str, why: str) -> ConformanceResult:
    return ConformanceResult(id=check_id, status="skipped", message=f"not run: {why}", details=(why,))


def _implemented(plugin: object, manifest: Manifest) -> frozenset[str]:
    pm = make_plugin_manager()
    pm.register(plugin, name=manifest.id)
    return frozenset(caller.name for caller in pm.get_hookcallers(plugin) or ())


def _declared(manifest: Manifest, hooks: frozenset[str]) -> ConformanceResult:
    problems = [
        f"implements {h} but fulcrum-plugin.toml does not list it"
        for h in sorted(hooks - set(manifest.hooks))
    ]
    problems += [f"lists {h} but does not implement it" for h in sorted(set(manifest.hooks) - hooks)]
    return _result(
        "hooks.match_manifest",
        problems,
        "the hooks implemented are exactly the hooks fulcrum-plugin.toml lists",
        "the implemented hooks differ from the hooks fulcrum-plugin.toml lists",
        "list every implemented hook under `hooks` in fulcrum-plugin.toml, and only those",
    )


def _registered_types(plugin: object, manifest: Manifest) -> ConformanceResult:
    harness = PluginHarness(plugin, manifest=manifest)
    try:
        types, _ = _call_within(
            harness.transaction_types, DEFAULT_DEADLINES_MS["register_transaction_types"] / 1000
        )
    except _Timeout:
        problems = ["register_transaction_types did not return within 5 s"]
    except Exception as exc:
        problems = [f"{type(exc).__name__}: {exc}"]
    else:
        declared = set(manifest.type_keys)
        problems = [
            f"registers {k!r}, not listed in transaction_types" for k in sorted(set(types) - declared)
        ]
        problems += [
            f"lists {k!r} in transaction_types but never registers it" for k in sorted(declared - set(types))
        ]
        problems += [p for k in sorted(set(types) & declared) if (p := type_problem(types[k], manifest))]
    return _result(
        "hook.register_transaction_types",
        problems,
        "registers exactly the transaction types fulcrum-plugin.toml declares, as it declares them",
        "register_transaction_types fails or disagrees with transaction_types in fulcrum-plugin.toml",
        "register one TransactionType per key in transaction_types, with the risk level and amount field "
        "its declaration states, without I/O, and nothing else",
    )


def run_conformance(
    plugin: object,
    *,
    manifest: Manifest | None = None,
    deadlines: Mapping[str, int] | None = None,
    personas: Iterable[str] | None = None,
    transactions: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[ConformanceResult, ...]:
    """Run the hook checks on ``plugin`` (a module beside its manifest, or pass ``manifest``).

    ``deadlines`` overrides :data:`DEFAULT_DEADLINES_MS` per hook (milliseconds); ``personas``
    defaults to every one in :data:`~fulcrum_sdk.testing.PERSONAS`; ``transactions`` maps a
    transaction type key to sample parameters — ``execute_transaction`` cannot be called without them.
    """
    if manifest is None:
        manifest = load_manifest_beside(plugin)  # type: ignore[arg-type]
    chosen = sorted(PERSONAS) if personas is None else list(personas)
    samples = dict(transactions or {})
    hooks = _implemented(plugin, manifest)
    findings = _exercise(plugin, manifest, hooks, dict(deadlines or {}), chosen, samples)
    results = [_declared(manifest, hooks)]
    for hook in HOOK_NAMES:
        check_id = f"hook.{hook}"
        if hook == "page" and hook not in hooks and manifest.kind == "partner":
            results.append(_partner_links_without_pages(plugin, manifest, hooks))
        elif hook not in hooks:
            results.append(_skipped(check_id, f"the plugin does not implement {hook}"))
        elif hook == "register_transaction_types":
            results.append(_registered_types(plugin, manifest))
        elif hook == "execute_transaction" and not samples:
            results.append(
                _skipped(
                    check_id,
                    "no sample parameters: your tests' conformance run calls it when given "
                    "transactions={type key: params} (fulcrum plugin check has none to give)",
                )
            )
        else:
            results.append(
                _result(
                    check_id,
                    findings.errors.get(hook, []),
                    f"{hook} returns valid data for every persona and grant "
                    f"({findings.calls.get(hook, 0)} calls)",
                    f"{hook} raises or returns invalid data",
                    "return a list of the hook's SDK Structs (or None) and handle missing data instead of "
                    f"raising; reproduce with PluginHarness(plugin, persona=...).{_HARNESS_CALL[hook]}",
                )
            )
    results.append(
        _result(
            "hooks.within_deadline",
            findings.slow,
            "every call answered within its hook's deadline",
            "some calls took longer than the hook's deadline; the host drops late answers",
            "do no blocking I/O on the request path; precompute at import or cache in ctx.storage",
        )
    )
    results.append(
        _result(
            "scopes.only_requested",
            [f"{scope}: {', '.join(where[:3])}" for scope, where in sorted(findings.unrequested.items())],
            "the plugin touches no scope it did not request",
            "the plugin uses scopes fulcrum-plugin.toml does not request",
            "request each scope named in the details under [scopes.required] or [scopes.optional] "
            "with a reason, or stop using it",
        )
    )
    results.append(
        _result(
            "scopes.optional_guarded",
            [f"{scope}: {', '.join(where[:3])}" for scope, where in sorted(findings.unguarded.items())],
            "optional scopes and customer consent are checked before use",
            "the plugin raises when an optional scope is not granted or the customer has not consented",
            "check `ctx.data.allows(scope)` before each optional or consent-bound accessor and fall back",
        )
    )
    return tuple(results)


_HARNESS_CALL = {
    "home_slot_offers": "home_slot_offers()",
    "home_slot_campaigns": "home_slot_campaigns()",
    "search": "search(query)",
    "feed_items": "feed_items(column)",
    "page": "page(path)",
    "execute_transaction": "execute(type_key, params)",
}


def format_results(results: Iterable[Any]) -> str:
    """One line per check (``PASS``/``FAIL``/``SKIP`` and its id), with details and the fix of a failure.

    Takes these results and the registry's ``CheckResult`` alike (same fields).
    """
    lines: list[str] = []
    for r in results:
        mark = {"passed": "PASS", "failed": "FAIL"}.get(r.status, "SKIP")
        lines.append(f"{mark}  {r.id}: {r.message}")
        if r.status == "failed":
            lines.extend(f"        - {d}" for d in r.details)
            if r.fix:
                lines.append(f"        fix: {r.fix}")
    return "\n".join(lines)


def _installed(plugin_id: str, path: str) -> tuple[object, Manifest]:
    """The plugin ``plugin_id`` from the distributions in ``path``, loaded as the host loads it."""
    sys.path.insert(0, path)
    for dist in importlib.metadata.distributions(path=[path]):
        for ep in dist.entry_points:
            if ep.group == PROJECT_NAME and ep.name == plugin_id:
                return ep.load(), manifest_from_distribution(dist)
    raise SystemExit(f"no `{PROJECT_NAME}` entry point named {plugin_id!r} in {path}")


def main(argv: list[str] | None = None) -> int:
    """``python -m fulcrum_sdk.conformance ID --path DIR [--deadline hook=ms]``: JSON results on stdout."""
    parser = argparse.ArgumentParser(prog="python -m fulcrum_sdk.conformance")
    parser.add_argument("plugin_id")
    parser.add_argument("--path", required=True, help="a directory holding the installed plugin")
    parser.add_argument("--deadline", action="append", default=[], metavar="HOOK=MS")
    args = parser.parse_args(argv)
    deadlines: dict[str, int] = {}
    for item in args.deadline:
        hook, _, ms = item.partition("=")
        if hook not in DEFAULT_DEADLINES_MS or not ms.isdigit():
            parser.error(
                f"--deadline {item!r}: expected HOOK=MS with HOOK one of {', '.join(DEFAULT_DEADLINES_MS)}"
            )
        deadlines[hook] = int(ms)
    plugin, manifest = _installed(args.plugin_id, args.path)
    results = run_conformance(plugin, manifest=manifest, deadlines=deadlines)
    sys.stdout.buffer.write(msgspec.json.encode(results) + b"\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
