"""``pension.personal_contribution``: the 12,000 CNY annual cap, amount rules, account state, idempotency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from fulcrum_pension.cap import counter_key
from fulcrum_pension.contribution import PERSONAL_CONTRIBUTION
from fulcrum_sdk import ScopeDenied, TransactionRefused, TransactionResult
from fulcrum_sdk.data import CustomerRecord
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PERSONAS, PluginHarness

MakeHarness = Callable[..., PluginHarness]
# The provider reports ¥2,000.00 contributed this year for this persona: ¥10,000.00 of room is left.
YP = PERSONAS["young_professional"].id


def _pay(harness: PluginHarness, amount: Any, key: str | None = None) -> TransactionResult:
    return harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": amount}, idempotency_key=key)


def test_a_contribution_reports_the_room_left(make_harness: MakeHarness) -> None:
    """Contributing ¥1,000.00 leaves ¥9,000.00 of this year's cap."""
    result = _pay(make_harness(), 100_000)
    assert result.status == "succeeded"
    assert result.data == {
        "amount_fen": 100_000,
        "year": 2026,
        "contributed_this_year_fen": 300_000,
        "room_left_fen": 900_000,
    }
    assert result.message is not None
    assert "¥9,000.00" in result.message.zh_CN


def test_contributing_exactly_the_room_left_succeeds(make_harness: MakeHarness) -> None:
    """The cap is inclusive: exactly the remaining ¥10,000.00 is accepted and leaves zero."""
    assert _pay(make_harness(), 1_000_000).data["room_left_fen"] == 0


def test_one_fen_over_the_room_is_refused_with_the_room_left(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """¥10,000.01 is refused; the message says ¥10,000.00 is left, and nothing is recorded."""
    with pytest.raises(TransactionRefused) as refused:
        _pay(make_harness(), 1_000_001)
    assert (refused.value.code, refused.value.field) == ("pension.annual_cap_exceeded", "amount_fen")
    assert "¥10,000.00" in refused.value.message.zh_CN
    assert refused.value.message.en is not None
    assert "¥10,000.00" in refused.value.message.en
    assert storage.counter(counter_key(YP, 2026)) == 0


def test_contributions_add_up_against_the_cap(make_harness: MakeHarness) -> None:
    """After ¥6,000.00 the room is ¥4,000.00: ¥4,000.01 is refused, ¥4,000.00 accepted."""
    harness = make_harness()
    _pay(harness, 600_000)
    with pytest.raises(TransactionRefused, match=r"¥4,000\.00"):
        _pay(harness, 400_001)
    assert _pay(harness, 400_000).data["room_left_fen"] == 0


def test_a_full_cap_is_refused_saying_when_it_reopens(make_harness: MakeHarness) -> None:
    """The affluent persona's provider already reports ¥12,000.00: any amount is refused until next year."""
    with pytest.raises(TransactionRefused) as refused:
        _pay(make_harness("affluent"), 1)
    assert refused.value.code == "pension.annual_cap_reached"
    assert "2027年1月1日" in refused.value.message.zh_CN


def test_the_cap_follows_the_calendar_year_in_china(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """At 00:30 on 1 January in China (still 31 December in UTC) a contribution counts toward the new year."""
    _pay(make_harness(), 1_000_000)
    new_year = make_harness(now=datetime(2026, 12, 31, 16, 30, tzinfo=UTC))
    assert _pay(new_year, 100_000).data["year"] == 2027
    assert (storage.counter(counter_key(YP, 2026)), storage.counter(counter_key(YP, 2027))) == (
        1_000_000,
        100_000,
    )


@pytest.mark.parametrize("amount", [0, -1, 1.5, "100", True, None, 1_200_001, 10**20])
def test_bad_amounts_are_rejected_naming_the_field(make_harness: MakeHarness, amount: Any) -> None:
    """Amounts must be positive whole fen no larger than one year's cap; the error names ``amount_fen``."""
    with pytest.raises(msgspec.ValidationError, match="amount_fen"):
        _pay(make_harness(), amount)


def test_unknown_and_missing_fields_are_rejected(make_harness: MakeHarness) -> None:
    """Only ``amount_fen`` is accepted."""
    harness = make_harness()
    with pytest.raises(msgspec.ValidationError, match="amount_fen"):
        harness.execute(PERSONAL_CONTRIBUTION, {})
    with pytest.raises(msgspec.ValidationError, match="account"):
        harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 100, "account": "x"})


def test_no_personal_pension_account_is_refused(make_harness: MakeHarness) -> None:
    """A customer who has not opened the account (or has none) is told to open one first."""
    for persona in ("business_owner", "retiree"):
        with pytest.raises(TransactionRefused, match="account_not_opened"):
            _pay(make_harness(persona), 100)


