"""``[slots."<id>"]`` tables tune one slot of the built-in inventory; the other slots stay as built in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.settings import (
    Deadlines,
    Settings,
    SettingsError,
    SlotConfig,
    default_slots,
    load_settings,
)
from fulcrum_sdk.models import SLOT_IDS

ALL_SLOTS = {"home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1"}
# What is under test is which slots are served, not latency: a loaded machine must not drop the plugin.
PATIENT: dict[str, Any] = {"deadlines": Deadlines(home_slot_offers=10_000), "home_budget_ms": 20_000}


def _load(tmp_path: Path, text: str) -> Settings:
    config = tmp_path / "fulcrum.toml"
    config.write_text(text, encoding="utf-8")
    return load_settings(config_file=config, environ={})


def test_the_built_in_inventory_is_the_sdks_slots() -> None:
    """Every slot a plugin may declare has a built-in configuration, and no other slot has one."""
    assert tuple(default_slots()) == SLOT_IDS


def test_tuning_one_slot_keeps_the_others_and_that_slots_other_keys(tmp_path: Path) -> None:
    """A table for the popup alone changes the keys it names; the banner, grid and notice stay."""
    settings = _load(tmp_path, '[slots."home.popup/v1"]\nfrequency_cap = 2\n')
    built_in = default_slots()
    assert settings.slots.keys() == built_in.keys()
    popup = msgspec.structs.replace(built_in["home.popup/v1"], frequency_cap=2)
    assert settings.slots["home.popup/v1"] == popup
    for slot in ALL_SLOTS - {"home.popup/v1"}:
        assert settings.slots[slot] == built_in[slot]


def test_a_slot_is_removed_only_on_purpose(tmp_path: Path) -> None:
    """``enabled = false`` takes the notice off; the other slots stay, and ``enabled = true`` is a no-op."""
    settings = _load(
        tmp_path, '[slots."home.notice/v1"]\nenabled = false\n[slots."home.banner/v1"]\nenabled = true\n'
    )
    assert set(settings.slots) == ALL_SLOTS - {"home.notice/v1"}
    assert settings.slots["home.banner/v1"] == default_slots()["home.banner/v1"]


def test_a_disabled_slot_is_left_out_of_settings_built_in_code() -> None:
    """``Settings(slots=...)`` with a disabled slot holds only the enabled ones, as the loader's do."""
    settings = Settings(slots={"home.banner/v1": SlotConfig(capacity=2), "home.popup/v1": SlotConfig(
        capacity=1, enabled=False
    )})
    assert list(settings.slots) == ["home.banner/v1"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            '[slots."home.bogus/v1"]\ncapacity = 1\n',
            '(slots."home.bogus/v1"): no such slot; the known slots are home.banner/v1, home.kingkong/v1, '
            "home.popup/v1, home.notice/v1",
        ),
        ('[slots."home.popup/v1"]\ncapacity = 0\n', '(slots."home.popup/v1".capacity): must be at least 1'),
        (
            '[slots."home.popup/v1"]\nenabled = "no"\n',
            '(slots."home.popup/v1".enabled): Expected `bool`, got `str`',
        ),
        ('[slots]\n"home.popup/v1" = 3\n', '(slots."home.popup/v1"): Expected `object`, got `int`'),
        ("slots = 3\n", "(slots): Expected `object`, got `int`"),
    ],
    ids=["unknown-slot", "bad-value", "bad-enabled", "slot-no-table", "slots-no-table"],
)
def test_a_bad_slot_table_is_refused_naming_the_file_and_slot(tmp_path: Path, text: str, said: str) -> None:
    """An unknown slot id names itself and the known ones; a bad value names the slot and key."""
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, text)
    assert str(caught.value) == f"{tmp_path / 'fulcrum.toml'} {said}"


def test_home_serves_all_four_slots_with_only_the_popup_tuned(
    make_app: Any, kit: Any, tmp_path: Path
) -> None:
    """``/v1/home`` under a file tuning only the popup lists every slot, each with its item, and the
    popup's cap is the tuned one: two pages of popups, then none."""
    offers = [kit.offer(slot, slot.split(".")[1].split("/")[0]) for slot in sorted(ALL_SLOTS)]
    plugin = kit.plugin(
        "everywhere", scopes=[f"slot:{s.split('/')[0]}" for s in sorted(ALL_SLOTS)],
        home_slot_offers=lambda ctx: offers,
    )
    tuned = _load(tmp_path, '[slots."home.popup/v1"]\nfrequency_cap = 2\n')
    app = make_app(plugin, slots=tuned.slots, **PATIENT)
    pages = [app.get("/v1/home").json()["slots"] for _ in range(3)]
    assert set(pages[0]) == ALL_SLOTS
    assert all(pages[0][slot] for slot in ALL_SLOTS)
    assert [len(page["home.popup/v1"]) for page in pages] == [1, 1, 0]


