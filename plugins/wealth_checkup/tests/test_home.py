"""Home offers: the entry, the score banner, and a popup only when the score drops or a mismatch appears."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec
import pytest
from fulcrum_sdk import SlotOffer
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PERSONAS, PluginHarness
from fulcrum_wealth_checkup.home import NOTICE_DAYS, _score_banner, home_slot_offers

MakeHarness = Callable[..., PluginHarness]

SINCE = 1_795_845_600  # the fixed clock in Unix seconds
PLACEMENTS = {"slot:home.banner", "slot:home.kingkong", "slot:home.popup"}
DATA = {"profile:risk", "holdings:read", "accounts:read"}


def _slots(offers: list[SlotOffer]) -> list[str]:
    return [o.slot for o in offers]


def _key(persona: str) -> str:
    return f"last-checkup:{PERSONAS[persona].id}"


def _popup_title(offers: list[SlotOffer]) -> str | None:
    """The popup's Chinese title, or ``None`` when the offers hold no popup."""
    return next((o.title.zh_CN for o in offers if o.slot == "home.popup/v1"), None)


def test_entry_and_banner_show_the_score(make_harness: MakeHarness) -> None:
    """The banner title invites to the report and its subtitle carries the score and weakest part."""
    offers = make_harness("young_family").home_slot_offers()
    assert _slots(offers) == ["home.kingkong/v1", "home.banner/v1"]
    banner = offers[1]
    assert banner.title.zh_CN == "查看您的财富体检报告"
    assert banner.subtitle is not None
    assert "84 分" in banner.subtitle.zh_CN
    assert "资产配置" in banner.subtitle.zh_CN
    assert banner.action.uri == "fulcrum://wealth-checkup/report"


def test_a_weaker_score_claims_the_banner_more_strongly(make_harness: MakeHarness) -> None:
    """Banner priority rises as the score falls."""
    weak = make_harness("affluent").home_slot_offers()[1]
    strong = make_harness("young_family").home_slot_offers()[1]
    assert weak.priority > strong.priority


