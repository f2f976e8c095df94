"""Search hits and the retirement feed, with and without the optional ``profile:basic``."""

from __future__ import annotations

from collections.abc import Callable

from fulcrum_sdk.testing import PluginHarness

MakeHarness = Callable[..., PluginHarness]
REQUIRED = {
    "pension:read",
    "transactions:write",
    "slot:home.kingkong",
    "slot:home.notice",
    "search:contribute",
    "feed:contribute",
}


def test_search_personal_pension_shows_the_room(make_harness: MakeHarness) -> None:
    """ "个人养老金" finds the contribution function with this year's room, ranked as an exact match."""
    hits = {h.key: h for h in make_harness().search("个人养老金")}
    hit = hits["pension-contribute"]
    assert hit.relevance == 1.0
    assert hit.subtitle is not None
    assert "¥10,000.00" in hit.subtitle.zh_CN


def test_search_social_security_and_housing_fund(make_harness: MakeHarness) -> None:
    """ "社保" and "公积金" each find their service, in Chinese or English."""
    assert "pension-social-security" in {h.key for h in make_harness().search("社保")}
    assert "pension-housing-fund" in {h.key for h in make_harness().search("housing fund")}


def test_search_without_a_match_is_empty(make_harness: MakeHarness) -> None:
    """An unrelated query contributes nothing."""
    assert make_harness().search("信用卡") == []


def test_search_without_pension_read_is_generic(make_harness: MakeHarness) -> None:
    """Without data the contribution hit explains the cap instead of the customer's room."""
    hits = make_harness(scopes={"search:contribute"}).search("个人养老金")
    (hit,) = [h for h in hits if h.key == "pension-contribute"]
    assert hit.subtitle is not None
    assert hit.subtitle.zh_CN == "每年最高缴存 ¥12,000.00，可抵扣个税"


def test_retirement_feed_has_overview_projection_and_articles(make_harness: MakeHarness) -> None:
    """The column leads with the accounts, then the projection with its assumptions, then articles."""
    items = make_harness().feed_items("retirement")
    assert [i.key for i in items[:2]] == ["pension-overview", "pension-projection"]
    overview, projection = items[0], items[1]
    assert overview.summary is not None
    assert "社保个人账户 ¥48,000.00" in overview.summary.zh_CN
    assert "今年已缴 ¥2,000.00" in overview.summary.zh_CN
    assert projection.summary is not None
    assert projection.summary.zh_CN.startswith("假设：63岁退休")
    assert all(i.column == "retirement" for i in items)


def test_retiree_gets_no_projection(make_harness: MakeHarness) -> None:
    """Past retirement age the overview remains but no projection is offered."""
    keys = [i.key for i in make_harness("retiree").feed_items("retirement")]
    assert "pension-overview" in keys
    assert "pension-projection" not in keys


def test_articles_follow_the_segment_only_with_profile_basic(make_harness: MakeHarness) -> None:
    """With ``profile:basic`` the affluent customer's tax article ranks up; without it all are equal."""
    with_profile = {i.key: i.priority for i in make_harness("affluent").feed_items("retirement")}
    without = {i.key: i.priority for i in make_harness("affluent", scopes=REQUIRED).feed_items("retirement")}
    assert with_profile["article-personal-pension-tax"] == 300
    assert {k: v for k, v in without.items() if k.startswith("article-")} == dict.fromkeys(
        (k for k in without if k.startswith("article-")), 100
    )


def test_feed_without_pension_read_is_articles_only(make_harness: MakeHarness) -> None:
    """Without the data scope the column still has the planning articles."""
    items = make_harness(scopes={"feed:contribute"}).feed_items("retirement")
    assert items
    assert all(i.key.startswith("article-") for i in items)


def test_feed_ignores_other_columns(make_harness: MakeHarness) -> None:
    """Columns the plugin does not serve get nothing."""
    assert make_harness().feed_items("life") == []


def test_the_overview_counts_contributions_made_here_in_the_balance(make_harness: MakeHarness) -> None:
    """After a ¥1,000.00 contribution through the platform, this year's total and the balance both
    include it: the balance never reads below what was contributed this year."""
    from fulcrum_pension.contribution import PERSONAL_CONTRIBUTION
    from fulcrum_sdk.money import yuan
    from fulcrum_sdk.testing import PERSONAS

    pension = PERSONAS["young_professional"].pension
    assert pension is not None
    account = pension.personal_pension
    assert account is not None
    harness = make_harness()
    harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 100_000})
    summary = harness.feed_items("retirement")[0].summary
    assert summary is not None
    assert f"个人养老金 {yuan(account.balance_fen + 100_000)}（今年已缴 ¥3,000.00）" in summary.zh_CN
