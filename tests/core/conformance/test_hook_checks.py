"""The kit's hook checks: every persona, every grant, deadlines, valid data and scopes not requested."""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec
import pytest
from fulcrum_sdk import hookimpl
from fulcrum_sdk.conformance import ConformanceResult, format_results, run_conformance
from fulcrum_sdk.errors import NO_CONSENT, DataUnavailable, ScopeDenied, TransactionRefused
from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.models import (
    Action,
    LocalizedText,
    Page,
    PageSection,
    SlotOffer,
    TransactionRequest,
    TransactionResult,
    TransactionType,
)
from fulcrum_sdk.pytest_plugin import _run as run_fixture
from fulcrum_sdk.testing import PERSONAS

# Tests that expect a pass use deadlines no busy machine misses; the deadline tests set their own.
RELAXED = dict.fromkeys(("home_slot_offers", "search", "feed_items", "page", "execute_transaction"), 10_000)
T = LocalizedText(zh_CN="探针")
GO = Action(uri="fulcrum://probe")


def make_manifest(
    *,
    hooks: Iterable[str] = ("home_slot_offers",),
    required: Iterable[str] = ("slot:home.banner",),
    optional: Iterable[str] = (),
    kind: str = "department",
    transaction_types: Iterable[str] = (),
) -> Manifest:
    """A valid manifest for a test plugin ``kit-probe`` with the given hooks and scopes."""
    raw: dict[str, Any] = {
        "id": "kit-probe",
        "publisher": "test-bank",
        "kind": kind,
        "sdk": ">=0.1,<1",
        "hooks": list(hooks),
        "slots": ["home.banner/v1"],
        "transaction_types": {
            key: {"risk_level": "R1", "amount_field": "amount_fen"} for key in transaction_types
        },
        "name": {"zh-CN": "探针"},
        "description": {"zh-CN": "一致性测试插件"},
        "owner": {"name": "Test", "email": "test@example.com"},
        "scopes": {
            "required": dict.fromkeys(required, "needed by the test"),
            "optional": dict.fromkeys(optional, "nice to have"),
        },
    }
    return msgspec.convert(raw, Manifest)


def plugin_with(**hooks: Callable[..., Any]) -> types.SimpleNamespace:
    """A plugin object carrying the given functions as hookimpls."""
    return types.SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def by_id(results: Iterable[ConformanceResult]) -> dict[str, ConformanceResult]:
    """Results keyed by check id."""
    return {r.id: r for r in results}


def banner(ctx: Any) -> list[SlotOffer]:
    """A well-behaved home hook."""
    return [SlotOffer(slot="home.banner/v1", key="b", title=T, action=GO)]


def test_a_well_behaved_plugin_passes_every_check() -> None:
    """A plugin returning a valid banner passes; hooks it does not implement are skipped, not failed."""
    results = by_id(
        run_conformance(plugin_with(home_slot_offers=banner), manifest=make_manifest(), deadlines=RELAXED)
    )
    assert results["hook.home_slot_offers"].status == "passed"
    assert results["hook.search"].status == "skipped"
    assert {r.status for r in results.values()} <= {"passed", "skipped"}


def test_every_persona_is_called() -> None:
    """The hook is called once per persona for the one grant a department plugin without options has."""
    seen: list[str] = []

    def home(ctx: Any) -> list[SlotOffer]:
        seen.append(ctx.customer.id)
        return []

    run_conformance(plugin_with(home_slot_offers=home), manifest=make_manifest(), deadlines=RELAXED)
    assert sorted(seen) == sorted(p.id for p in PERSONAS.values())


def test_a_hook_that_raises_fails_naming_the_persona() -> None:
    """An exception in one persona's call fails the hook's check, naming the persona and the error."""

    def home(ctx: Any) -> list[SlotOffer]:
        if ctx.customer.id == PERSONAS["retiree"].id:
            raise KeyError("no retiree offers")
        return banner(ctx)

    result = by_id(
        run_conformance(plugin_with(home_slot_offers=home), manifest=make_manifest(), deadlines=RELAXED)
    )
    check = result["hook.home_slot_offers"]
    assert check.status == "failed"
    assert len(check.details) == 1
    assert "persona retiree" in check.details[0]
    assert "KeyError" in check.details[0]
    assert check.fix