def test_a_mismatch_pops_up_until_the_report_is_opened(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """A product above tolerance not yet told to the customer pops up, and again on the next visits (the
    host may not have shown it; its cap keeps it to once a day), until the customer opens the report."""
    harness = make_harness("affluent")
    first = harness.home_slot_offers()
    assert _slots(first)[-1] == "home.popup/v1"
    assert first[-1].title.zh_CN == "发现持仓超出您的风险承受能力"
    assert _slots(harness.home_slot_offers())[-1] == "home.popup/v1"
    assert harness.page("report") is not None
    assert storage.get(_key("affluent")) == {"score": 48, "mismatched": ["STK-TECH"]}
    assert "home.popup/v1" not in _slots(harness.home_slot_offers())


def test_a_report_read_before_any_home_page_leaves_nothing_to_pop_up(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """A customer who opens the report (a deep link, a search hit) before the home page ever scored them
    has seen the mismatch a first visit would tell: that is kept, and the home page offers no popup."""
    harness = make_harness("affluent")
    assert harness.page("report") is not None
    assert storage.get(_key("affluent")) == {"score": 48, "mismatched": ["STK-TECH"]}
    assert "home.popup/v1" not in _slots(harness.home_slot_offers())


def test_a_drop_read_in_the_report_before_the_home_page_is_not_news(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """The score fell from 90 to 84 and the customer opens the report before any home page: they have
    read the 84, so the next page offers no popup about the drop, and opening the report again writes
    nothing."""
    storage.put(_key("young_family"), {"score": 90, "mismatched": []})
    harness = make_harness("young_family")
    assert harness.page("report") is not None
    assert storage.get(_key("young_family")) == {"score": 84, "mismatched": []}
    assert _popup_title(harness.home_slot_offers()) is None
    writes: list[str] = []
    put = storage.put
    storage.put = lambda key, value: (writes.append(key), put(key, value))[1]  # type: ignore[method-assign]
    assert harness.page("report") is not None
    assert writes == []


def test_a_drop_the_host_did_not_show_is_offered_until_the_report_is_opened(
    make_harness: MakeHarness, storage: MemoryStorage, now: datetime
) -> None:
    """The popup slot went to another popup (or its cap was spent): the drop from 90 is offered again the
    next day, storing nothing more, and no longer once the customer opened the report."""
    storage.put(_key("young_family"), {"score": 90, "mismatched": []})
    assert _popup_title(make_harness("young_family").home_slot_offers()) == "您的财富健康分从 90 分降至 84 分"
    owed = storage.get(_key("young_family"))
    next_day = make_harness("young_family", now=now + timedelta(days=1))
    assert _popup_title(next_day.home_slot_offers()) == "您的财富健康分从 90 分降至 84 分"
    assert storage.get(_key("young_family")) == owed
    next_day.page("report", {"part": "allocation"})
    assert storage.get(_key("young_family")) == {"score": 84, "mismatched": []}
    assert _popup_title(next_day.home_slot_offers()) is None


def test_a_notice_not_seen_within_notice_days_is_dropped(
    make_harness: MakeHarness, storage: MemoryStorage, now: datetime
) -> None:
    """A week after the drop was found it is old news: no popup, and the notice is forgotten (once)."""
    storage.put(_key("young_family"), {"score": 90, "mismatched": []})
    make_harness("young_family").home_slot_offers()
    last_second = now + timedelta(days=NOTICE_DAYS) - timedelta(seconds=1)
    assert _popup_title(make_harness("young_family", now=last_second).home_slot_offers()) is not None
    stale = make_harness("young_family", now=now + timedelta(days=NOTICE_DAYS))
    assert _popup_title(stale.home_slot_offers()) is None
    assert storage.get(_key("young_family")) == {"score": 84, "mismatched": []}


def _owed(change: str, previous: int | None, since: int = SINCE - 3600) -> dict[str, object]:
    return {"change": change, "previous": previous, "since": since}


def test_a_further_drop_names_the_score_the_customer_knew_and_counts_anew(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """Owed a drop from 95 (last visit 88), now 84: the popup says 95 to 84, and the week starts again."""
    storage.put(_key("young_family"), {"score": 88, "mismatched": [], "notice": _owed("dropped", 95)})
    assert _popup_title(make_harness("young_family").home_slot_offers()) == "您的财富健康分从 95 分降至 84 分"
    assert storage.get(_key("young_family")) == {
        "score": 84, "mismatched": [], "notice": _owed("dropped", 95, SINCE),
    }


def test_a_score_back_to_what_the_customer_knew_owes_nothing(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """Owed a drop from 84, the score is back at 84: no popup, and the notice is forgotten."""
    storage.put(_key("young_family"), {"score": 80, "mismatched": [], "notice": _owed("dropped", 84)})
    assert _popup_title(make_harness("young_family").home_slot_offers()) is None
    assert storage.get(_key("young_family")) == {"score": 84, "mismatched": []}


@pytest.mark.parametrize(
    ("previous", "title"), [(84, None), (90, "您的财富健康分从 90 分降至 84 分"), (None, None)],
    ids=["score-as-known", "score-lower", "first-visit"],
)
def test_a_mismatch_sold_before_it_was_seen_is_no_longer_owed(
    make_harness: MakeHarness, storage: MemoryStorage, previous: int | None, title: str | None
) -> None:
    """Owed a mismatch the customer no longer holds: no mismatch popup; a drop from the score they knew
    is still told."""
    storage.put(
        _key("young_family"), {"score": 84, "mismatched": ["STK-TECH"], "notice": _owed("mismatch", previous)}
    )
    assert _popup_title(make_harness("young_family").home_slot_offers()) == title


def test_a_mismatch_outranks_an_owed_drop(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """Owed a drop from 60 when a new mismatch appears: the popup tells the mismatch."""
    storage.put(_key("affluent"), {"score": 50, "mismatched": [], "notice": _owed("dropped", 60)})
    assert _popup_title(make_harness("affluent").home_slot_offers()) == "发现持仓超出您的风险承受能力"
    assert storage.get(_key("affluent")) == {
        "score": 48, "mismatched": ["STK-TECH"], "notice": _owed("mismatch", 60, SINCE),
    }


def test_first_visit_without_a_mismatch_has_no_popup(make_harness: MakeHarness) -> None:
    """Nothing got worse for a first-time customer without mismatches, so no popup."""
    assert "home.popup/v1" not in _slots(make_harness("young_family").home_slot_offers())


def test_a_dropped_score_shows_a_popup(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """When the last remembered score was higher, the popup names both scores."""
    storage.put(f"last-checkup:{PERSONAS['young_family'].id}", {"score": 90, "mismatched": []})
    offers = make_harness("young_family").home_slot_offers()
    popup = offers[-1]
    assert popup.slot == "home.popup/v1"
    assert popup.title.zh_CN == "您的财富健康分从 90 分降至 84 分"
    assert storage.get(_key("young_family")) == {
        "score": 84, "mismatched": [], "notice": {"change": "dropped", "previous": 90, "since": SINCE},
    }


def test_a_risen_score_has_no_popup(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """An improvement is not worth interrupting the customer."""
    storage.put(f"last-checkup:{PERSONAS['young_family'].id}", {"score": 70, "mismatched": []})
    assert "home.popup/v1" not in _slots(make_harness("young_family").home_slot_offers())


def test_garbage_in_storage_is_treated_as_no_memory(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """A malformed remembered state never breaks the home page; it is replaced."""
    for garbage in (["not", "a", "dict"], {"score": "high"}, {"score": 50, "mismatched": 5}):
        storage.put(f"last-checkup:{PERSONAS['affluent'].id}", garbage)
        assert make_harness("affluent").home_slot_offers()[-1].slot == "home.popup/v1"
    assert storage.get(_key("affluent")) == {
        "score": 48, "mismatched": ["STK-TECH"],
        "notice": {"change": "mismatch", "previous": None, "since": SINCE},
    }


def test_without_the_popup_scope_no_popup_but_memory_is_kept(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """A plugin not granted the popup never offers one; it still remembers what the customer was shown."""
    offers = make_harness("affluent", scopes=(DATA | PLACEMENTS) - {"slot:home.popup"}).home_slot_offers()
    assert "home.popup/v1" not in _slots(offers)
    assert storage.get(f"last-checkup:{PERSONAS['affluent'].id}") is not None


def test_without_holdings_a_generic_banner_and_no_data_kept(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """Without ``holdings:read`` there is no score: a generic invitation, no popup, nothing stored."""
    offers = make_harness("affluent", scopes=PLACEMENTS | {"profile:risk"}).home_slot_offers()
    assert _slots(offers) == ["home.kingkong/v1", "home.banner/v1"]
    assert offers[1].title.zh_CN == "免费做一次财富体检"
    assert storage.get(f"last-checkup:{PERSONAS['affluent'].id}") is None


def test_offers_vanish_without_slot_scopes(make_harness: MakeHarness) -> None:
    """With data scopes but no placement scopes the plugin offers nothing."""
    assert make_harness("affluent", scopes=DATA).home_slot_offers() == []


def test_pages_with_one_score_share_one_banner_object(make_harness: MakeHarness) -> None:
    """The hook hands every page with the same score and weakest part the same banner object (the host
    then neither re-checks nor re-wraps it), and its content is what a fresh build gives."""
    pages = [asyncio.run(home_slot_offers(make_harness(name).context())) for name in ("young_family",) * 2]
    assert pages[0][1] is pages[1][1]
    fresh = _score_banner.__wrapped__(84, "allocation")
    assert msgspec.json.encode(pages[0][1]) == msgspec.json.encode(fresh)
