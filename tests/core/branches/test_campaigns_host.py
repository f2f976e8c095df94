"""Campaigns and the branch layer in the running host: branch selection applies to campaigns, and each
branch's settings get their own call and entry.

Personas: young professional (branch 0755), young family (021), retiree (028).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.branches.host import branch_store_of
from fulcrum_core.settings import Deadlines
from fulcrum_sdk.context import AudienceContext
from fulcrum_sdk.models import SlotOffer
from fulcrum_sdk.testing import PERSONAS

SZ = PERSONAS["young_professional"].id  # 0755
SH = PERSONAS["young_family"].id  # 021
CD = PERSONAS["retiree"].id  # 028
BANNER = "home.banner/v1"

HQ = """
[plugins.camp]
enabled = true
settings = { city = "hq" }
"""
BRANCH_021 = """
[plugins.camp]
settings = { city = "shanghai" }
"""
BRANCH_028 = """
[plugins.camp]
enabled = false
"""


@pytest.fixture
def branches(tmp_path: Path) -> Path:
    """HQ turns ``camp`` on with a default city; 021 sets its own city; 028 switches it off."""
    directory = tmp_path / "host-branches"
    directory.mkdir()
    (directory / "hq.toml").write_text(HQ, encoding="utf-8")
    (directory / "021.toml").write_text(BRANCH_021, encoding="utf-8")
    (directory / "028.toml").write_text(BRANCH_028, encoding="utf-8")
    return directory


@pytest.fixture
def calls() -> list[AudienceContext]:
    """Every context the campaign hook was called with."""
    return []


@pytest.fixture
def app(make_app: Callable[..., Any], kit: Any, branches: Path, calls: list[AudienceContext]) -> Any:
    """The real app with one campaign plugin whose offer names the city in its settings."""

    def home_slot_campaigns(ctx: AudienceContext) -> list[SlotOffer]:
        calls.append(ctx)
        return [kit.offer("home.banner", f"city-{ctx.settings.get('city', '-')}")]

    return make_app(
        kit.plugin("camp", home_slot_campaigns=home_slot_campaigns),
        branches_dir=str(branches), branches_poll_seconds=3600,
        deadlines=Deadlines(home_slot_offers=5_000), home_budget_ms=10_000,
    )


def _banner(app: Any, customer: str) -> list[str]:
    response = app.get("/v1/home", token=app.token(customer))
    assert response.status_code == 200, response.text
    return [item["key"] for item in response.json()["slots"][BANNER]]


def test_each_branchs_settings_get_their_own_campaigns(app: Any, calls: list[AudienceContext]) -> None:
    """0755 (HQ's settings) and 021 (its own) each get offers made with their settings, from one call
    per distinct settings however many pages are served."""
    for _ in range(3):
        assert _banner(app, SZ) == ["city-hq"]
        assert _banner(app, SH) == ["city-shanghai"]
    assert sorted(c.settings["city"] for c in calls) == ["hq", "shanghai"]


def test_a_branch_switching_the_plugin_off_gets_no_campaigns(app: Any, branches: Path) -> None:
    """028 switched it off: its customers never see its campaigns, held for others or not; switching it
    off in 0755's HQ entry takes them off the next page there too."""
    assert _banner(app, SZ) == ["city-hq"]
    assert _banner(app, CD) == []
    (branches / "hq.toml").write_text(HQ.replace("enabled = true", "enabled = true\nrollout = 0"))
    store = branch_store_of(app.runtime)
    assert store is not None
    assert store.refresh()
    assert _banner(app, SZ) == []


def test_one_branchs_page_calls_for_every_branchs_settings_at_once(
    app: Any, calls: list[AudienceContext]
) -> None:
    """The first page, of a 021 customer, starts the calls for every settings the plugin has where it is
    on (HQ's and 021's, not 028's: off there), in a fixed order: a call with 021's settings alone,
    when this customer's page opened, would tell a plugin that cannot see branches where they bank."""
    assert _banner(app, SH) == ["city-shanghai"]
    assert [c.settings["city"] for c in calls] == ["hq", "shanghai"]
    assert _banner(app, SZ) == ["city-hq"]
    assert len(calls) == 2
