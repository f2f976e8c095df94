"""The same plugin through the SDK's ``PluginHarness`` and through the host: what a partner or a
department sees and gets back must agree, so a plugin green in its own tests works on the platform."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.plugins import PluginPolicy
from fulcrum_sdk import Action, Page, PageLine, PageSection, SearchHit
from fulcrum_sdk.conformance import run_conformance
from fulcrum_sdk.errors import ScopeDenied, TransactionRefused
from fulcrum_sdk.localtime import CHINA_TZ
from fulcrum_sdk.models import SlotOffer, Targeting, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.storage import MemoryStorage, PluginStorage
from fulcrum_sdk.testing import PERSONAS, PluginHarness, ResultError

CUSTOMER = "synthetic-young-professional"


def _customer_page(kit: Any) -> Any:
    """A page showing the customer as the plugin's context shows them."""

    def page(ctx: Any, path: str) -> Page:
        seen = f"{ctx.customer.segment or '-'}/{ctx.customer.branch or '-'}"
        return Page(title=kit.text(seen), sections=(
            PageSection(key="main", title=kit.text("客户"), lines=(
                PageLine(label=kit.text("语言"), value=kit.text(ctx.customer.locale)),
            )),
        ))

    return page


def _host_title(app: Any) -> str:
    response = app.get("/v1/pages/shop/report")
    assert response.status_code == 200, response.text
    title: str = response.json()["page"]["title"]["zh-CN"]
    return title


@pytest.mark.parametrize(("kind", "consented", "shown"), [
    ("department", None, "mass/0755"),
    ("partner", None, "mass/0755"),
    ("partner", (), "-/-"),  # no consent to profile:basic: no segment, no branch
])
def test_the_customer_a_plugin_sees_is_the_same(
    make_app: Any, kit: Any, kind: str, consented: tuple[str, ...] | None, shown: str
) -> None:
    """``ctx.customer``'s segment and branch: a partner sees them only with the customer's consent to
    ``profile:basic``, in the harness as on the host."""
    plugin = kit.plugin("shop", kind=kind, scopes=["profile:basic"], page=_customer_page(kit))
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST, persona="young_professional",
                            consented=consented)
    drawn = harness.page("report")
    assert drawn is not None
    app = make_app(plugin, consent_cache_ms=0)
    if kind == "partner" and consented is None:
        later = datetime.now(UTC) + timedelta(days=30)
        ConsentStore(app.runtime.db).grant(CUSTOMER, "shop", ["profile:basic"], "展示", later)
    assert drawn.title.zh_CN == _host_title(app) == shown


def test_a_partner_without_profile_basic_sees_no_segment_or_branch(make_app: Any, kit: Any) -> None:
    """Not granted ``profile:basic`` at all: blank in the harness as on the host."""
    plugin = kit.plugin("shop", kind="partner", scopes=["location:city"], page=_customer_page(kit))
    drawn = PluginHarness(plugin, manifest=plugin.MANIFEST).page("report")
    assert drawn is not None
    assert drawn.title.zh_CN == _host_title(make_app(plugin)) == "-/-"


def test_a_partner_whose_consents_are_unknown_sees_no_segment_or_branch(kit: Any) -> None:
    """Consents that could not be read: the host blanks segment and branch (it cannot know)."""
    plugin = kit.plugin("shop", kind="partner", scopes=["profile:basic"], page=_customer_page(kit))
    drawn = PluginHarness(plugin, manifest=plugin.MANIFEST, consents_unknown=True).page("report")
    assert drawn is not None
    assert drawn.title.zh_CN == "-/-"


class OrderParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of ``shop.order``."""

    item: str
    amount_fen: int


def _shop(kit: Any, refusal: TransactionRefused, *, risk: str = "R1") -> Any:
    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="shop.order", name=kit.text("下单"), params=OrderParams,
                                 risk_level=risk, amount_field="amount_fen"))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        if request.params.item == "GONE":
            raise refusal
        return TransactionResult(status="succeeded", reference="R-1")

    return kit.plugin("shop", transaction_types=["shop.order"], scopes=[],
                      register_transaction_types=register_transaction_types,
                      execute_transaction=execute_transaction)


def _post(app: Any, params: dict[str, Any], key: str = "k-1") -> Any:
    body = msgspec.json.encode({"type": "shop.order", "params": params})
    headers = {"Authorization": f"Bearer {app.token(CUSTOMER)}", "Idempotency-Key": key,
               "Content-Type": "application/json"}
    return app.client.post("/v1/transactions", content=body, headers=headers)


def test_a_refusal_the_host_cannot_answer_is_invalid_in_the_harness(make_app: Any, kit: Any) -> None:
    """A ``TransactionRefused`` whose message is empty cannot be answered as a failure: the host
    records the transaction as unknown (202), so the harness calls it an invalid result, and the kit
    fails it; a valid refusal is raised as it is, as the host answers it with its code (422)."""
    bad = _shop(kit, TransactionRefused("shop.sold_out", kit.text("")))
    harness = PluginHarness(bad, manifest=bad.MANIFEST)
    with pytest.raises(ResultError, match="refus"):
        harness.execute("shop.order", {"item": "GONE", "amount_fen": 100})
    assert _post(make_app(bad), {"item": "GONE", "amount_fen": 100}).status_code == 202

    good = _shop(kit, TransactionRefused("shop.sold_out", kit.text("已售罄")))
    with pytest.raises(TransactionRefused):
        PluginHarness(good, manifest=good.MANIFEST).execute("shop.order", {"item": "GONE", "amount_fen": 1})
    failed = run_conformance(bad, manifest=bad.MANIFEST, personas=["young_professional"],
                             transactions={"shop.order": {"item": "GONE", "amount_fen": 100}})
    (check,) = [r for r in failed if r.id == "hook.execute_transaction"]
    assert check.status == "failed", check


_STORAGE_CALLS: dict[str, Callable[[PluginStorage], Any]] = {
    "get an empty key": lambda s: s.get(""),
    "put a 201-character key": lambda s: s.put("k" * 201, 1),
    "put a 200-character key": lambda s: s.put("k" * 200, 1),
    "put a key that is not text": lambda s: s.put(7, 1),  # type: ignore[arg-type]
    "put what JSON cannot hold": lambda s: s.put("k", object()),
    "delete a 201-character key": lambda s: s.delete("k" * 201),
    "read one string as counters": lambda s: s.counters("ab"),
    "read counters with a long key": lambda s: s.counters(["a", "k" * 201]),
    "add True": lambda s: s.add("n", True),  # type: ignore[arg-type]
    "add 1.5": lambda s: s.add("n", 1.5),  # type: ignore[arg-type]
    "add with lower above upper": lambda s: s.add("n", 1, lower=5, upper=2),
    "add within bounds": lambda s: s.add("n", 1, lower=0, upper=2),
    "add past a bound": lambda s: s.add("n", 3, upper=2),
}


def _outcome(call: Callable[[PluginStorage], Any], storage: PluginStorage) -> Any:
    try:
        return call(storage)
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("what", sorted(_STORAGE_CALLS))
def test_storage_in_tests_takes_and_refuses_what_the_host_does(db: Any, what: str) -> None:
    """The harness's ``MemoryStorage`` accepts the keys and arguments the host's storage accepts and
    refuses the others with the same exception (a 201-character key, ``add(key, True)``)."""
    call = _STORAGE_CALLS[what]
    assert _outcome(call, MemoryStorage()) == _outcome(call, SqlPluginStorage(db, "shop"))


def test_ctx_now_is_utc_in_the_harness_as_on_the_host(make_app: Any, kit: Any) -> None:
    """``ctx.now`` is aware UTC on the host; a harness given a moment in another zone (or a naive one)
    hands the plugin the same instant in UTC, so ``ctx.now.date()`` is the date the host would give."""

    def page(ctx: Any, path: str) -> Page:
        shown = f"{ctx.now.utcoffset()}|{ctx.now.tzname()}"
        return Page(title=kit.text(shown), sections=())

    plugin = kit.plugin("shop", page=page)
    host = _host_title(make_app(plugin))
    assert host == "0:00:00|UTC"
    new_year_in_china = datetime(2026, 1, 1, 7, 0, tzinfo=CHINA_TZ)
    for now in (new_year_in_china, datetime(2025, 12, 31, 23, 0)):  # noqa: DTZ001 - naive on purpose
        harness = PluginHarness(plugin, manifest=plugin.MANIFEST, now=now)
        drawn = harness.page("report")
        assert drawn is not None
        assert drawn.title.zh_CN == host
        assert harness.context().now == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


def _path_page(kit: Any) -> Any:
    def page(ctx: Any, path: str, query: Any) -> Page:
        return Page(title=kit.text(f"{path}?{sorted(query.items())}"), sections=())

    return kit.plugin("shop", page=page)


def test_a_page_path_reaches_the_plugin_as_the_host_passes_it(make_app: Any, kit: Any) -> None:
    """``harness.page("plans/a/")`` gives the plugin ``plans/a``, as the host does for that link."""
    plugin = _path_page(kit)
    app = make_app(plugin)
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST)
    for sent in ("plans/a/", "/plans//a"):
        response = app.get(f"/v1/pages/shop/{sent.lstrip('/')}", params={"sort": "price"})
        assert response.status_code == 200, response.text
        drawn = harness.page(sent, {"sort": "price"})
        assert drawn is not None
        assert drawn.title.zh_CN == response.json()["page"]["title"]["zh-CN"] == "plans/a?[('sort', 'price')]"


@pytest.mark.parametrize(("path", "query"), [
    ("_plans", {}),
    ("plans/~a", {}),
    ("report", {"bad key": "1"}),
    ("report", {"k": "x" * 201}),
])
def test_a_page_link_the_host_refuses_is_refused_by_the_harness(
    make_app: Any, kit: Any, path: str, query: dict[str, str]
) -> None:
    """A path or query the host answers 400 to (the plugin never asked) is a ``ValueError`` saying so."""
    plugin = _path_page(kit)
    response = make_app(plugin).get(f"/v1/pages/shop/{path}", params=query)
    assert response.status_code == 400, response.text
    with pytest.raises(ValueError, match="400"):
        PluginHarness(plugin, manifest=plugin.MANIFEST).page(path, query)


def _echo_search(kit: Any) -> Any:
    def search(ctx: Any, query: str) -> list[SearchHit]:
        return [SearchHit(key="q", kind="service", title=kit.text(f"[{query}]"), action=Action(uri="https://e.com"))]

    return kit.plugin("shop", scopes=["search:contribute"], search=search)


def test_a_search_query_reaches_the_plugin_as_the_host_passes_it(make_app: Any, kit: Any) -> None:
    """The harness hands ``search`` the query the host does: NFC, without invisible characters and
    surrounding space (a test of ``" 基金\\u200b"`` sees ``基金``, as on the platform)."""
    plugin = _echo_search(kit)
    app = make_app(plugin)
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST)
    for sent in (" 基金\u200b ", "cafe\u0301\tcard"):
        response = app.get("/v1/search", params={"q": sent})
        assert response.status_code == 200, response.text
        (hit,) = harness.search(sent)
        assert hit.title.zh_CN == response.json()["items"][0]["title"]["zh-CN"]


@pytest.mark.parametrize("sent", ["", " \u200b ", "长" * 101])
def test_a_search_query_the_host_refuses_is_refused_by_the_harness(
    make_app: Any, kit: Any, sent: str
) -> None:
    """A query the host answers 400 to (the plugins never asked) is a ``ValueError`` in the harness."""
    plugin = _echo_search(kit)
    assert make_app(plugin).get("/v1/search", params={"q": sent}).status_code == 400
    with pytest.raises(ValueError, match="400"):
        PluginHarness(plugin, manifest=plugin.MANIFEST).search(sent)


def test_offers_for_a_slot_the_host_does_not_have_are_dropped_by_the_harness(make_app: Any, kit: Any) -> None:
    """An offer for ``home.banner/v2`` (a slot version the platform does not serve) is dropped by the
    harness as by the host, though the plugin holds ``slot:home.banner``."""
    offers = [kit.offer("home.banner/v2", "next"), kit.offer("home.banner", "now")]
    plugin = kit.plugin("shop", scopes=["slot:home.banner"], home_slot_offers=lambda ctx: offers)
    body = make_app(plugin).get("/v1/home").json()
    shown = [(slot, i["key"]) for slot, items in body["slots"].items() for i in items]
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST)
    assert [(o.slot, o.key) for o in harness.home_slot_offers()] == shown == [("home.banner/v1", "now")]


@pytest.mark.parametrize(("persona", "risk", "amount", "code"), [
    ("young_professional", "R4", 100, "suitability.risk_too_high"),  # a C3 customer
    ("retiree", "R2", 100, "suitability.assessment_expired"),  # assessed C1, expired end of 2025
    ("young_professional", "R2", -1, "limits.negative_amount"),
    ("young_professional", "R2", 500_000_001, "limits.max_amount"),
    ("young_professional", "R3", 100, None),
])
def test_a_transaction_the_host_refuses_before_the_plugin_is_refused_by_the_harness(
    make_app: Any, kit: Any, persona: str, risk: str, amount: int, code: str | None
) -> None:
    """Suitability and the platform's amount limits: what the host refuses (422, its code) without
    calling the plugin, the harness refuses with ``TransactionRefused`` carrying the same code."""
    plugin = _shop(kit, TransactionRefused("shop.sold_out", kit.text("已售罄")), risk=risk)
    app = make_app(plugin)
    sub = PERSONAS[persona].id
    body = msgspec.json.encode({"type": "shop.order", "params": {"item": "A", "amount_fen": amount}})
    headers = {"Authorization": f"Bearer {app.token(sub)}", "Idempotency-Key": "k-1",
               "Content-Type": "application/json"}
    response = app.client.post("/v1/transactions", content=body, headers=headers)
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST, persona=persona,
                            now=datetime(2026, 3, 2, tzinfo=UTC))
    if code is None:
        assert response.status_code == 201, response.text
        assert harness.execute("shop.order", {"item": "A", "amount_fen": amount}).status == "succeeded"
        return
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    with pytest.raises(TransactionRefused) as refused:
        harness.execute("shop.order", {"item": "A", "amount_fen": amount})
    assert refused.value.code == code


def test_a_transaction_needs_transactions_write_whatever_its_type_lists(make_app: Any, kit: Any) -> None:
    """A type whose ``required_scopes`` leave out ``transactions:write`` still needs it: the host
    refuses (403) a plugin not granted it, and the harness raises ``ScopeDenied`` naming it."""

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="shop.order", name=kit.text("下单"), params=OrderParams,
                                 required_scopes=frozenset({"holdings:read"}), risk_level="R1",
                                 amount_field="amount_fen"))

    plugin = kit.plugin(
        "shop", transaction_types=["shop.order"], scopes=["holdings:read"],
        register_transaction_types=register_transaction_types,
        execute_transaction=lambda ctx, request: TransactionResult(status="succeeded"),
    )
    app = make_app(plugin)
    granted = frozenset({"holdings:read"})
    app.runtime.plugins.set_policy({"shop": PluginPolicy(active=True, granted_scopes=granted)})
    response = _post(app, {"item": "A", "amount_fen": 1})
    assert response.status_code == 403, response.text
    assert response.json()["missing_scopes"] == ["transactions:write"]
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST, scopes=["holdings:read"])
    with pytest.raises(ScopeDenied, match="transactions:write"):
        harness.execute("shop.order", {"item": "A", "amount_fen": 1})


@pytest.mark.parametrize("link", ["fulcrum://shop", "fulcrum://shop?part=plans", "fulcrum://shop#top"])
def test_a_link_into_the_plugin_without_a_path_fails_the_kit(make_app: Any, kit: Any, link: str) -> None:
    """``fulcrum://shop`` (no path after the id) opens no page on the host (404): the kit fails a
    partner handing it out, as it fails any own link the host cannot open."""
    offer = SlotOffer(slot="home.banner/v1", key="b", title=kit.text("横幅"), action=Action(uri=link))
    plugin = kit.plugin(
        "shop", kind="partner", scopes=["slot:home.banner"], home_slot_offers=lambda ctx: [offer],
        page=lambda ctx, path: Page(title=kit.text(path), sections=()) if path == "plans" else None,
    )
    app = make_app(plugin)
    assert app.get("/v1/pages/shop").status_code == 404
    results = run_conformance(plugin, manifest=plugin.MANIFEST, personas=["young_professional"])
    (check,) = [r for r in results if r.id == "hook.page"]
    assert check.status == "failed", check
    assert any("cannot be opened" in d for d in check.details), check.details


def test_a_feed_column_the_host_does_not_have_is_refused_by_the_harness(make_app: Any, kit: Any) -> None:
    """``feed_items("news")``: the host answers 404 without asking any plugin; the harness raises
    ``ValueError`` instead of calling the plugin for a column no customer can open."""
    plugin = kit.plugin("shop", scopes=["feed:contribute"],
                        feed_items=lambda ctx, column: [kit.item(column, "a")])
    assert make_app(plugin).get("/v1/feeds/news").status_code == 404
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST)
    assert [i.key for i in harness.feed_items("life")] == ["a"]
    with pytest.raises(ValueError, match="404"):
        harness.feed_items("news")


def test_a_plain_hook_returning_a_coroutine_is_invalid_in_the_harness(make_app: Any, kit: Any) -> None:
    """A plain ``def`` hook that returns a coroutine (an ``async`` helper called without ``await``) is
    left out by the host as invalid; the harness raises ``ResultError`` instead of awaiting it."""

    async def hits(query: str) -> list[SearchHit]:
        return [SearchHit(key="q", kind="service", title=kit.text(query), action=Action(uri="https://e.com"))]

    plugin = kit.plugin("shop", scopes=["search:contribute"], search=lambda ctx, query: hits(query))
    body = make_app(plugin).get("/v1/search", params={"q": "基金"}).json()
    assert body["items"] == []
    assert body["degraded"] == [{"plugin": "shop", "hook": "search", "reason": "invalid"}]
    with pytest.raises(ResultError, match="async def"):
        PluginHarness(plugin, manifest=plugin.MANIFEST).search("基金")


def test_a_partners_customer_id_looks_as_on_the_host(make_app: Any, kit: Any) -> None:
    """A partner's ``ctx.customer.id`` is 64 hex digits in the harness as on the host, never holding
    the bank's customer number, and differs from one partner to the next."""

    def page(ctx: Any, path: str) -> Page:
        return Page(title=kit.text(ctx.customer.id), sections=())

    plugin = kit.plugin("shop", kind="partner", scopes=["location:city"], page=page)
    other = kit.plugin("other", kind="partner", scopes=["location:city"], page=page)
    host = _host_title(make_app(plugin))
    drawn = PluginHarness(plugin, manifest=plugin.MANIFEST).page("report")
    assert drawn is not None
    for seen in (host, drawn.title.zh_CN):
        assert re.fullmatch(r"[0-9a-f]{64}", seen), seen
        assert CUSTOMER not in seen
    assert PluginHarness(other, manifest=other.MANIFEST).context().customer.id != drawn.title.zh_CN


