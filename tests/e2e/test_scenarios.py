"""The three scenario plugins end to end over HTTP, for demo customers in three branches.

Customers (from the demo bank's seed):

- ``c-0755-001`` 深圳, young professional, C3, holds an R4 fund, consented to merchant offers;
- ``c-021-002`` 上海, young family, C2, consented to merchant offers;
- ``c-028-001`` 成都, young professional, no personal pension account, no consent for merchant offers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fulcrum_sdk.scopes import slot_scope

from .conftest import Demo

SZ, SH, CD = "c-0755-001", "c-021-002", "c-028-001"
PLUGINS = {"wealth-checkup", "pension", "merchant-promo"}


def _keys(home: dict[str, Any], slot: str, plugin: str | None = None) -> list[str]:
    return [i["key"] for i in home["slots"][slot] if plugin is None or i["plugin"] == plugin]


def _plugins(items: list[dict[str, Any]]) -> set[str]:
    return {i["plugin"] for i in items}


def test_the_three_plugins_are_installed_and_offer_their_transactions(demo: Demo) -> None:
    """Each plugin is loaded from its entry point and its transaction type is offered to the app."""
    assert {p.id for p in demo.runtime.plugins.enabled_for("home_slot_offers")} >= PLUGINS
    types = {t["key"]: t["plugin"] for t in demo.get(SZ, "/v1/transaction-types")["items"]}
    assert types.items() >= {
        ("wealth.rebalance_order", "wealth-checkup"),
        ("pension.personal_contribution", "pension"),
        ("merchant.redeem_coupon", "merchant-promo"),
    }


def test_home_differs_by_city_holdings_pension_and_consent(demo: Demo) -> None:
    """Each customer's home page holds what their city, holdings, accounts and consents warrant."""
    sz, sh, cd = (demo.get(c, "/v1/home") for c in (SZ, SH, CD))
    for home in (sz, sh, cd):
        assert home["degraded"] == []
        assert {"wealth-checkup-entry", "pension-entry"} <= set(_keys(home, "home.kingkong/v1"))
        assert "wealth-checkup-banner" in _keys(home, "home.banner/v1")
    assert set(_keys(sz, "home.banner/v1", "merchant-promo")) == {"coupon-SZ-TEA-10", "coupon-SZ-ROAST-30"}
    assert _keys(sh, "home.banner/v1", "merchant-promo") == ["coupon-SH-CAFE-12"]
    assert _keys(cd, "home.banner/v1", "merchant-promo") == []  # no consent to the city: nothing
    assert _keys(sz, "home.popup/v1") == ["wealth-checkup-mismatch"]  # an R4 fund held at C3
    assert _keys(sh, "home.popup/v1") == []
    assert _keys(sz, "home.notice/v1") == _keys(sh, "home.notice/v1") == ["pension-year-end-2026"]
    assert _keys(cd, "home.notice/v1") == []  # no personal pension account to remind about
    scores = {
        c: next(i for i in h["slots"]["home.banner/v1"] if i["plugin"] == "wealth-checkup")["subtitle"]
        for c, h in ((SZ, sz), (SH, sh), (CD, cd))
    }
    assert len(set(map(str, scores.values()))) == 3  # each customer's own score


def test_the_mismatch_popup_is_shown_once(demo: Demo) -> None:
    """The wealth popup appears on the first visit that finds the mismatch, not on the next."""
    assert _keys(demo.get(SZ, "/v1/home"), "home.popup/v1") == ["wealth-checkup-mismatch"]
    assert _keys(demo.get(SZ, "/v1/home"), "home.popup/v1") == []


