"""Layering HQ and branch files into one immutable effective configuration with provenance."""

from __future__ import annotations

import msgspec
import pytest
from fulcrum_core.branches import EffectiveConfig, HqFile, parse_branch, parse_hq
from fulcrum_core.branches.layering import layer


@pytest.fixture
def hq(hq_text: str) -> HqFile:
    """The parsed HQ file from ``hq_text``."""
    parsed, _ = parse_hq(hq_text.encode(), "hq.toml")
    assert parsed is not None
    return parsed


def _effective(hq: HqFile, text: str | None, code: str = "0755") -> EffectiveConfig:
    if text is None:
        return layer(code, hq, None)
    parsed, problems = parse_branch(text.encode(), f"{code}.toml")
    assert parsed is not None
    assert problems == []
    return layer(code, hq, parsed)


def test_hq_plugins_apply_to_a_branch_without_a_file(hq: HqFile) -> None:
    """With no branch file, a branch gets HQ's enabled plugins and nothing else."""
    config = _effective(hq, None, code="0571")
    assert config.branch == "0571"
    assert config.enabled_ids == ("pension", "wealth-checkup")
    assert config.plugins["merchant-promo"].enabled is False


def test_branch_adds_an_approved_plugin(hq: HqFile) -> None:
    """A branch switching on a plugin HQ left off gets it, with HQ's shared settings underneath."""
    config = _effective(hq, "[plugins.merchant-promo]\nenabled = true\nrollout = 30\n")
    promo = config.plugins["merchant-promo"]
    assert config.enabled_ids == ("merchant-promo", "pension", "wealth-checkup")
    assert (promo.enabled, promo.rollout) == (True, 30)
    assert promo.sources == {
        "enabled": "branch",
        "version": "default",
        "rollout": "branch",
        "allow": "default",
    }
    assert promo.settings == {"api_token": "$env:FULCRUM_SECRET_PROMO_TOKEN", "city_list": "all"}
    assert promo.setting_sources == {"api_token": "hq", "city_list": "hq"}


def test_branch_switches_off_an_optional_plugin(hq: HqFile) -> None:
    """An HQ-optional plugin switched off by the branch is off, and says the branch did it."""
    config = _effective(hq, "[plugins.pension]\nenabled = false\n")
    assert "pension" not in config.enabled_ids
    assert config.plugins["pension"].sources["enabled"] == "branch"


def test_mandatory_plugin_stays_on_whatever_the_branch_says(hq: HqFile) -> None:
    """A mandatory plugin stays on with HQ's rollout even if an (invalid) branch file says otherwise."""
    config = _effective(hq, "[plugins.wealth-checkup]\nenabled = false\nrollout = 5\n")
    checkup = config.plugins["wealth-checkup"]
    assert (checkup.enabled, checkup.mandatory, checkup.rollout) == (True, True, 100)
    assert checkup.sources["enabled"] == "default"


def test_branch_may_pin_and_configure_a_mandatory_plugin(hq: HqFile) -> None:
    """Pins and settings on a mandatory plugin come from the branch."""
    text = '[plugins.wealth-checkup]\npin = { "home.banner/v1" = 1 }\nsettings = { tone = "calm" }\n'
    checkup = _effective(hq, text).plugins["wealth-checkup"]
    assert checkup.pin == {"home.banner/v1": 1}
    assert checkup.pin_sources == {"home.banner/v1": "branch"}
    assert checkup.setting_sources == {"tone": "branch"}


def test_branch_settings_override_hq_by_key(hq: HqFile) -> None:
    """Settings merge key by key: the branch's value wins, HQ's other keys remain."""
    text = '[plugins.merchant-promo]\nsettings = { city_list = "深圳" }\n'
    promo = _effective(hq, text).plugins["merchant-promo"]
    assert promo.settings == {"api_token": "$env:FULCRUM_SECRET_PROMO_TOKEN", "city_list": "深圳"}
    assert promo.setting_sources == {"api_token": "hq", "city_list": "branch"}


def test_plugins_for_applies_rollout_and_allow_list(hq: HqFile) -> None:
    """Per customer: HQ plugins always, the 0 % plugin only for the allow-listed pilot."""
    config = _effective(hq, '[plugins.merchant-promo]\nenabled = true\nrollout = 0\nallow = ["pilot"]\n')
    assert config.plugins_for("pilot") == ("merchant-promo", "pension", "wealth-checkup")
    assert config.plugins_for("someone-else") == ("pension", "wealth-checkup")


def test_version_range_is_checked_against_installed_versions(hq: HqFile) -> None:
    """``allows_version`` applies the effective PEP 440 range; no range allows any version."""
    promo = _effective(hq, '[plugins.merchant-promo]\nenabled = true\nversion = ">=0.2,<1"\n').plugins[
        "merchant-promo"
    ]
    assert promo.allows_version("0.2.1")
    assert not promo.allows_version("0.1.0")
    assert not promo.allows_version("not-a-version")
    assert _effective(hq, None).plugins["pension"].allows_version("9.9")


def test_effective_config_is_immutable(hq: HqFile) -> None:
    """The computed configuration is frozen; readers cannot change what other requests see."""
    config = _effective(hq, None)
    with pytest.raises(AttributeError):
        config.enabled_ids = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        config.plugins["pension"].rollout = 1  # type: ignore[misc]


def test_digest_changes_exactly_when_content_changes(hq: HqFile) -> None:
    """Equal inputs give equal digests (any worker, any run); a changed rollout changes it."""
    a = _effective(hq, '[plugins.merchant-promo]\nenabled = true\nrollout = 30\nallow = ["b", "a", "c"]\n')
    b = _effective(hq, '[plugins.merchant-promo]\nallow = ["c", "a", "b"]\nrollout = 30\nenabled = true\n')
    c = _effective(hq, '[plugins.merchant-promo]\nenabled = true\nrollout = 31\nallow = ["a", "b", "c"]\n')
    assert a.digest == b.digest
    assert a.digest != c.digest


def test_redacted_view_shows_sources_and_hides_secrets(hq: HqFile) -> None:
    """The staff view names each value's source and shows secrets only as references."""
    text = '[plugins.merchant-promo]\nenabled = true\nsettings = { city_list = "深圳" }\n'
    view = _effective(hq, text).redacted()
    body = msgspec.json.decode(msgspec.json.encode(view))
    promo = next(p for p in body["plugins"] if p["id"] == "merchant-promo")
    assert promo["enabled"] == {"value": True, "source": "branch"}
    assert promo["rollout"] == {"value": 100, "source": "default"}
    assert promo["settings"] == {
        "api_token": {"value": "$env:FULCRUM_SECRET_PROMO_TOKEN", "source": "hq"},
        "city_list": {"value": "深圳", "source": "branch"},
    }
    assert [p["id"] for p in body["plugins"]] == ["merchant-promo", "pension", "wealth-checkup"]