@pytest.mark.parametrize(
    "garbage",
    [{"slot": "home.banner/v1"}, "offers", [SlotOffer(slot="home.banner/v1", key="", title=T, action=GO)]],
    ids=["dict", "string", "invalid-struct"],
)
def test_garbage_results_fail_validation(garbage: Any) -> None:
    """A dict, a string or a Struct breaking its constraints is reported as invalid data."""
    plugin = plugin_with(home_slot_offers=lambda ctx: garbage)
    check = by_id(run_conformance(plugin, manifest=make_manifest(), deadlines=RELAXED))[
        "hook.home_slot_offers"
    ]
    assert check.status == "failed"
    assert "ResultError" in check.details[0]


def test_a_scope_not_requested_is_a_finding_naming_it() -> None:
    """Reading holdings without requesting ``holdings:read`` fails scopes.only_requested, naming the scope."""

    def home(ctx: Any) -> list[SlotOffer]:
        ctx.data.holdings()
        return banner(ctx)

    results = by_id(
        run_conformance(plugin_with(home_slot_offers=home), manifest=make_manifest(), deadlines=RELAXED)
    )
    check = results["scopes.only_requested"]
    assert check.status == "failed"
    assert check.details[0].startswith("holdings:read: ")
    assert "[scopes.required]" in (check.fix or "")
    assert results["hook.home_slot_offers"].status == "passed"  # the denial is reported once, as a scope


def test_an_optional_scope_used_without_asking_is_a_finding() -> None:
    """Reading the optional city without ``ctx.data.allows`` fails when the grant lacks it."""

    def home(ctx: Any) -> list[SlotOffer]:
        ctx.data.city()
        return banner(ctx)

    manifest = make_manifest(optional=("location:city",))
    results = by_id(run_conformance(plugin_with(home_slot_offers=home), manifest=manifest, deadlines=RELAXED))
    assert results["scopes.only_requested"].status == "passed"
    check = results["scopes.optional_guarded"]
    assert check.status == "failed"
    assert check.details[0].startswith("location:city: ")
    assert "not granted" in check.details[0]


def test_a_partner_without_consent_must_not_raise() -> None:
    """A partner using a required data scope without checking consent is told to check allows()."""

    def home(ctx: Any) -> list[SlotOffer]:
        ctx.data.profile()
        return banner(ctx)

    manifest = make_manifest(kind="partner", required=("slot:home.banner", "profile:basic"))
    check = by_id(run_conformance(plugin_with(home_slot_offers=home), manifest=manifest, deadlines=RELAXED))[
        "scopes.optional_guarded"
    ]
    assert check.status == "failed"
    assert "no customer consent" in check.details[0]
    assert "no live consent" in check.details[0]


def test_a_partner_checking_consent_passes() -> None:
    """The same partner asking ``allows`` first passes every grant, consent or not."""

    def home(ctx: Any) -> list[SlotOffer]:
        if ctx.data.allows("profile:basic"):
            ctx.data.profile()
        return banner(ctx)

    manifest = make_manifest(kind="partner", required=("slot:home.banner", "profile:basic"))
    results = run_conformance(plugin_with(home_slot_offers=home), manifest=manifest, deadlines=RELAXED)
    assert {r.status for r in results} <= {"passed", "skipped"}, format_results(results)