def test_a_long_plugin_name_is_searched_as_far_as_the_host_passes_it(kit: Any) -> None:
    """The kit searches for the plugin's name; a name over 100 characters is searched for as its first
    100 (the host refuses longer queries), not failed as a search that raises."""
    plugin = _echo_search(kit)
    name = kit.text("长" * 150)
    manifest = msgspec.structs.replace(plugin.MANIFEST, name=name)
    results = run_conformance(plugin, manifest=manifest, personas=["young_professional"])
    (check,) = [r for r in results if r.id == "hook.search"]
    assert check.status == "passed", check


@pytest.mark.parametrize("rated", [None, "R9"])
def test_a_product_risk_the_host_cannot_use_is_invalid_in_the_harness(
    make_app: Any, kit: Any, rated: str | None
) -> None:
    """``risk_of`` answering no level or one that is not R1–R5 for a product declared R2: the host
    cannot trust the rating and refuses the request as the plugin's fault (502); the harness raises
    ``ResultError`` instead of running the order unchecked."""

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="shop.order", name=kit.text("下单"), params=OrderParams,
                                 product_field="item", product_risks={"A": "R2"},
                                 risk_of=lambda params: rated, amount_field="amount_fen"))

    plugin = kit.plugin(
        "shop", transaction_types=["shop.order"], scopes=[],
        register_transaction_types=register_transaction_types,
        execute_transaction=lambda ctx, request: TransactionResult(status="succeeded"),
    )
    assert _post(make_app(plugin), {"item": "A", "amount_fen": 1}).status_code == 502
    with pytest.raises(ResultError, match="risk"):
        PluginHarness(plugin, manifest=plugin.MANIFEST).execute("shop.order", {"item": "A", "amount_fen": 1})


