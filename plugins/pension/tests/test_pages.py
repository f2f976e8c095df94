"""The ``overview`` page: every account line by line, the room under this year's cap, the projection."""

from __future__ import annotations

from collections.abc import Callable

from fulcrum_pension.contribution import PERSONAL_CONTRIBUTION
from fulcrum_sdk import Page
from fulcrum_sdk.testing import PluginHarness

MakeHarness = Callable[..., PluginHarness]


def _lines(page: Page, key: str) -> dict[str, tuple[str | None, str | None, str | None]]:
    section = next(s for s in page.sections if s.key == key)
    return {
        line.label.zh_CN: (
            line.value.zh_CN if line.value else None,
            line.note.zh_CN if line.note else None,
            line.action.uri if line.action else None,
        )
        for line in section.lines
    }


def test_the_overview_lists_each_account_with_this_years_figures(make_harness: MakeHarness) -> None:
    """Social security, housing fund and personal pension, each with its balance and this year."""
    page = make_harness().page("overview")
    assert page is not None
    accounts = _lines(page, "accounts")
    assert list(accounts) == ["社保个人账户", "住房公积金", "个人养老金"]
    assert accounts["社保个人账户"][0] == "¥48,000.00"
    assert "累计缴费48个月" in (accounts["社保个人账户"][1] or "")
    assert accounts["住房公积金"][0] == "¥65,000.00"
    value, note, action = accounts["个人养老金"]
    assert value == "¥2,000.00"
    assert note is not None
    assert "已缴¥2,000.00，还可缴¥10,000.00" in note
    assert "每年上限¥12,000.00" in note
    assert action == "fulcrum://pension/personal/contribute"


def test_a_contribution_shows_at_once_and_a_full_cap_drops_the_action(make_harness: MakeHarness) -> None:
    """After contributing the rest of the room the balance includes it and there is nothing left to pay."""
    harness = make_harness()
    harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 1_000_000})
    page = harness.page("overview")
    assert page is not None
    value, note, action = _lines(page, "accounts")["个人养老金"]
    assert value == "¥12,000.00"
    assert note is not None
    assert "还可缴¥0.00" in note
    assert action is None


def test_the_projection_states_its_assumptions_and_adds_up(make_harness: MakeHarness) -> None:
    """The three monthly parts add up to the total in the title; the assumptions are the summary."""
    page = make_harness().page("overview")
    assert page is not None
    section = next(s for s in page.sections if s.key == "projection")
    assert section.summary is not None
    assert section.summary.zh_CN.startswith("假设：")
    parts = _lines(page, "projection")

    def fen(text: str | None) -> int:
        assert text is not None
        return int(text.lstrip("¥").replace(",", "").replace(".", ""))

    total = fen(parts.pop("合计（每月）")[0])
    assert sum(fen(v) for v, _, _ in parts.values()) == total
    assert f"每月约¥{total // 100:,}.{total % 100:02d}" in section.title.zh_CN


def test_a_retiree_has_no_projection_and_no_account_to_open_confusingly(make_harness: MakeHarness) -> None:
    """Past retirement age there is nothing to project; an account never opened says so."""
    page = make_harness("retiree").page("overview")
    assert page is not None
    assert [s.key for s in page.sections] == ["accounts"]
    assert _lines(page, "accounts")["个人养老金"][0] == "未开立"


def test_without_pension_read_the_page_says_there_is_nothing_to_show(make_harness: MakeHarness) -> None:
    """No ``pension:read``: a page saying so, without a single figure."""
    page = make_harness(scopes={"profile:basic"}).page("overview")
    assert page is not None
    assert page.sections == ()
    assert page.summary is not None
    assert "暂无" in page.summary.zh_CN


def test_other_paths_have_no_page(make_harness: MakeHarness) -> None:
    """The contribution form and articles are the app's own screens."""
    harness = make_harness()
    for path in ("personal/contribute", "articles/contribution-years", "overview/x", "Overview"):
        assert harness.page(path) is None


def test_the_feed_cards_link_to_the_overview(make_harness: MakeHarness) -> None:
    """Both account cards of the retirement feed open this page (the projection card's query is the app's)."""
    harness = make_harness()
    cards = [i for i in harness.feed_items("retirement") if i.key.startswith("pension-")]
    assert len(cards) == 2
    assert {i.action.uri.split("?")[0] for i in cards} == {"fulcrum://pension/overview"}


def test_the_projection_cards_link_opens_on_the_projection(make_harness: MakeHarness) -> None:
    """``overview?view=projection`` (the projection card) puts the projection first; the same sections."""
    harness = make_harness()
    card = next(i for i in harness.feed_items("retirement") if i.key == "pension-projection")
    path, _, query = card.action.uri.removeprefix("fulcrum://pension/").partition("?")
    view = dict(part.split("=", 1) for part in query.split("&"))
    page = harness.page(path, view)
    assert page is not None
    assert [s.key for s in page.sections] == ["projection", "accounts"]
    plain = harness.page("overview")
    assert plain is not None
    assert [s.key for s in plain.sections] == ["accounts", "projection"]