def test_a_partner_is_called_with_the_customers_consents_unknown() -> None:
    """As on the host when the consents could not be read, the kit also calls a partner's hooks with
    them unknown: ``allows`` then raises ``DataUnavailable``, a valid answer to let propagate (the host
    leaves the plugin out as degraded, a page answers 503 to retry), not a failure."""
    answers: list[object] = []

    def home(ctx: Any) -> list[SlotOffer]:
        try:
            allowed = ctx.data.allows("profile:basic")
        except DataUnavailable:
            answers.append("unknown")
            raise
        answers.append(allowed)
        return banner(ctx)

    def page(ctx: Any, path: str) -> Page | None:
        ctx.data.require("profile:basic")
        return _report() if path == "report" else None

    manifest = make_manifest(kind="partner", hooks=("home_slot_offers", "page"),
                             required=("slot:home.banner", "profile:basic"))
    results = run_conformance(plugin_with(home_slot_offers=home, page=page), manifest=manifest,
                              deadlines=RELAXED)
    assert {r.status for r in results} <= {"passed", "skipped"}, format_results(results)
    assert {str(a) for a in answers} == {"True", "False", "unknown"}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event a hanging test plugin waits on; set afterwards so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def test_a_hanging_plugin_fails_the_deadline_once(release: threading.Event) -> None:
    """A plain hook that blocks is abandoned at its deadline, retried once, and then not called again."""
    calls: list[int] = []

    def home(ctx: Any) -> list[SlotOffer]:
        calls.append(1)
        release.wait(30)
        return []

    results = by_id(
        run_conformance(
            plugin_with(home_slot_offers=home), manifest=make_manifest(), deadlines={"home_slot_offers": 20}
        )
    )
    check = results["hooks.within_deadline"]
    assert check.status == "failed"
    assert check.details == (
        "home, persona affluent, required scopes: no answer within 20 ms, "
        "then no answer within 20 ms on a retry; later calls skipped",
    )
    assert calls == [1, 1]


def test_a_hanging_async_plugin_fails_the_deadline(release: threading.Event) -> None:
    """An ``async def`` hook that never returns is reported like a blocking one."""

    async def home(ctx: Any) -> list[SlotOffer]:
        await asyncio.to_thread(release.wait, 30)
        return []

    results = by_id(
        run_conformance(
            plugin_with(home_slot_offers=home), manifest=make_manifest(), deadlines={"home_slot_offers": 20}
        )
    )
    assert results["hooks.within_deadline"].status == "failed"


def test_undeclared_and_missing_hooks_are_named() -> None:
    """A hook implemented but not listed, and one listed but not implemented, both fail the match check."""
    plugin = plugin_with(home_slot_offers=banner, search=lambda ctx, query: [])
    manifest = make_manifest(hooks=("home_slot_offers", "feed_items"), required=("slot:home.banner",))
    check = by_id(run_conformance(plugin, manifest=manifest, deadlines=RELAXED))["hooks.match_manifest"]
    assert check.status == "failed"
    assert check.details == (
        "implements search but fulcrum-plugin.toml does not list it",
        "lists feed_items but does not implement it",
    )