def test_a_link_on_a_partners_page_that_opens_nothing_fails_the_kit(make_app: Any, kit: Any) -> None:
    """A line of the partner's ``home`` page links to ``fulcrum://shop/missing``, which the plugin has no
    page for: the host answers 404 (the app has no screen for it), and the kit fails ``hook.page``."""

    def page(ctx: Any, path: str) -> Page | None:
        if path != "home":
            return None
        line = PageLine(label=kit.text("更多"), action=Action(uri="fulcrum://shop/missing"))
        section = PageSection(key="a", title=kit.text("甲"), lines=(line,))
        return Page(title=kit.text("首页"), sections=(section,))

    link = Action(uri="fulcrum://shop/home")
    offer = SlotOffer(slot="home.banner/v1", key="b", title=kit.text("横幅"), action=link)
    plugin = kit.plugin("shop", kind="partner", scopes=["slot:home.banner"],
                        home_slot_offers=lambda ctx: [offer], page=page)
    app = make_app(plugin)
    assert app.get("/v1/pages/shop/home").status_code == 200
    assert app.get("/v1/pages/shop/missing").status_code == 404
    results = run_conformance(plugin, manifest=plugin.MANIFEST, personas=["young_professional"])
    (check,) = [r for r in results if r.id == "hook.page"]
    assert check.status == "failed", check
    assert any("fulcrum://shop/missing" in d for d in check.details), check.details


