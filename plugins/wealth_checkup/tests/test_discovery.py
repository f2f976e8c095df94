"""Search hits and feed cards: what matches, what is suitable, and what needs which scope."""

from __future__ import annotations

from collections.abc import Callable

from fulcrum_sdk.testing import PluginHarness

MakeHarness = Callable[..., PluginHarness]


def test_search_finds_the_check_up_with_the_score(make_harness: MakeHarness) -> None:
    """ "财富体检" is an exact function hit whose subtitle carries the customer's score."""
    (hit,) = make_harness("young_family").search("财富体检")
    assert (hit.key, hit.kind, hit.relevance) == ("wealth-checkup", "function", 1.0)
    assert hit.subtitle is not None
    assert "84 分" in hit.subtitle.zh_CN


def test_search_finds_allocation_advice_and_the_article(make_harness: MakeHarness) -> None:
    """ "资产配置" matches the advice function and the quadrant article."""
    keys = {h.key for h in make_harness("young_family").search("资产配置")}
    assert keys == {"wealth-allocation", "article-household-quadrant"}


def test_search_offers_only_suitable_products(make_harness: MakeHarness) -> None:
    """An R4 index fund is found for a C4 customer, never for a C1 customer."""
    assert [h.key for h in make_harness("affluent").search("指数")] == ["product-WM-IDX-300"]
    assert make_harness("retiree").search("指数") == []


def test_expired_assessment_narrows_the_shelf_to_r1(make_harness: MakeHarness) -> None:
    """The retiree's assessment expired, so only R1 products are shown even though R2 would otherwise suit."""
    keys = {i.key for i in make_harness("retiree").feed_items("wealth") if i.kind == "product"}
    assert keys == {"product-WM-CASH-01", "product-WM-PROT-01"}


def test_search_never_offers_a_closed_product(make_harness: MakeHarness) -> None:
    """A product whose sale window ended is not a hit."""
    assert make_harness("affluent").search("稳盈") == []


def test_search_without_a_match_is_empty(make_harness: MakeHarness) -> None:
    """An unrelated query contributes nothing."""
    assert make_harness("affluent").search("信用卡还款") == []


def test_search_without_data_scopes_still_answers(make_harness: MakeHarness) -> None:
    """Without holdings the check-up hit is generic; without a risk profile only R1 products appear."""
    harness = make_harness("affluent", scopes={"search:contribute"})
    (hit,) = harness.search("体检")
    assert hit.subtitle is not None
    assert "分" not in hit.subtitle.zh_CN.replace("评估", "")
    assert make_harness("affluent", scopes={"search:contribute"}).search("指数") == []


def test_search_needs_its_placement_scope(make_harness: MakeHarness) -> None:
    """Without ``search:contribute`` the plugin contributes no hits."""
    assert make_harness("affluent", scopes={"holdings:read", "profile:risk"}).search("财富体检") == []


def test_education_feed_leads_with_the_weakest_part(make_harness: MakeHarness) -> None:
    """The article for the customer's weakest part has the top priority."""
    items = make_harness("affluent").feed_items("education")
    top = max(items, key=lambda i: i.priority)
    assert top.key == "article-diversify"
    assert all(i.column == "education" for i in items)


def test_wealth_feed_puts_the_score_first_and_fills_the_shortfall(make_harness: MakeHarness) -> None:
    """The score card ranks first; products of the most under-weight class come next."""
    items = make_harness("young_family").feed_items("wealth")
    assert items[0].key == "wealth-checkup-score"
    assert items[0].priority == 500
    boosted = {i.key for i in items if i.priority == 300}
    assert boosted == {"product-WM-PLUS-02"}  # growth is short for the C2 family; the R2 growth product suits
    assert {"product-WM-BAL-03", "product-WM-IDX-300"}.isdisjoint(i.key for i in items)  # R3, R4: above C2


def test_feed_ignores_other_columns(make_harness: MakeHarness) -> None:
    """Columns the plugin does not serve get nothing."""
    assert make_harness("affluent").feed_items("life") == []


def test_feed_needs_its_placement_scope(make_harness: MakeHarness) -> None:
    """Without ``feed:contribute`` the plugin contributes no cards."""
    assert make_harness("affluent", scopes={"holdings:read"}).feed_items("education") == []