class Params(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Sample transaction parameters."""

    amount_fen: int


def _tx_plugin(
    execute: Callable[..., Any], register_key: str = "probe.buy", risk_level: Any = "R1"
) -> types.SimpleNamespace:
    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key=register_key, name=T, params=Params, risk_level=risk_level,
                                 amount_field="amount_fen"))

    return plugin_with(register_transaction_types=register_transaction_types, execute_transaction=execute)


def _tx_manifest() -> Manifest:
    return make_manifest(
        hooks=("register_transaction_types", "execute_transaction"),
        required=("transactions:write",),
        transaction_types=("probe.buy",),
    )


def test_transactions_are_called_only_with_sample_parameters() -> None:
    """Without samples execute_transaction is skipped (with how to run it); with them, it is called."""

    def execute(ctx: Any, request: TransactionRequest) -> TransactionResult:
        return TransactionResult(status="succeeded", reference="r-1")

    plugin = _tx_plugin(execute)
    skipped = by_id(run_conformance(plugin, manifest=_tx_manifest(), deadlines=RELAXED))[
        "hook.execute_transaction"
    ]
    assert skipped.status == "skipped"
    assert "transactions=" in skipped.message
    ran = by_id(
        run_conformance(
            plugin,
            manifest=_tx_manifest(),
            transactions={"probe.buy": {"amount_fen": 100}},
            deadlines=RELAXED,
        )
    )
    assert ran["hook.execute_transaction"].status == "passed"
    assert ran["hook.register_transaction_types"].status == "passed"


def test_a_business_refusal_is_a_valid_answer() -> None:
    """``TransactionRefused`` is how a plugin says no; it does not fail the kit."""

    def execute(ctx: Any, request: TransactionRequest) -> TransactionResult:
        raise TransactionRefused("probe.closed", LocalizedText(zh_CN="已关闭"))

    results = by_id(
        run_conformance(
            _tx_plugin(execute),
            manifest=_tx_manifest(),
            transactions={"probe.buy": {"amount_fen": 1}},
            deadlines=RELAXED,
        )
    )
    assert results["hook.execute_transaction"].status == "passed"


def test_bad_sample_parameters_fail_the_transaction_check() -> None:
    """Samples the type's schema refuses are reported, not swallowed."""
    plugin = _tx_plugin(lambda ctx, request: TransactionResult(status="succeeded", reference="r"))
    check = by_id(
        run_conformance(
            plugin,
            manifest=_tx_manifest(),
            transactions={"probe.buy": {"amount_fen": "lots"}},
            deadlines=RELAXED,
        )
    )["hook.execute_transaction"]
    assert check.status == "failed"
    assert "ValidationError" in check.details[0]


def test_a_type_registered_but_not_declared_fails() -> None:
    """Registering a key missing from transaction_types (and not the declared one) is named."""
    plugin = _tx_plugin(lambda ctx, request: None, register_key="probe.other")
    check = by_id(run_conformance(plugin, manifest=_tx_manifest(), deadlines=RELAXED))[
        "hook.register_transaction_types"
    ]
    assert check.status == "failed"
    assert check.details == (
        "registers 'probe.other', not listed in transaction_types",
        "lists 'probe.buy' in transaction_types but never registers it",
    )


def test_the_fixture_fails_the_test_with_each_failure_and_its_fix() -> None:
    """The pytest fixture turns failed checks into one test failure listing ids, details and fixes."""
    plugin = plugin_with(home_slot_offers=lambda ctx: "offers")
    with pytest.raises(pytest.fail.Exception) as failed:
        run_fixture(plugin, manifest=make_manifest())
    text = str(failed.value)
    assert "FAIL  hook.home_slot_offers" in text
    assert "fix: " in text
    assert "PASS" not in text


def test_the_fixture_returns_the_results_of_a_passing_plugin() -> None:
    """For a conforming plugin the fixture returns every result and does not fail."""
    results = run_fixture(plugin_with(home_slot_offers=banner), manifest=make_manifest(), deadlines=RELAXED)
    assert "hook.home_slot_offers" in by_id(results)


def test_the_fixture_is_registered_with_pytest(request: pytest.FixtureRequest) -> None:
    """The SDK's pytest11 entry point makes ``fulcrum_conformance`` available to any test."""
    runner = request.getfixturevalue("fulcrum_conformance")
    assert runner is run_fixture


def test_a_call_slow_once_is_retried_before_it_is_reported(release: threading.Event) -> None:
    """A call that blocks past the deadline once and is fast on its retry is not reported."""
    blocked: list[int] = []

    def home(ctx: Any) -> list[SlotOffer]:
        if not blocked:
            blocked.append(1)
            release.wait(0.2)  # late, but it does answer
        return []

    results = by_id(
        run_conformance(
            plugin_with(home_slot_offers=home),
            manifest=make_manifest(),
            deadlines={"home_slot_offers": 50},
            personas=["affluent"],
        )
    )
    assert results["hooks.within_deadline"].status == "passed"
    assert blocked == [1]


def test_a_call_slow_twice_is_reported_with_both_latencies(release: threading.Event) -> None:
    """A call that misses the deadline, then times out on its retry, is reported once with both facts."""
    calls: list[int] = []

    def home(ctx: Any) -> list[SlotOffer]:
        calls.append(1)
        release.wait(0.2 if len(calls) == 1 else 30)
        return []

    check = by_id(
        run_conformance(
            plugin_with(home_slot_offers=home),
            manifest=make_manifest(),
            deadlines={"home_slot_offers": 50},
            personas=["affluent"],
        )
    )["hooks.within_deadline"]
    assert check.status == "failed"
    assert len(check.details) == 1
    assert check.details[0].endswith(
        "no answer within 50 ms, then no answer within 50 ms on a retry; later calls skipped"
    )


# --- pages ---------------------------------------------------------------------------------------


def _report(title: str = "报告") -> Page:
    return Page(title=LocalizedText(zh_CN=title), sections=(PageSection(key="s", title=T),))


def test_every_own_deep_link_is_opened_as_a_page() -> None:
    """The kit opens each ``fulcrum://<id>/<path>`` the plugin hands out (query dropped), and a path
    that does not exist, for every persona; a valid page or ``None`` passes."""
    asked: set[str] = set()

    def home(ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=T,
                          action=Action(uri="fulcrum://kit-probe/report?view=full"))]

    def page(ctx: Any, path: str) -> Page | None:
        asked.add(path)
        return _report() if path == "report" else None

    manifest = make_manifest(hooks=("home_slot_offers", "page"))
    results = by_id(run_conformance(plugin_with(home_slot_offers=home, page=page), manifest=manifest,
                                    deadlines=RELAXED))
    assert results["hook.page"].status == "passed", format_results(results.values())
    assert asked == {"report", "zzz-no-such-page"}