def _windowed_and_targeted(kit: Any) -> list[SlotOffer]:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    return [
        kit.offer("home.banner", "always"),
        kit.offer("home.banner", "ended", valid_until=now - hour),
        kit.offer("home.banner", "later", valid_from=now + hour),
        kit.offer("home.banner", "open", valid_from=now - hour, valid_until=now + hour),
        kit.offer("home.kingkong", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
        kit.offer("home.kingkong", "affluent", targeting=Targeting(segments=frozenset({"affluent"}))),
        kit.offer("home.kingkong", "shenzhen", targeting=Targeting(branches=frozenset({"0755"}))),
        kit.offer("home.kingkong", "english", targeting=Targeting(locales=frozenset({"en-US"}))),
    ]


@pytest.mark.parametrize("hook", ["home_slot_offers", "home_slot_campaigns"])
@pytest.mark.parametrize(("kind", "consented", "expected"), [
    ("department", None, {"always", "open", "mass", "shenzhen"}),
    ("partner", None, {"always", "open", "mass", "shenzhen"}),
    ("partner", (), {"always", "open"}),  # segment and branch not shared: offers targeted by them hidden
])
def test_the_offers_shown_are_those_the_host_shows(
    make_app: Any, kit: Any, kind: str, consented: tuple[str, ...] | None, expected: set[str], hook: str
) -> None:
    """``shown_offers()`` leaves out, as the host does, offers outside their validity window and those
    whose targeting does not admit the customer as the plugin sees them, whether per customer or
    campaigns; ``home_slot_offers()`` (or ``home_slot_campaigns()``) still returns them all, for tests
    of the plugin's own choices."""
    offers = _windowed_and_targeted(kit)
    plugin = kit.plugin("shop", kind=kind, scopes=["slot:home.banner", "slot:home.kingkong"],
                        optional=["profile:basic"], **{hook: lambda ctx: offers})
    host = make_app(plugin, consent_cache_ms=0)
    if kind == "partner" and consented is None:
        later = datetime.now(UTC) + timedelta(days=30)
        ConsentStore(host.runtime.db).grant(CUSTOMER, "shop", ["profile:basic"], "排序", later)
    body = host.get("/v1/home").json()
    on_host = {i["key"] for items in body["slots"].values() for i in items}
    granted = ["slot:home.banner", "slot:home.kingkong", "profile:basic"]
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST, persona="young_professional",
                            scopes=granted, consented=consented)
    assert {o.key for o in harness.shown_offers()} == on_host == expected
    assert len(getattr(harness, hook)()) == len(offers)


