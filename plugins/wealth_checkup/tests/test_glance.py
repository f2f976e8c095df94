"""The score-only path the display hooks use: the same numbers as the full report, text only on demand."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date
from typing import Any

import msgspec
import pytest
from fulcrum_sdk.data import CustomerRecord
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PERSONAS, PluginHarness
from fulcrum_wealth_checkup import _parts
from fulcrum_wealth_checkup.scoring import WEIGHTS, CheckUp, Glance, check_up, glance

MakeHarness = Callable[..., PluginHarness]
TODAY = date(2026, 11, 28)
AFTER_EVERY_EXPIRY = date(2030, 1, 1)


def _inputs(record: CustomerRecord, *, accounts: bool, risk: bool, today: date) -> dict[str, Any]:
    return {
        "holdings": record.holdings,
        "accounts": record.accounts if accounts else None,
        "risk": record.risk if risk else None,
        "today": today,
    }


CASES = [
    pytest.param(name, accounts, risk, today, id=f"{name}-accounts:{accounts}-risk:{risk}-{today}")
    for name, accounts, risk, today in itertools.product(
        PERSONAS, (True, False), (True, False), (TODAY, AFTER_EVERY_EXPIRY)
    )
]


@pytest.mark.parametrize(("persona", "accounts", "risk", "today"), CASES)
def test_glance_matches_the_full_report(persona: str, accounts: bool, risk: bool, today: date) -> None:
    """Score, weakest part, mismatches and shortfall agree with ``check_up`` for every persona and grant."""
    inputs = _inputs(PERSONAS[persona], accounts=accounts, risk=risk, today=today)
    seen, report = glance(**inputs), check_up(**inputs)
    if report is None:
        assert seen is None
        return
    assert seen is not None
    assert seen.score == report.score
    assert seen.weakest == report.weakest.key
    assert seen.mismatched == report.mismatched
    assert seen.shortfall() == report.shortfall()
    for part in report.parts:
        assert seen.part(part.key) == part
    assert seen.report() == report


def test_a_skipped_part_cannot_be_rendered() -> None:
    """Without ``accounts:read`` liquidity is not measured, so asking for its text is an error."""
    seen = glance(**_inputs(PERSONAS["affluent"], accounts=False, risk=True, today=TODAY))
    assert seen is not None
    with pytest.raises(KeyError):
        seen.part("liquidity")


def test_no_assets_no_glance() -> None:
    """Nothing to assess gives ``None``, as the full report does."""
    assert glance(holdings=None, accounts=None, risk=None, today=TODAY) is None


def test_weakest_prefers_the_heavier_part_on_a_tie() -> None:
    """Equal scores: the part with more weight is the weakest wherever it comes, as in ``CheckUp``."""

    def unrendered() -> _parts.Line:
        raise AssertionError("a glance renders no text")

    measured: dict[_parts.PartKey, _parts.Measured] = {
        "suitability": (60, unrendered),
        "idle_cash": (90, unrendered),
        "allocation": (60, unrendered),
    }
    seen = Glance(measured=measured, total_fen=1, mix_bp={}, target_bp={}, mismatched=())
    assert WEIGHTS["allocation"] > WEIGHTS["suitability"]
    assert seen.weakest == "allocation"
    assert seen.score == (60 * 15 + 90 * 10 + 60 * 35 + 30) // 60  # the weighted mean, rounded half up


@pytest.fixture
def no_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any rendering of amounts fail, to prove a path renders no part's text with an amount."""

    def refuse(fen: int) -> str:
        raise AssertionError(f"rendered an amount ({fen}) nobody shows")

    monkeypatch.setattr(_parts, "yuan", refuse)


@pytest.mark.usefixtures("no_text")
def test_home_and_search_render_no_part_text(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """A repeat home visit (no popup) and a check-up search show only the score: nothing is formatted."""
    harness = make_harness("affluent")
    with pytest.raises(AssertionError, match="rendered an amount"):
        harness.home_slot_offers()  # the first visit pops up the suitability finding, with its amount
    key = f"last-checkup:{PERSONAS['affluent'].id}"
    storage.put(key, {"score": 48, "mismatched": ["STK-TECH"]})  # as once the customer opened the report
    offers = harness.home_slot_offers()
    assert [o.slot for o in offers] == ["home.kingkong/v1", "home.banner/v1"]
    assert harness.search("财富体检")[0].subtitle is not None


def test_full_report_still_renders_every_part() -> None:
    """The report keeps every part's text (amounts included) for the screens that show it."""
    report = check_up(**_inputs(PERSONAS["affluent"], accounts=True, risk=True, today=TODAY))
    assert isinstance(report, CheckUp)
    assert any("¥" in p.recommendation.zh_CN or "¥" in p.finding.zh_CN for p in report.parts)


def test_a_report_owns_its_target() -> None:
    """Changing one report's target mix changes no other report: glances share the targets built once."""
    inputs = _inputs(PERSONAS["affluent"], accounts=True, risk=True, today=TODAY)
    report = check_up(**inputs)
    assert report is not None
    report.target_bp["cash"] += 1
    again = check_up(**inputs)
    assert again is not None
    assert again.target_bp["cash"] == report.target_bp["cash"] - 1


def test_the_same_records_are_scored_once_and_new_ones_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The display hooks' glance is scored once per set of record objects and day: the host hands a
    plugin the same frozen records while it holds them. An equal but new object, another grant or
    another day is scored again, and each gets the glance of its own inputs."""
    from fulcrum_wealth_checkup import _report

    scored: list[object] = []
    real = _report.glance

    def counting(**inputs: Any) -> Glance | None:
        scored.append(inputs["holdings"])
        return real(**inputs)

    monkeypatch.setattr(_report, "glance", counting)
    monkeypatch.setattr(_report, "_GLANCES", {})
    record = PERSONAS["young_professional"]
    first = _report._glance_of(record.holdings, record.accounts, record.risk, TODAY)
    assert _report._glance_of(record.holdings, record.accounts, record.risk, TODAY) is first
    assert len(scored) == 1
    copy = msgspec.structs.replace(record.holdings) if record.holdings is not None else None
    again = _report._glance_of(copy, record.accounts, record.risk, TODAY)
    without_risk = _report._glance_of(record.holdings, record.accounts, None, TODAY)
    later = _report._glance_of(record.holdings, record.accounts, record.risk, AFTER_EVERY_EXPIRY)
    assert len(scored) == 4
    assert again is not first
    assert again is not None
    assert first is not None
    assert again.score == first.score
    for seen, inputs in (
        (without_risk, _inputs(record, accounts=True, risk=False, today=TODAY)),
        (later, _inputs(record, accounts=True, risk=True, today=AFTER_EVERY_EXPIRY)),
    ):
        expected = glance(**inputs)
        assert seen is not None
        assert expected is not None
        assert (seen.score, seen.weakest) == (expected.score, expected.weakest)
        assert seen.mismatched == expected.mismatched


def test_the_memo_of_glances_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the oldest glance is let go, so a worker serving every customer holds a few
    thousand glances, not one per customer it ever saw."""
    from fulcrum_wealth_checkup import _report

    monkeypatch.setattr(_report, "_GLANCES", {})
    monkeypatch.setattr(_report, "_GLANCES_HELD", 3)
    record = PERSONAS["young_professional"]
    copies = [msgspec.structs.replace(record.holdings) for _ in range(5)] if record.holdings else []
    for holdings in copies:
        _report._glance_of(holdings, None, None, TODAY)
    assert len(_report._GLANCES) == 3
    assert [entry[0][0] for entry in _report._GLANCES.values()] == copies[2:]
