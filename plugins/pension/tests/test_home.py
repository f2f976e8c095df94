"""Home offers: the pension entry always, the year-end notice only when it helps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from fulcrum_pension.contribution import PERSONAL_CONTRIBUTION
from fulcrum_pension.home import home_slot_offers
from fulcrum_sdk import SlotOffer
from fulcrum_sdk.testing import PluginHarness

MakeHarness = Callable[..., PluginHarness]
OCTOBER_END = datetime(2026, 10, 31, 15, 59, tzinfo=UTC)  # 23:59 on 31 October in China
NOVEMBER_START = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 00:00 on 1 November in China


def _by_slot(offers: list[SlotOffer]) -> dict[str, SlotOffer]:
    return {o.slot: o for o in offers}


def test_kingkong_entry_shows_the_room_left(make_harness: MakeHarness) -> None:
    """The grid entry opens the overview and mentions this year's room."""
    entry = _by_slot(make_harness().home_slot_offers())["home.kingkong/v1"]
    assert entry.title.zh_CN == "养老"
    assert entry.action.uri == "fulcrum://pension/overview"
    assert entry.subtitle is not None
    assert entry.subtitle.zh_CN == "今年还可缴 ¥10,000.00"


def test_year_end_notice_names_the_room_and_expires_with_the_year(make_harness: MakeHarness) -> None:
    """In late November the notice says what is left and is valid to the end of 31 December China time
    (``valid_until`` is exclusive: midnight starting 1 January)."""
    notice = _by_slot(make_harness().home_slot_offers())["home.notice/v1"]
    assert "¥10,000.00" in notice.title.zh_CN
    assert notice.action.uri == "fulcrum://pension/personal/contribute"
    assert notice.valid_until == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)


def test_the_notice_starts_on_the_first_of_november_china_time(make_harness: MakeHarness) -> None:
    """At 23:59 on 31 October there is no notice; a minute later there is."""
    assert "home.notice/v1" not in _by_slot(make_harness(now=OCTOBER_END).home_slot_offers())
    assert "home.notice/v1" in _by_slot(make_harness(now=NOVEMBER_START).home_slot_offers())


def test_no_notice_once_the_cap_is_used(make_harness: MakeHarness) -> None:
    """After contributing the remaining room, the notice disappears and the entry drops its subtitle."""
    harness = make_harness()
    harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 1_000_000})
    offers = _by_slot(harness.home_slot_offers())
    assert "home.notice/v1" not in offers
    assert offers["home.kingkong/v1"].subtitle is None


def test_no_notice_without_an_open_account(make_harness: MakeHarness) -> None:
    """A customer with no personal pension account sees the entry only."""
    assert list(_by_slot(make_harness("business_owner").home_slot_offers())) == ["home.kingkong/v1"]


def test_without_pension_read_only_a_plain_entry(make_harness: MakeHarness) -> None:
    """Without the data scope the plugin still offers its entry, with no figures and no notice."""
    offers = make_harness(scopes={"slot:home.kingkong", "slot:home.notice"}).home_slot_offers()
    assert [o.slot for o in offers] == ["home.kingkong/v1"]
    assert offers[0].subtitle is None


def test_offers_vanish_without_slot_scopes(make_harness: MakeHarness) -> None:
    """With data but no placement scopes the plugin offers nothing."""
    assert make_harness(scopes={"pension:read"}).home_slot_offers() == []


def test_the_notice_follows_the_calendar_year_china_time(make_harness: MakeHarness) -> None:
    """On 1 December 2027 China time the notice is keyed to and expires with 2027, not 2026."""
    offers = _by_slot(make_harness(now=datetime(2027, 11, 30, 16, 0, tzinfo=UTC)).home_slot_offers())
    notice = offers["home.notice/v1"]
    assert notice.key == "pension-year-end-2027"
    assert notice.valid_until == datetime(2027, 12, 31, 16, 0, tzinfo=UTC)
    assert offers["home.kingkong/v1"].subtitle is not None


def test_the_room_is_formatted_the_same_in_both_offers(make_harness: MakeHarness) -> None:
    """The entry and the notice name the same remaining room, in Chinese and English."""
    harness = make_harness()
    harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 123_456})
    offers = _by_slot(harness.home_slot_offers())
    entry, notice = offers["home.kingkong/v1"], offers["home.notice/v1"]
    assert entry.subtitle is not None
    assert entry.subtitle.zh_CN == "今年还可缴 ¥8,765.44"
    assert entry.subtitle.en == "¥8,765.44 left this year"
    assert notice.title.zh_CN.startswith("个人养老金今年还可缴存 ¥8,765.44，")
    assert notice.title.en is not None
    assert notice.title.en.startswith("¥8,765.44 of personal pension room left this year")


def test_pages_with_the_same_room_share_their_offers(make_harness: MakeHarness) -> None:
    """Two pages with the same room left get the same entry and notice objects (the host then neither
    re-checks nor re-wraps them); their content is checked by the tests above."""
    first, second = (asyncio.run(home_slot_offers(make_harness().context())) for _ in range(2))
    assert [o.slot for o in first] == ["home.kingkong/v1", "home.notice/v1"]
    assert all(a is b for a, b in zip(first, second, strict=True))