def test_a_change_the_popup_slot_did_not_show_is_shown_on_a_later_day(demo: Demo) -> None:
    """The day's popup was shown and its report opened; the score then drops (the stored one set to 60):
    that page's popup is capped, but the next day's tells the drop, until the report is opened."""
    assert _keys(demo.get(SZ, "/v1/home"), "home.popup/v1") == ["wealth-checkup-mismatch"]
    demo.get(SZ, "/v1/pages/wealth-checkup/report")
    assert _keys(demo.get(SZ, "/v1/home"), "home.popup/v1") == []
    storage = demo.runtime.contexts.storage("wealth-checkup")
    storage.put(f"last-checkup:{SZ}", {"score": 60, "mismatched": ["EQF-310"]})
    assert _keys(demo.get(SZ, "/v1/home"), "home.popup/v1") == []  # the day's popup is spent
    demo.now += timedelta(hours=25)
    popups = demo.get(SZ, "/v1/home")["slots"]["home.popup/v1"]
    assert [(p["key"], p["title"]["en"]) for p in popups] == [
        ("wealth-checkup-dropped", "Your wealth score fell from 60 to 50"),
    ]
    demo.get(SZ, "/v1/pages/wealth-checkup/report")
    demo.now += timedelta(hours=25)
    assert _keys(demo.get(SZ, "/v1/home"), "home.popup/v1") == []


def test_search_differs_by_city_and_consent(demo: Demo) -> None:
    """Deals ("优惠") follow the customer's city, none without consent; "财富体检" finds each one's score."""
    deals = {c: {i["key"] for i in demo.get(c, "/v1/search", q="优惠")["items"]} for c in (SZ, SH, CD)}
    assert deals[SZ] == {"coupon-SZ-TEA-10", "coupon-SZ-ROAST-30", "coupon-SZ-MART-20"}
    assert deals[SH] == {"coupon-SH-CAFE-12", "coupon-SH-NOODLE-15", "coupon-SH-METRO-5"}
    assert deals[CD] == set()
    checkups = [demo.get(c, "/v1/search", q="财富体检")["items"] for c in (SZ, SH, CD)]
    firsts = [next(i for i in items if i["key"] == "wealth-checkup") for items in checkups]
    assert len({str(hit["subtitle"]) for hit in firsts}) == 3
    pension = demo.get(SZ, "/v1/search", q="个人养老金")["items"]
    assert "pension-contribute" in {i["key"] for i in pension}


def test_feeds_differ_by_city_and_accounts(demo: Demo) -> None:
    """The life column follows the city and consent; retirement and wealth follow each customer's accounts."""
    life = {c: [i["key"] for i in demo.get(c, "/v1/feeds/life")["items"]] for c in (SZ, SH, CD)}
    assert set(life[SZ]) == {"coupon-SZ-TEA-10", "coupon-SZ-ROAST-30", "coupon-SZ-MART-20"}
    assert set(life[SH]) == {"coupon-SH-CAFE-12", "coupon-SH-NOODLE-15", "coupon-SH-METRO-5"}
    assert life[CD] == []
    overviews = []
    for c in (SZ, SH, CD):
        retirement = demo.get(c, "/v1/feeds/retirement")["items"]
        assert _plugins(retirement) == {"pension"}
        overviews.append(str(next(i for i in retirement if i["key"] == "pension-overview")["summary"]))
    assert len(set(overviews)) == 3
    wealth = [demo.get(c, "/v1/feeds/wealth")["items"][0] for c in (SZ, SH, CD)]
    assert [w["key"] for w in wealth] == ["wealth-checkup-score"] * 3
    education = demo.get(SZ, "/v1/feeds/education")["items"]
    assert _plugins(education) == {"wealth-checkup"}