def test_a_retried_contribution_is_applied_once(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """The same idempotency key returns the first result and adds nothing more."""
    harness = make_harness()
    first = _pay(harness, 100_000, key="same")
    assert _pay(harness, 100_000, key="same") == first
    assert storage.counter(counter_key(YP, 2026)) == 100_000


def test_idempotency_keys_are_per_customer(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """Two customers who happen to send the same key both contribute."""
    _pay(make_harness(), 100_000, key="same")
    _pay(make_harness("young_family"), 100_000, key="same")
    assert storage.counter(counter_key(PERSONAS["young_family"].id, 2026)) == 100_000


def test_concurrent_contributions_never_pass_the_cap(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """Twenty concurrent ¥1,000.00 contributions against ¥10,000.00 of room: exactly ten succeed."""
    outcomes: list[str] = []
    lock = threading.Lock()

    def pay() -> None:
        try:
            _pay(make_harness(), 100_000)
            outcome = "ok"
        except TransactionRefused as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=pay) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 10
    assert storage.counter(counter_key(YP, 2026)) == 1_000_000


def test_contributions_need_pension_read(make_harness: MakeHarness) -> None:
    """Without ``pension:read`` the cap cannot be checked, so the type requires it."""
    with pytest.raises(ScopeDenied, match="pension:read"):
        _pay(make_harness(scopes={"transactions:write"}), 100)


def _booked(record: CustomerRecord, amount: int) -> CustomerRecord:
    """``record`` after the pension account system booked a contribution of ``amount``."""
    assert record.pension is not None
    pp = record.pension.personal_pension
    assert pp is not None
    paid, balance = pp.contributions_this_year_fen + amount, pp.balance_fen + amount
    booked = msgspec.structs.replace(pp, balance_fen=balance, contributions_this_year_fen=paid)
    return msgspec.structs.replace(
        record, pension=msgspec.structs.replace(record.pension, personal_pension=booked)
    )


def test_a_contribution_the_bank_has_booked_is_not_counted_twice(make_harness: MakeHarness) -> None:
    """Once the bank's figure includes a contribution made here, the cap, the room and the balance count
    it once: the customer can still pay in the rest of the cap."""
    record = PERSONAS["young_professional"]  # 2,000 of the 12,000 booked this year
    assert make_harness(record).execute(PERSONAL_CONTRIBUTION, {"amount_fen": 500_000}).status == "succeeded"
    booked = _booked(record, 500_000)
    harness = make_harness(booked)
    overview = harness.page("overview")
    assert overview is not None
    line = next(ln for ln in overview.sections[0].lines if ln.label.zh_CN == "个人养老金")
    assert line.value is not None
    assert line.value.zh_CN == "¥7,000.00"  # 2,000 + 5,000, not 12,000
    assert line.note is not None
    assert "已缴¥7,000.00，还可缴¥5,000.00" in line.note.zh_CN
    result = harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 500_000})
    assert result.status == "succeeded"
    assert result.data["room_left_fen"] == 0


def test_until_the_bank_books_it_a_contribution_counts_from_our_record(make_harness: MakeHarness) -> None:
    """Before booking, the contribution is in the room and the balance from the plugin's own counter."""
    harness = make_harness()
    harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 500_000})
    with pytest.raises(TransactionRefused) as info:
        harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 500_001})
    assert info.value.code == "pension.annual_cap_exceeded"
    assert "¥5,000.00" in info.value.message.zh_CN


def test_contributions_made_elsewhere_count_once_booked(make_harness: MakeHarness) -> None:
    """A contribution made through another channel, booked by the bank after ours was, uses up room too."""
    record = PERSONAS["young_professional"]
    make_harness(record).execute(PERSONAL_CONTRIBUTION, {"amount_fen": 500_000})
    elsewhere = _booked(_booked(record, 500_000), 300_000)  # ours booked, then 3,000 at the counter
    with pytest.raises(TransactionRefused) as info:
        make_harness(elsewhere).execute(PERSONAL_CONTRIBUTION, {"amount_fen": 300_000})
    assert "¥2,000.00" in info.value.message.zh_CN


def test_a_contribution_made_here_after_one_elsewhere_was_booked_counts_at_once(
    make_harness: MakeHarness,
) -> None:
    """Ours booked, then 3,000 paid at the counter and booked: 12,000 - 10,000 = 2,000 is left. Paying
    those 2,000 here uses the cap up before the bank books them; they are not hidden behind the
    counter's 3,000 (which would leave room for 2,000 more, 14,000 in the year)."""
    record = PERSONAS["young_professional"]
    make_harness(record).execute(PERSONAL_CONTRIBUTION, {"amount_fen": 500_000})
    elsewhere = _booked(_booked(record, 500_000), 300_000)
    harness = make_harness(elsewhere)
    assert harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 200_000}).data["room_left_fen"] == 0
    with pytest.raises(TransactionRefused) as info:
        harness.execute(PERSONAL_CONTRIBUTION, {"amount_fen": 200_000})
    assert info.value.code == "pension.annual_cap_reached"