def test_a_page_that_breaks_on_its_own_link_fails() -> None:
    """A deep link the plugin hands out whose page raises (or is invalid) fails ``hook.page``."""

    def home(ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=T, action=Action(uri="fulcrum://kit-probe/report"))]

    def page(ctx: Any, path: str) -> Page | None:
        if path == "report":
            raise LookupError("no report template")
        return None

    manifest = make_manifest(hooks=("home_slot_offers", "page"))
    check = by_id(run_conformance(plugin_with(home_slot_offers=home, page=page), manifest=manifest,
                                  deadlines=RELAXED))["hook.page"]
    assert check.status == "failed"
    assert "page 'report'" in check.details[0]
    assert "LookupError" in check.details[0]


def test_a_partner_page_may_stop_at_a_missing_consent() -> None:
    """A page raising ScopeDenied for a requested scope the customer has not consented to is a valid
    answer (the host asks the customer for consent); a display hook doing the same is not."""

    def page(ctx: Any, path: str) -> Page | None:
        ctx.data.profile()
        return _report() if path == "report" else None

    manifest = make_manifest(kind="partner", hooks=("page",), required=("profile:basic",))
    results = run_conformance(plugin_with(page=page), manifest=manifest, deadlines=RELAXED)
    assert {r.status for r in results} <= {"passed", "skipped"}, format_results(results)


@pytest.mark.parametrize(
    ("kind", "scope"), [("department", "profile:basic"), ("partner", "slot:home.banner")]
)
def test_a_consent_error_the_host_would_not_ask_for_fails(kind: str, scope: str) -> None:
    """A page raising "no live consent" where the host has no consent to ask for (a department plugin, a
    scope that is not customer data) fails a check: the host answers 503 and charges the plugin."""

    def page(ctx: Any, path: str) -> Page | None:
        raise ScopeDenied(scope, plugin_id="kit-probe", reason=NO_CONSENT)

    manifest = make_manifest(kind=kind, hooks=("page",), required=("profile:basic", "slot:home.banner"))
    results = run_conformance(plugin_with(page=page), manifest=manifest, deadlines=RELAXED)
    assert any(r.status == "failed" for r in results), format_results(results)


def test_a_page_at_a_path_that_does_not_exist_fails() -> None:
    """A plugin drawing a page for every path (so the app never gets its 404 and never handles its own
    links) fails ``hook.page``: the kit's made-up path must answer ``None``."""
    manifest = make_manifest(hooks=("page",))
    check = by_id(run_conformance(plugin_with(page=lambda ctx, path: _report()), manifest=manifest,
                                  deadlines=RELAXED))["hook.page"]
    assert check.status == "failed"
    assert "page 'zzz-no-such-page'" in check.details[0]
    assert "None" in check.details[0]


