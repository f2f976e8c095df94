"""The check-up's pages: the full report, line by line, and a listed product with its suitability."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import msgspec
from fulcrum_sdk import Page
from fulcrum_sdk.data import CustomerRecord, Holding, Holdings, RiskProfile
from fulcrum_sdk.testing import PERSONAS, PluginHarness
from fulcrum_wealth_checkup.scoring import WEIGHTS

MakeHarness = Callable[..., PluginHarness]


def _verdict(page: Page) -> str | None:
    return {label: value for label, value, _ in _section(page, "terms")}["适当性"]


def _section(page: Page, key: str) -> list[tuple[str, str | None, str | None]]:
    found = next(s for s in page.sections if s.key == key)
    return [
        (line.label.zh_CN, line.value.zh_CN if line.value else None, line.note.zh_CN if line.note else None)
        for line in found.lines
    ]


def test_the_report_explains_every_part_and_matches_the_banner(make_harness: MakeHarness) -> None:
    """Each of the five parts is a line with its score, weight and finding; the summary's score is the
    banner's, and the advice starts with the weakest part (the one the banner names)."""
    harness = make_harness("young_family")
    banner = harness.home_slot_offers()[1]
    page = harness.page("report")
    assert page is not None
    assert page.title.zh_CN == "财富体检报告"
    assert page.summary is not None
    assert "健康分 84 分" in page.summary.zh_CN
    assert "84 分" in (banner.subtitle.zh_CN if banner.subtitle else "")
    parts = _section(page, "parts")
    assert [p[0] for p in parts] == ["资产配置", "集中度", "应急资金", "风险匹配", "闲置资金"]
    for (_, value, finding), weight in zip(parts, WEIGHTS.values(), strict=True):
        assert value is not None
        assert value.endswith(f"权重{weight}%")
        assert finding
    advice = _section(page, "advice")
    assert advice[0][0] == "资产配置"  # the banner's "最需关注：资产配置"
    assert all(note for _, _, note in advice)


def test_the_mix_is_shown_against_the_target_for_each_class(make_harness: MakeHarness) -> None:
    """Four lines, spending / protection / growth / preservation, each with the current and target share."""
    page = make_harness("young_family").page("report")
    assert page is not None
    mix = _section(page, "mix")
    assert [m[0] for m in mix] == ["活钱", "保障", "生钱", "保值"]
    assert all(v is not None and v.startswith("当前") and "目标" in v for _, v, _ in mix)


def test_holdings_above_tolerance_are_listed(make_harness: MakeHarness) -> None:
    """The affluent persona's R5 stock (C4) is named in a suitability section, by its name and risk
    level as in the suitability finding, though it is not in the catalogue; a customer without
    mismatches has none."""
    page = make_harness("affluent").page("report")
    assert page is not None
    assert _section(page, "suitability") == [("单一科技股", "R5 · ¥1,800,000.00", "高于您的风险承受能力")]
    line = next(s for s in page.sections if s.key == "suitability").lines[0]
    assert line.label.en == "Single tech stock"
    clean = make_harness("young_family").page("report")
    assert clean is not None
    assert "suitability" not in {s.key for s in clean.sections}


def test_without_account_access_balance_parts_are_not_assessed(make_harness: MakeHarness) -> None:
    """Without ``accounts:read`` liquidity and idle cash are lines saying why, not guesses."""
    page = make_harness("young_family", scopes={"holdings:read", "profile:risk"}).page("report")
    assert page is not None
    parts = _section(page, "parts")
    assert ("应急资金", "未评估", "需要您授权读取账户余额与收支后评估") in parts
    assert ("闲置资金", "未评估", "需要您授权读取账户余额与收支后评估") in parts


def test_without_holdings_the_report_says_there_is_nothing_to_check(make_harness: MakeHarness) -> None:
    """No ``holdings:read`` (or no holdings): a page that says so, not an error."""
    page = make_harness("young_family", scopes={"profile:risk"}).page("report")
    assert page is not None
    assert page.sections == ()
    assert page.summary is not None
    assert "暂无可体检的持仓" in page.summary.zh_CN


