"""The demo under a settings file that tunes only the popup slot: every slot of the inventory stays."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from fulcrum_core.settings import Settings, load_settings

from .conftest import Demo

SZ = "c-0755-001"  # 深圳: an offer in every slot (a mismatch popup, the pension notice)
ALL_SLOTS = {"home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1"}


@pytest.fixture
def demo_settings(demo_settings: Settings, tmp_path: Path) -> Settings:
    """The demo's settings with the slots of a file holding only ``[slots."home.popup/v1"]``."""
    config = tmp_path / "fulcrum.toml"
    config.write_text('[slots."home.popup/v1"]\nfrequency_window_hours = 12\n', encoding="utf-8")
    return msgspec.structs.replace(demo_settings, slots=load_settings(config_file=config, environ={}).slots)


def test_the_demo_serves_all_four_slots_when_only_the_popup_is_tuned(demo: Demo) -> None:
    """Banner, kingkong grid, popup and notice are all served, each with its items."""
    assert demo.runtime.settings.slots["home.popup/v1"].frequency_window_hours == 12
    slots = demo.get(SZ, "/v1/home")["slots"]
    assert set(slots) == ALL_SLOTS
    assert {slot for slot, items in slots.items() if items} == ALL_SLOTS