def test_rebalance_order_over_http(demo: Demo) -> None:
    """A suitable order succeeds once per key; the host refuses an unsuitable one before the plugin runs."""
    order = {"product_id": "WM-FIX-30", "amount_fen": 100_000}
    created = demo.transact(SZ, "wealth.rebalance_order", order, key="order-1")
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "succeeded"
    replay = demo.transact(SZ, "wealth.rebalance_order", order, key="order-1")
    assert replay.json() == created.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    risky = demo.transact(
        SZ, "wealth.rebalance_order", {"product_id": "WM-IDX-300", "amount_fen": 10_000}, key="order-2"
    )
    assert (risky.status_code, risky.json()["code"]) == (422, "suitability.risk_too_high")
    closed = demo.transact(
        SZ, "wealth.rebalance_order", {"product_id": "WM-FIX-365", "amount_fen": 1_000_000}, key="order-3"
    )
    assert (closed.status_code, closed.json()["code"], closed.json()["field"]) == (
        422,
        "wealth.product_closed",
        "params.product_id",
    )


def test_rebalance_step_error_is_a_client_error(demo: Demo) -> None:
    """An amount off the product's step is a 422 before anything is journaled, and says why."""
    response = demo.transact(
        SZ, "wealth.rebalance_order", {"product_id": "WM-FIX-30", "amount_fen": 150}, key="order-step"
    )
    assert (response.status_code, response.json()["code"]) == (422, "transaction.invalid_params")
    assert "amount_fen" in response.json()["detail"]


def test_rebalance_step_error_names_the_amount_field(demo: Demo) -> None:
    """The problem's ``field`` points at ``params.amount_fen``, not just ``params``."""
    response = demo.transact(
        SZ, "wealth.rebalance_order", {"product_id": "WM-FIX-30", "amount_fen": 150}, key="order-field"
    )
    assert response.json()["field"] == "params.amount_fen"


def test_personal_contribution_over_http(demo: Demo) -> None:
    """The cap refusal names the room left; the exact room succeeds; the year-end notice then goes away."""
    over = demo.transact(SZ, "pension.personal_contribution", {"amount_fen": 1_000_001}, key="pp-1")
    assert (over.status_code, over.json()["code"], over.json()["field"]) == (
        422,
        "pension.annual_cap_exceeded",
        "params.amount_fen",
    )
    assert "¥10,000.00" in over.json()["message"]["zh-CN"]
    exact = demo.transact(SZ, "pension.personal_contribution", {"amount_fen": 1_000_000}, key="pp-2")
    assert exact.status_code == 201, exact.text
    assert _keys(demo.get(SZ, "/v1/home"), "home.notice/v1") == []
    fraction = demo.transact(SH, "pension.personal_contribution", {"amount_fen": 1.5}, key="pp-3")
    assert (fraction.status_code, fraction.json()["field"]) == (422, "params.amount_fen")
    no_account = demo.transact(CD, "pension.personal_contribution", {"amount_fen": 100}, key="pp-4")
    assert (no_account.status_code, no_account.json()["code"]) == (422, "pension.account_not_opened")


def test_redeem_coupon_over_http(demo: Demo) -> None:
    """A local coupon is claimed once per key; wrong city and missing consent are refused with reasons."""
    claim = demo.transact(SH, "merchant.redeem_coupon", {"coupon_id": "SH-CAFE-12"}, key="cp-1")
    assert claim.status_code == 201, claim.text
    again = demo.transact(SH, "merchant.redeem_coupon", {"coupon_id": "SH-CAFE-12"}, key="cp-1")
    assert again.json() == claim.json()
    banner = next(
        i for i in demo.get(SH, "/v1/home")["slots"]["home.banner/v1"] if i["key"] == "coupon-SH-CAFE-12"
    )
    assert "剩余 799 张" in banner["subtitle"]["zh-CN"]
    elsewhere = demo.transact(SH, "merchant.redeem_coupon", {"coupon_id": "SZ-TEA-10"}, key="cp-2")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (422, "merchant.wrong_city")
    no_consent = demo.transact(CD, "merchant.redeem_coupon", {"coupon_id": "CD-TEA-8"}, key="cp-3")
    assert (no_consent.status_code, no_consent.json()["code"]) == (422, "merchant.city_unknown")
    unknown = demo.transact(SH, "merchant.redeem_coupon", {"coupon_id": "SH-NOPE"}, key="cp-4")
    assert (unknown.status_code, unknown.json()["code"]) == (422, "transaction.invalid_params")