@pytest.mark.parametrize(
    "uri",
    [
        "fulcrum://kit-probe/a/../b", "fulcrum://kit-probe/./b",
        "fulcrum://kit-probe/a%2F..%2Fb", "fulcrum://kit-probe/%E6%8A%A5", "fulcrum://kit-probe/a%20b",
    ],
)
def test_an_own_deep_link_the_host_cannot_open_fails(uri: str) -> None:
    """A deep link into the plugin whose path ``GET /v1/pages/{plugin}/{path}`` refuses (a dot segment,
    an encoded slash or space) fails ``hook.page`` naming it, even when the plugin would draw it. (A link
    holding non-ASCII text is no link at all: the result that hands it out is invalid.)"""

    def home(ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=T, action=Action(uri=uri))]

    manifest = make_manifest(hooks=("home_slot_offers", "page"))
    def page(ctx: Any, path: str) -> Page | None:
        return None if path == "zzz-no-such-page" else _report()

    check = by_id(run_conformance(plugin_with(home_slot_offers=home, page=page), manifest=manifest,
                                  deadlines=RELAXED))["hook.page"]
    assert check.status == "failed"
    assert any(uri in d for d in check.details), check.details


@pytest.mark.parametrize(
    ("link", "path"),
    [
        ("report/", "report"), ("/report", "report"), ("plans//A-1/", "plans/A-1"),
        ("plans/a%2Db", "plans/a-b"), ("plans%2FA-1", "plans/A-1"), ("re%70ort%2F", "report"),
    ],
)
def test_an_own_deep_link_is_opened_at_the_path_the_host_hands_on(link: str, path: str) -> None:
    """The host receives the path percent-decoded, and its router drops slashes at either end and reads
    repeated ones as one (``GET /v1/pages/kit-probe/report/`` draws ``report``): the kit opens such a
    link at that path, and passes it when the page is there."""
    asked: set[str] = set()

    def home(ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=T, action=Action(uri=f"fulcrum://kit-probe/{link}"))]

    def page(ctx: Any, path: str) -> Page | None:
        asked.add(path)
        return None if path == "zzz-no-such-page" else _report()

    manifest = make_manifest(kind="partner", hooks=("home_slot_offers", "page"))
    results = by_id(run_conformance(plugin_with(home_slot_offers=home, page=page), manifest=manifest,
                                    deadlines=RELAXED))
    assert results["hook.page"].status == "passed", format_results(results.values())
    assert asked == {path, "zzz-no-such-page"}


@pytest.mark.parametrize("query", ["&".join(f"k{i}=1" for i in range(21)), "&".join(["a=1"] * 21)])
def test_an_own_deep_link_with_too_many_query_parameters_fails(query: str) -> None:
    """The host answers 400 to more than 20 query parameters, repeats counted: so does the kit, even
    when the 21 are one name repeated."""
    uri = f"fulcrum://kit-probe/report?{query}"

    def home(ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=T, action=Action(uri=uri))]

    def page(ctx: Any, path: str) -> Page | None:
        return _report() if path == "report" else None

    manifest = make_manifest(hooks=("home_slot_offers", "page"))
    check = by_id(run_conformance(plugin_with(home_slot_offers=home, page=page), manifest=manifest,
                                  deadlines=RELAXED))["hook.page"]
    assert check.status == "failed", check
    assert any("at most 20 query parameters" in d for d in check.details), check.details