def test_the_feed_items_shown_are_those_the_host_shows(make_app: Any, kit: Any) -> None:
    """``shown_feed_items()`` leaves out a partner's cards targeted by what the customer has not shared."""
    items = [
        kit.item("life", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
        kit.item("life", "everyone"),
    ]
    plugin = kit.plugin("partner", kind="partner", scopes=["feed:contribute"], optional=["profile:basic"],
                        feed_items=lambda ctx, column: items)
    on_host = [i["key"] for i in make_app(plugin).get("/v1/feeds/life").json()["items"]]
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST, scopes=["feed:contribute", "profile:basic"],
                            consented=())
    assert [i.key for i in harness.shown_feed_items("life")] == on_host == ["everyone"]
    assert [i.key for i in harness.feed_items("life")] == ["mass", "everyone"]


class PayParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``shop.pay``: an amount from one of the customer's accounts."""

    account: str
    amount_fen: int


def _payer(kit: Any) -> Any:
    """A partner showing the customer's first account id on its page and paying from an account."""

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="shop.pay", name=kit.text("付款"), params=PayParams, risk_level="R1",
                                 amount_field="amount_fen", account_fields=frozenset({"account"})))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        return TransactionResult(status="succeeded", reference=request.params.account)

    def page(ctx: Any, path: str) -> Page:
        return Page(title=kit.text(ctx.data.accounts().items[0].id), sections=())

    return kit.plugin("shop", kind="partner", transaction_types=["shop.pay"],
                      scopes=["accounts:read", "transactions:write"], page=page,
                      register_transaction_types=register_transaction_types,
                      execute_transaction=execute_transaction)