def test_the_partner_keeps_state_under_a_pseudonym(demo: Demo) -> None:
    """The merchant plugin's per-customer counter is keyed by the pairwise id, never the bank's id."""
    assert (
        demo.transact(SH, "merchant.redeem_coupon", {"coupon_id": "SH-METRO-5"}, key="cp-9").status_code
        == 201
    )
    storage = demo.runtime.contexts.storage("merchant-promo")
    pairwise = demo.runtime.contexts.pairwise_id("merchant-promo", SH)
    assert pairwise != SH
    assert storage.counter(f"redeemed:SH-METRO-5:{pairwise}") == 1
    assert storage.counter(f"redeemed:SH-METRO-5:{SH}") == 0


def test_slots_need_placement_scopes(demo: Demo) -> None:
    """Every item on the home page comes from a plugin granted that slot's placement scope."""
    home = demo.get(SZ, "/v1/home")
    granted = {p.id: p.granted for p in demo.runtime.plugins.enabled_for("home_slot_offers")}
    for slot, items in home["slots"].items():
        for item in items:
            assert slot_scope(slot) in granted[item["plugin"]]


def test_the_deep_links_on_each_home_page_open_their_pages(demo: Demo) -> None:
    """The check-up banner opens the whole report, the pension entry its overview, for each customer:
    the report's score is the banner's, and the pension overview differs by what each customer holds."""
    for customer in (SZ, SH, CD):
        home = demo.get(customer, "/v1/home")
        banner = next(i for i in home["slots"]["home.banner/v1"] if i["plugin"] == "wealth-checkup")
        entry = next(i for i in home["slots"]["home.kingkong/v1"] if i["plugin"] == "pension")
        report = demo.get(customer, "/v1/pages/" + banner["action"]["uri"].removeprefix("fulcrum://"))
        score = banner["subtitle"]["zh-CN"].split(" 分")[0].removeprefix("健康分 ")
        assert report["page"]["summary"]["zh-CN"].startswith(f"健康分 {score} 分")
        assert [s["key"] for s in report["page"]["sections"]][:3] == ["parts", "advice", "mix"]
        overview = demo.get(customer, "/v1/pages/" + entry["action"]["uri"].removeprefix("fulcrum://"))
        accounts = {line["label"]["zh-CN"]: line for line in overview["page"]["sections"][0]["lines"]}
        assert accounts["个人养老金"]["value"] is not None
        if customer == CD:  # no personal pension account
            assert accounts["个人养老金"]["value"]["zh-CN"] == "未开立"
        else:
            assert accounts["个人养老金"]["action"] == {"uri": "fulcrum://pension/personal/contribute"}
    sz = demo.get(SZ, "/v1/pages/wealth-checkup/report")["page"]
    assert "suitability" in {s["key"] for s in sz["sections"]}  # the R4 fund held at C3
    banners = demo.get(SZ, "/v1/home")["slots"]["home.banner/v1"]
    coupon = next(i for i in banners if i["plugin"] == "merchant-promo")
    terms = demo.get(SZ, "/v1/pages/" + coupon["action"]["uri"].removeprefix("fulcrum://"))["page"]["sections"][0]
    status = {line["label"]["zh-CN"]: line["value"]["zh-CN"] for line in terms["lines"]}["状态"]
    assert status == "可领取"
    elsewhere = demo.get(CD, "/v1/pages/" + coupon["action"]["uri"].removeprefix("fulcrum://"))["page"]
    chengdu = {line["label"]["zh-CN"]: line["value"]["zh-CN"] for line in elsewhere["sections"][0]["lines"]}
    assert chengdu["状态"].startswith("仅限深圳使用")  # no consent to the city: it asks, never guesses