def test_a_disabled_slot_is_absent_from_the_home_page(make_app: Any, kit: Any, tmp_path: Path) -> None:
    """The notice disabled on purpose: ``/v1/home`` has no notice slot, the others are served."""
    plugin = kit.plugin(
        "noticer", scopes=["slot:home.notice", "slot:home.banner"],
        home_slot_offers=lambda ctx: [kit.offer("home.notice", "n"), kit.offer("home.banner", "b")],
    )
    tuned = _load(tmp_path, '[slots."home.notice/v1"]\nenabled = false\n')
    slots = make_app(plugin, slots=tuned.slots, **PATIENT).get("/v1/home").json()["slots"]
    assert set(slots) == ALL_SLOTS - {"home.notice/v1"}
    assert [item["key"] for item in slots["home.banner/v1"]] == ["b"]


@pytest.mark.parametrize(
    ("variables", "table"),
    [
        ({"FULCRUM_SLOTS__HOME_BANNER_V1__CAPACITY": "3"}, "slots"),
        ({"FULCRUM_SLOTS": '{"home.banner/v1": {"capacity": 3}}', "FULCRUM_SLOTS__X": "1"}, "slots"),
        ({"FULCRUM_PLUGINS__WEATHER__ENABLED": "false"}, "plugins"),
        ({"FULCRUM_DISABLED_PLUGINS": "weather"}, "disabled_plugins"),
        ({"FULCRUM_FEED_COLUMNS": "wealth,life"}, "feed_columns"),
        ({"FULCRUM_OAUTH_APP_REDIRECT_URIS": "app://cb"}, "oauth_app_redirect_uris"),
        ({"FULCRUM_HOME_DEFAULTS": "[]"}, "home_defaults"),
    ],
    ids=["slot-key", "slots-whole-and-key", "plugin-key", "disabled", "feeds", "redirects", "defaults"],
)
def test_a_variable_for_slots_is_refused_naming_it_and_the_file_table(
    variables: dict[str, str], table: str
) -> None:
    """No variable sets a slot (ids such as ``home.banner/v1`` are no variable names) or a list: one that
    tries is an error naming it and the settings file's table or list to use, not a setting ignored
    without a word."""
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={**variables, "FULCRUM_SLOTS__EMPTY": ""})
    said = str(caught.value)
    assert said.startswith(f"{', '.join(sorted(variables))} ({table}): no variable sets {table}; ")
    assert "the settings file (FULCRUM_CONFIG or --config) does, with " in said
    assert f"with a table [{table}." in said or f"with {table} = [...]" in said
    assert "FULCRUM_SLOTS__EMPTY" not in said  # an empty variable is unset, as for every setting
    assert load_settings(environ={"FULCRUM_SLOTS__EMPTY": ""}).slots == default_slots()


_DEFAULT = """
[[home_defaults]]
slot = "home.notice/v1"
key = "platform-welcome"
title = {{ "zh-CN" = "更多服务", en = "{en}" }}
action = {{ uri = "fulcrum://open/all-functions" }}
"""


def test_platform_content_is_display_text_too(tmp_path: Path) -> None:
    """The deployment's own content for an empty slot reaches customers like a plugin's: a bidi
    override in it is refused naming the file, the key and the character; an emoji sequence passes."""
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, _DEFAULT.format(en="More \\u202eservices"))
    assert str(caught.value) == (
        f"{tmp_path / 'fulcrum.toml'} (home_defaults[0].title.en): U+202E RIGHT-TO-LEFT OVERRIDE at index 5 "
        "is not allowed in display text"
    )
    settings = _load(tmp_path, _DEFAULT.format(en="More services 👩\\u200d💻"))
    assert settings.home_defaults[0].title.en == "More services 👩\u200d💻"


def test_platform_content_too_long_says_how_long_it_is(tmp_path: Path) -> None:
    """A title past its length was refused in msgspec's words (``Expected `str` of length <= 400``): it
    says what the title may be and how long the one written is."""
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, _DEFAULT.format(en="x" * 405))
    assert str(caught.value) == (
        f"{tmp_path / 'fulcrum.toml'} (home_defaults[0].title.en): must be at most 400 characters; it has 405"
    )