def test_a_product_page_gives_its_terms_and_whether_the_customer_may_buy(make_harness: MakeHarness) -> None:
    """The terms in fen-exact yuan, and suitability against the customer's tolerance."""
    page = make_harness("young_professional").page("products/WM-CASH-01")
    assert page is not None
    assert page.title.zh_CN == "朝朝宝现金管理"
    terms = {label: value for label, value, _ in _section(page, "terms")}
    assert terms["起购金额"] == "¥1.00"
    assert terms["递增金额"] == "¥0.01"
    assert terms["风险等级"] == "R1"
    assert terms["适当性"] == "符合您的风险承受能力（C3）"
    above = make_harness("young_professional").page("products/WM-IDX-300")
    assert above is not None
    assert (_verdict(above) or "").endswith("不能购买")


def test_an_expired_or_missing_assessment_asks_for_a_new_one(make_harness: MakeHarness) -> None:
    """A lapsed questionnaire (the retiree's ended in 2025) or none granted blocks purchases, and the
    page says what to do."""
    for harness in (make_harness("retiree"), make_harness("young_professional", scopes={"holdings:read"})):
        page = harness.page("products/WM-CASH-01")
        assert page is not None
        assert _verdict(page) == "请先完成风险承受能力评估"
    current = msgspec.structs.replace(
        PERSONAS["retiree"],
        risk=RiskProfile(tolerance="C1", assessed_on=date(2026, 1, 5), expires_on=date(2027, 1, 5)),
    )
    assert isinstance(current, CustomerRecord)
    page = make_harness(current).page("products/WM-CASH-01")
    assert page is not None
    assert _verdict(page) == "符合您的风险承受能力（C1）"


def test_unknown_paths_and_products_have_no_page(make_harness: MakeHarness) -> None:
    """Articles are the app's; an unlisted product id or an unknown path is ``None`` (404)."""
    harness = make_harness("affluent")
    assert harness.page("products/NOPE-1") is None
    assert harness.page("products/") is None
    assert harness.page("articles/asset-allocation") is None
    assert harness.page("reports") is None


def test_every_product_link_in_the_feed_opens_a_page(make_harness: MakeHarness) -> None:
    """The feed's product cards link to pages that exist."""
    harness = make_harness("affluent")
    prefix = "fulcrum://wealth-checkup/"
    links = [i.action.uri for i in harness.feed_items("wealth") if i.action.uri.startswith(prefix)]
    assert links
    for uri in links:
        assert harness.page(uri.removeprefix(prefix)) is not None, uri


def test_the_shown_mix_adds_up_and_agrees_with_the_allocation_finding(make_harness: MakeHarness) -> None:
    """A mix of 12.5 % / 12.5 % / 37.5 % / 37.5 % rounded class by class would show 13 + 13 + 38 + 38
    = 102 %; the page shows the shares the allocation finding shows, which add up to 100 %."""
    eighth = 1_000_000
    record = msgspec.structs.replace(
        PERSONAS["young_family"],
        accounts=None,
        holdings=Holdings(items=tuple(
            msgspec.convert({
                "product_id": pid, "name": {"zh-CN": pid}, "issuer": "bank", "product_type": ptype,
                "asset_class": cls, "risk_level": "R1", "market_value_fen": fen,
            }, Holding)
            for pid, ptype, cls, fen in (
                ("A", "money_market_fund", "cash", eighth),
                ("B", "insurance", "protection", eighth),
                ("C", "equity_fund", "growth", 3 * eighth),
                ("D", "time_deposit", "preservation", 3 * eighth),
            )
        )),
    )
    page = make_harness(record).page("report")
    assert page is not None
    shown = [int(v.removeprefix("当前").split("%")[0]) for _, v, _ in _section(page, "mix") if v]
    assert sum(shown) == 100
    finding = next(n for label, _, n in _section(page, "parts") if label == "资产配置")
    assert finding is not None
    names = ("活钱", "保障", "生钱", "保值")
    assert all(f"{name} {pct}%" in finding for name, pct in zip(names, shown, strict=True))


def test_a_link_to_a_part_opens_the_report_on_it(make_harness: MakeHarness) -> None:
    """``report?part=allocation`` (the search hit for 资产配置) opens on the mix; ``suitability`` on the
    holdings above tolerance; no or another part keeps the parts first. The sections are the same."""
    harness = make_harness("affluent")
    pages = {part: harness.page("report", {"part": part} if part else None)
             for part in ("", "allocation", "suitability", "nonsense")}
    keys = {part: [s.key for s in page.sections] if page else None for part, page in pages.items()}
    assert keys[""] == ["parts", "advice", "mix", "suitability"]
    assert keys["allocation"] == ["mix", "parts", "advice", "suitability"]
    assert keys["suitability"] == ["suitability", "parts", "advice", "mix"]
    assert pages["nonsense"] == pages[""]