def test_a_partners_own_link_must_open_a_page() -> None:
    """The app has no screens of its own for a partner: a link the partner hands out whose page is
    ``None`` fails ``hook.page`` (a department's may be one of the app's own screens)."""

    def home(ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=T, action=Action(uri="fulcrum://kit-probe/deals"))]

    def page(ctx: Any, path: str) -> Page | None:
        return None

    plugin = plugin_with(home_slot_offers=home, page=page)
    partner = make_manifest(kind="partner", hooks=("home_slot_offers", "page"))
    check = by_id(run_conformance(plugin, manifest=partner, deadlines=RELAXED))["hook.page"]
    assert check.status == "failed"
    assert "fulcrum://kit-probe/deals" in check.details[0]
    department = make_manifest(hooks=("home_slot_offers", "page"))
    passed = by_id(run_conformance(plugin, manifest=department, deadlines=RELAXED))["hook.page"]
    assert passed.status == "passed"


def test_a_partner_handing_out_own_links_without_pages_fails() -> None:
    """A partner whose hooks hand out ``fulcrum://<its id>/...`` links but that implements no ``page``
    fails ``hook.page`` naming the links; without such links the check is skipped."""

    def home(ctx: Any) -> list[SlotOffer]:
        return [SlotOffer(slot="home.banner/v1", key="b", title=T, action=Action(uri="fulcrum://kit-probe/deals"))]

    partner = make_manifest(kind="partner")
    check = by_id(run_conformance(plugin_with(home_slot_offers=home), manifest=partner, deadlines=RELAXED))
    assert check["hook.page"].status == "failed"
    assert check["hook.page"].details == ("fulcrum://kit-probe/deals",)
    plain = plugin_with(home_slot_offers=banner)  # links to fulcrum://probe, not into its own id
    assert by_id(run_conformance(plain, manifest=partner, deadlines=RELAXED))["hook.page"].status == "skipped"


def test_one_problem_seen_by_every_persona_and_grant_is_said_once() -> None:
    """A hook failing the same way for every synthetic customer and grant gets one detail line naming
    how many runs saw it and where, not one line per run (a partner reads the first line)."""

    def home(ctx: Any) -> list[SlotOffer]:
        raise KeyError("spring")

    check = by_id(run_conformance(plugin_with(home_slot_offers=home), manifest=make_manifest(),
                                  deadlines=RELAXED))["hook.home_slot_offers"]
    assert check.status == "failed"
    assert len(check.details) == 1, check.details
    detail = check.details[0]
    assert detail.startswith(f"home, {len(PERSONAS)} runs (personas ")
    assert all(persona in detail for persona in PERSONAS)
    assert "required scopes" in detail
    assert detail.endswith("KeyError: 'spring'")


def test_problems_that_differ_are_kept_apart() -> None:
    """Only identical problems are said once: one persona failing differently keeps its own line."""

    calls: list[int] = []

    def home(ctx: Any) -> list[SlotOffer]:
        calls.append(1)
        raise KeyError("first" if len(calls) == 1 else "other")

    check = by_id(run_conformance(plugin_with(home_slot_offers=home), manifest=make_manifest(),
                                  deadlines=RELAXED))["hook.home_slot_offers"]
    assert check.status == "failed"
    first, rest = check.details
    assert first.endswith("KeyError: 'first'")
    assert ", persona " in first  # a problem seen once is said as before
    assert rest.startswith(f"home, {len(calls) - 1} runs (personas ")
    assert rest.endswith("KeyError: 'other'")


@pytest.mark.parametrize(
    ("risk_level", "words"),
    [
        ("R3", "probe.buy: risk_level: registers 'R3' but fulcrum-plugin.toml declares 'R1'"),
        (None, "probe.buy: risk_level: none stated; fix: state the product risk level R1–R5"),
    ],
    ids=["mismatch", "missing"],
)
def test_a_type_not_as_its_manifest_declares_fails_the_register_check(risk_level: Any, words: str) -> None:
    """The kit refuses what the host refuses at startup: a type stating no level, or another level than
    the manifest declares, fails ``hook.register_transaction_types`` with the type and the field named."""
    plugin = _tx_plugin(lambda ctx, request: TransactionResult(status="succeeded"), risk_level=risk_level)
    check = by_id(run_conformance(plugin, manifest=_tx_manifest(), deadlines=RELAXED))[
        "hook.register_transaction_types"
    ]
    assert check.status == "failed"
    assert any(d.startswith(words) for d in check.details), check.details