def test_a_partners_account_id_is_its_own_and_pays_as_on_the_host(make_app: Any, kit: Any) -> None:
    """A partner's page shows an account under 32 hex digits of its own, never the bank's id, in the
    harness as on the host; a payment naming that id succeeds and reaches the plugin as sent, and one
    naming the bank's id is refused (the host's 422 ``transaction.unknown_account`` naming
    ``params.account``, the harness's ``TransactionRefused`` with that code)."""
    plugin = _payer(kit)
    app = make_app(plugin, consent_cache_ms=0)
    later = datetime.now(UTC) + timedelta(days=30)
    ConsentStore(app.runtime.db).grant(CUSTOMER, "shop", ["accounts:read"], "付款", later)
    harness = PluginHarness(plugin, manifest=plugin.MANIFEST)
    drawn = harness.page("report")
    assert drawn is not None
    bank = PERSONAS["young_professional"].accounts.items[0].id  # type: ignore[union-attr]
    host, theirs = _host_title(app), drawn.title.zh_CN
    for seen in (host, theirs):
        assert re.fullmatch(r"[0-9a-f]{32}", seen), seen
    paid = _pay(app, host)
    assert paid.status_code == 201, paid.text
    assert paid.json()["result"]["reference"] == host
    assert harness.execute("shop.pay", {"account": theirs, "amount_fen": 100}).reference == theirs
    refused = _pay(app, bank, key="k-2")
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert (problem["code"], problem["field"]) == ("transaction.unknown_account", "params.account")
    with pytest.raises(TransactionRefused) as info:
        harness.execute("shop.pay", {"account": bank, "amount_fen": 100})
    assert info.value.code == "transaction.unknown_account"


def _pay(app: Any, account: str, key: str = "k-1") -> Any:
    body = msgspec.json.encode({"type": "shop.pay", "params": {"account": account, "amount_fen": 100}})
    headers = {"Authorization": f"Bearer {app.token(CUSTOMER)}", "Idempotency-Key": key,
               "Content-Type": "application/json"}
    return app.client.post("/v1/transactions", content=body, headers=headers)
