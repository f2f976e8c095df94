"""The result check remembers valid values: equal values skip the round trip, invalid ones never do."""

from __future__ import annotations

import pytest
from fulcrum_sdk import _validate
from fulcrum_sdk._validate import ResultError, check_list
from fulcrum_sdk.models import Action, LocalizedText, SlotOffer, Targeting


def _offer(**overrides: object) -> SlotOffer:
    fields: dict[str, object] = {
        "slot": "home.banner/v1", "key": "memo-item", "title": LocalizedText(zh_CN="记忆"),
        "action": Action(uri="fulcrum://open/memo"), "priority": 7,
    }
    fields.update(overrides)
    return SlotOffer(**fields)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _fresh_memo() -> None:
    _validate._valid.clear()
    _validate._seen.clear()


def test_an_equal_value_gets_the_copy_checked_the_first_time() -> None:
    first = check_list("home_slot_offers", [_offer()])[0]
    again = check_list("home_slot_offers", [_offer()])[0]
    assert again is first


def test_an_odd_but_equal_value_is_replaced_by_the_checked_one() -> None:
    checked = check_list("home_slot_offers", [_offer(priority=1)])[0]
    odd = _offer(priority=True)  # True == 1, but a bool is not a valid priority
    result = check_list("home_slot_offers", [odd])[0]
    assert result is checked
    assert type(result.priority) is int


def test_an_odd_value_never_seen_in_its_valid_form_is_still_refused() -> None:
    with pytest.raises(ResultError, match="item 0 is invalid"):
        check_list("home_slot_offers", [_offer(priority=True)])


def test_invalid_values_are_not_remembered() -> None:
    bad = _offer(priority=5000)
    for _ in range(2):
        with pytest.raises(ResultError, match="priority"):
            check_list("home_slot_offers", [bad])
    assert bad not in _validate._valid.get(SlotOffer, {})


def test_an_unhashable_value_is_checked_the_long_way() -> None:
    odd = _offer(targeting=Targeting(segments=["mass"]))  # type: ignore[arg-type]  # a list, not a set
    result = check_list("home_slot_offers", [odd])[0]
    assert result.targeting == Targeting(segments=frozenset({"mass"}))
    with pytest.raises(ResultError, match="priority"):
        check_list("home_slot_offers", [_offer(priority=-1, targeting=Targeting(segments=["x"]))])  # type: ignore[arg-type]


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_validate, "_MEMO_SIZE", 3)
    for i in range(10):
        check_list("home_slot_offers", [_offer(key=f"memo-{i}")])
        assert len(_validate._valid[SlotOffer]) <= 3
        assert len(_validate._seen) <= 3


def test_the_same_object_again_is_answered_by_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin returning one prebuilt offer every time gets the checked copy back without a hash."""
    prebuilt = _offer(priority=True)  # odd but equal to a valid value seen before
    checked = check_list("home_slot_offers", [_offer(priority=1)])[0]
    assert check_list("home_slot_offers", [prebuilt])[0] is checked

    def no_hashing(item: object, cls: object) -> object:
        raise AssertionError("an object seen before was hashed again")

    monkeypatch.setattr(_validate, "_memo_key", no_hashing)
    again = check_list("home_slot_offers", [prebuilt])[0]
    assert again is checked
    assert type(again.priority) is int  # still the checked copy, never the odd original


def test_an_object_refused_once_is_refused_every_time() -> None:
    bad = _offer(priority=True)
    for _ in range(2):
        with pytest.raises(ResultError, match="item 0 is invalid"):
            check_list("home_slot_offers", [bad])
    assert id(bad) not in _validate._seen


def test_an_equal_instant_in_another_timezone_keeps_its_own_offset() -> None:
    # Equal datetimes in different zones compare (and hash) equal; the page must still show each
    # value's own offset, never the one an earlier, equal result happened to carry.
    from datetime import UTC, datetime, timedelta, timezone

    utc = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
    china = utc.astimezone(timezone(timedelta(hours=8)))
    check_list("home_slot_offers", [_offer(valid_until=utc)])
    result = check_list("home_slot_offers", [_offer(valid_until=china)])[0]
    assert result.valid_until is not None
    assert result.valid_until.utcoffset() == timedelta(hours=8)
    again = check_list("home_slot_offers", [_offer(valid_until=china)])[0]
    assert again is result  # the memo still answers an equal value with the same offset
