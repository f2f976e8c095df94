"""Validation against the approved set and the slot inventory: each rule, each message."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fulcrum_core.branches import ApprovedPlugin, HqFile, parse_branch, parse_hq, validate_branch, validate_hq

F = "branches/0755.toml"
H = "branches/hq.toml"

Check = Callable[..., list[str]]
LITERAL = 'holds a literal secret; use a reference: "$env:FULCRUM_SECRET_NAME" or "$file:PATH"'


@pytest.fixture
def hq(hq_text: str) -> HqFile:
    """The parsed, valid HQ file from ``hq_text``."""
    parsed, problems = parse_hq(hq_text.encode(), H)
    assert parsed is not None
    assert problems == []
    return parsed


@pytest.fixture
def check(hq: HqFile, approved: dict[str, ApprovedPlugin], inventory: dict[str, int]) -> Check:
    """Validate branch-file text as branch ``code`` (default 0755) and return the problem lines."""

    def _check(text: str, code: str = "0755") -> list[str]:
        file = f"branches/{code}.toml"
        parsed, problems = parse_branch(text.encode(), file)
        assert problems == [], problems
        assert parsed is not None
        found = validate_branch(code, parsed, file=file, hq=hq, approved=approved, inventory=inventory)
        return [p.line for p in found]

    return _check


@pytest.fixture
def check_hq(approved: dict[str, ApprovedPlugin], inventory: dict[str, int]) -> Check:
    """Validate hq.toml text and return the problem lines."""

    def _check(text: str) -> list[str]:
        parsed, problems = parse_hq(text.encode(), H)
        assert problems == []
        assert parsed is not None
        return [p.line for p in validate_hq(parsed, file=H, approved=approved, inventory=inventory)]

    return _check


def test_a_valid_branch_file_has_no_problems(check: Check) -> None:
    """Enabling an approved plugin with a matching range, a rollout and a pin is accepted."""
    text = """
[plugins.merchant-promo]
version = ">=0.2"
rollout = 30
allow = ["pilot-1"]
pin = { "home.banner/v1" = 2 }
settings = { api_token = "$file:secrets/promo-token", city = "深圳" }

[plugins.pension]
enabled = false
"""
    assert check(text) == []


def test_the_hq_fixture_is_valid(check_hq: Check, hq_text: str) -> None:
    """The HQ file used across these tests passes validation."""
    assert check_hq(hq_text) == []


def test_rollout_out_of_range_reads_as_one_line(check: Check) -> None:
    """The readable line names file, key path and the allowed range."""
    assert check("[plugins.merchant-promo]\nrollout = 130\n") == [
        "branches/0755.toml: plugins.merchant-promo.rollout: 130 is out of range 0–100"
    ]
    assert check("[plugins.merchant-promo]\nrollout = -1\n") == [
        "branches/0755.toml: plugins.merchant-promo.rollout: -1 is out of range 0–100"
    ]


def test_unknown_plugin(check: Check) -> None:
    """A plugin the registry does not know is reported with the known ids."""
    (line,) = check("[plugins.merchant-promos]\nenabled = true\n")
    assert line.startswith(f"{F}: plugins.merchant-promos: unknown plugin 'merchant-promos'; known plugins: ")
    assert "merchant-promo," in line


def test_not_approved(check: Check) -> None:
    """A known plugin without an approved release cannot be enabled."""
    assert check("[plugins.draft-plugin]\nenabled = true\n") == [
        f"{F}: plugins.draft-plugin: plugin 'draft-plugin' has no approved release"
    ]


def test_version_range_matching_no_approved_release(check: Check) -> None:
    """A range that excludes every approved release is reported with the approved versions."""
    assert check('[plugins.merchant-promo]\nversion = ">=1.0"\n') == [
        f"{F}: plugins.merchant-promo.version: '>=1.0' matches no approved release (approved: 0.1.0, 0.2.0)"
    ]


def test_version_range_that_is_not_pep440(check: Check) -> None:
    """A range packaging cannot parse is reported as such."""
    (line,) = check('[plugins.merchant-promo]\nversion = "latest"\n')
    assert line.startswith(f"{F}: plugins.merchant-promo.version: 'latest' is not a PEP 440 version range")


def test_unknown_slot(check: Check) -> None:
    """A pin to a slot outside the inventory names the known slots."""
    (line,) = check('[plugins.merchant-promo]\npin = { "home.carousel/v1" = 1 }\n')
    assert line.startswith(
        f"{F}: plugins.merchant-promo.pin.\"home.carousel/v1\": unknown slot 'home.carousel/v1'"
    )
    assert "home.banner/v1" in line


def test_slot_the_plugin_does_not_offer(check: Check) -> None:
    """A pin to a real slot the plugin does not declare is refused."""
    assert check('[plugins.merchant-promo]\npin = { "home.popup/v1" = 1 }\n') == [
        f"{F}: plugins.merchant-promo.pin.\"home.popup/v1\": plugin 'merchant-promo' does not offer slot "
        "'home.popup/v1' (it offers: home.banner/v1)"
    ]


def test_pin_position_outside_the_slot(check: Check) -> None:
    """Positions are 1-based and bounded by the slot's capacity."""
    assert check('[plugins.merchant-promo]\npin = { "home.banner/v1" = 6 }\n') == [
        f'{F}: plugins.merchant-promo.pin."home.banner/v1": position 6 is out of range 1–5'
    ]
    assert check('[plugins.merchant-promo]\npin = { "home.banner/v1" = 0 }\n') == [
        f'{F}: plugins.merchant-promo.pin."home.banner/v1": position 0 is out of range 1–5'
    ]


def test_pin_conflict_with_hq_is_blamed_on_the_branch(check: Check) -> None:
    """A branch pinning to a position HQ already pinned is told who holds it."""
    assert check('[plugins.wealth-checkup]\npin = { "home.kingkong/v1" = 1 }\n') == [
        f"{F}: plugins.wealth-checkup.pin.\"home.kingkong/v1\": position 1 is already pinned by 'pension'"
    ]


def test_pin_conflict_is_ignored_when_the_other_plugin_is_off(check: Check) -> None:
    """Switching the HQ plugin off frees its position for another."""
    text = '[plugins.pension]\nenabled = false\n[plugins.wealth-checkup]\npin = { "home.kingkong/v1" = 1 }\n'
    assert check(text) == []


def test_literal_secret_is_refused_without_echoing_it(check: Check) -> None:
    """A secret-looking key with a literal value is an error whose message never contains the value."""
    lines = check('[plugins.merchant-promo]\nsettings = { api_token = "sk-live-123", signingKey = 42 }\n')
    assert lines == [
        f"{F}: plugins.merchant-promo.settings.api_token: {LITERAL}",
        f"{F}: plugins.merchant-promo.settings.signingKey: {LITERAL}",
    ]
    assert not any("sk-live-123" in line for line in lines)


def test_malformed_reference_is_refused(check: Check) -> None:
    """``$env:`` needs a variable name; a malformed reference is never taken as a literal."""
    lines = check('[plugins.merchant-promo]\nsettings = { password = "$env:not a name", region = "$env:" }\n')
    assert [line.split(": ")[1] for line in lines] == [
        "plugins.merchant-promo.settings.password",
        "plugins.merchant-promo.settings.region",
    ]
    assert all("is not a valid reference" in line for line in lines)


def test_branch_plugin_enabled_by_another_branch(check: Check) -> None:
    """A branch-kind plugin may be enabled only by the branch that published it."""
    text = "[plugins.local-social]\nenabled = true\n"
    assert check(text, code="0755") == [
        "branches/0755.toml: plugins.local-social: 'local-social' is a branch plugin of 'branch-021'; "
        "branch 0755 cannot enable it"
    ]
    assert check(text, code="021") == []
    assert check("[plugins.local-social]\nenabled = false\n", code="0755") == []


def test_hq_cannot_enable_a_branch_plugin(check_hq: Check) -> None:
    """HQ is not the publishing branch, so it cannot switch a branch plugin on for everyone."""
    assert check_hq("[plugins.local-social]\nenabled = true\n") == [
        f"{H}: plugins.local-social: 'local-social' is a branch plugin of 'branch-021'; "
        "only that branch can enable it"
    ]


def test_a_branch_plugin_of_a_publisher_that_is_no_branch_says_how_to_publish(
    check: Check, check_hq: Check, approved: dict[str, ApprovedPlugin]
) -> None:
    """A branch publishing as ``sz-branch`` rather than ``branch-0755`` is told why no file can enable it."""
    approved["sz-social"] = ApprovedPlugin(kind="branch", publisher="sz-branch", versions=("1.0.0",))
    text = "[plugins.sz-social]\nenabled = true\n"
    why = (
        "'sz-social' is a branch plugin of 'sz-branch', which is no branch's publisher id: a branch "
        "publishes as branch-<code> ({}), so no branch file can enable it"
    )
    assert check(text, code="0755") == [f"{F}: plugins.sz-social: " + why.format("branch-0755 for 0755")]
    assert check_hq(text) == [f"{H}: plugins.sz-social: " + why.format("e.g. branch-0755")]


def test_switching_off_a_mandatory_plugin(check: Check) -> None:
    """A branch cannot switch off what HQ made mandatory."""
    assert check("[plugins.wealth-checkup]\nenabled = false\n") == [
        f"{F}: plugins.wealth-checkup.enabled: "
        "'wealth-checkup' is mandatory in hq.toml and cannot be switched off"
    ]


def test_narrowing_a_mandatory_plugin(check: Check) -> None:
    """A branch may only pin and configure a mandatory plugin, not change its version, rollout, allow-list."""
    lines = check('[plugins.wealth-checkup]\nrollout = 10\nversion = ">=1"\nallow = ["c1"]\n')
    assert [line.split(": ")[1] for line in lines] == [
        "plugins.wealth-checkup.version",
        "plugins.wealth-checkup.rollout",
        "plugins.wealth-checkup.allow",
    ]
    assert (
        check('[plugins.wealth-checkup]\npin = { "home.banner/v1" = 1 }\nsettings = { tone = "calm" }\n')
        == []
    )


def test_switching_off_an_optional_hq_plugin_is_fine(check: Check) -> None:
    """HQ-optional plugins can be switched off by a branch."""
    assert check("[plugins.pension]\nenabled = false\n") == []


def test_mandatory_plugin_must_be_enabled_at_hq(check_hq: Check) -> None:
    """``mandatory = true`` with ``enabled = false`` contradicts itself."""
    assert check_hq("[plugins.pension]\nmandatory = true\nenabled = false\n") == [
        f"{H}: plugins.pension.enabled: a mandatory plugin must be enabled"
    ]


def test_hq_entries_get_the_same_checks(check_hq: Check) -> None:
    """HQ entries are checked for registry, range, slot and secret problems like branch entries."""
    lines = check_hq(
        "[plugins.nope]\n[plugins.pension]\nrollout = 101\n"
        '[plugins.merchant-promo]\nenabled = false\nsettings = { token = "abc" }\n'
    )
    assert [line.split(": ")[1] for line in lines] == [
        "plugins.nope",
        "plugins.pension.rollout",
        "plugins.merchant-promo.settings.token",
    ]


def test_duplicate_pilot_customers(check: Check) -> None:
    """A customer listed twice in an allow-list is reported."""
    assert check('[plugins.merchant-promo]\nallow = ["c1", "c2", "c1"]\n') == [
        f"{F}: plugins.merchant-promo.allow: customer 'c1' is listed twice"
    ]


def test_every_problem_in_a_file_is_reported(check: Check) -> None:
    """One pass reports all problems across entries, not just the first."""
    text = """
[plugins.merchant-promo]
rollout = 130
version = ">=9"
pin = { "home.nowhere/v1" = 1 }
settings = { secret = "x" }

[plugins.wealth-checkup]
enabled = false

[plugins.ghost]
enabled = true
"""
    assert [line.split(": ")[1] for line in check(text)] == [
        "plugins.merchant-promo.version",
        "plugins.merchant-promo.rollout",
        'plugins.merchant-promo.pin."home.nowhere/v1"',
        "plugins.merchant-promo.settings.secret",
        "plugins.wealth-checkup.enabled",
        "plugins.ghost",
    ]


def test_pin_conflict_with_hq_is_found_whichever_plugin_sorts_first(
    approved: dict[str, ApprovedPlugin], inventory: dict[str, int]
) -> None:
    """HQ pins wealth-checkup to banner position 2, the branch pins merchant-promo (which sorts first)
    there too: still a conflict, blamed on the branch's pin."""
    hq, problems = parse_hq(
        b'[plugins.wealth-checkup]\nenabled = true\npin = { "home.banner/v1" = 2 }\n'
        b'[plugins.merchant-promo]\nenabled = true\n',
        H,
    )
    assert problems == []
    assert hq is not None
    branch, problems = parse_branch(b'[plugins.merchant-promo]\npin = { "home.banner/v1" = 2 }\n', F)
    assert problems == []
    assert branch is not None
    found = validate_branch("0755", branch, file=F, hq=hq, approved=approved, inventory=inventory)
    assert [p.line for p in found] == [
        f"{F}: plugins.merchant-promo.pin.\"home.banner/v1\": position 2 is already pinned by "
        "'wealth-checkup'"
    ]


def test_an_entry_for_a_plugin_hq_has_off_without_enabled_is_inert(
    hq: HqFile, approved: dict[str, ApprovedPlugin], inventory: dict[str, int]
) -> None:
    """Rollout, pin or allow for a plugin HQ has off, without ``enabled = true``, is named as doing nothing
    and says what to add; with ``enabled`` given either way, or for a plugin HQ has on, it is not."""
    from fulcrum_core.branches.validate import inert_entries

    def inert(text: str) -> list[str]:
        parsed, problems = parse_branch(text.encode(), F)
        assert parsed is not None
        assert problems == []
        return [p.line for p in inert_entries(parsed, file=F, hq=hq)]

    assert inert('[plugins.merchant-promo]\nrollout = 30\npin = { "home.banner/v1" = 2 }\n') == [
        f"{F}: plugins.merchant-promo: rollout, pin have no effect: 'merchant-promo' is off in hq.toml and "
        "this entry does not switch it on; add `enabled = true` to give it to this branch's customers "
        "(or `enabled = false` to say it stays off)"
    ]
    assert inert('[plugins.merchant-promo]\nallow = ["c-1"]\n')[0].startswith(
        f"{F}: plugins.merchant-promo: allow has no effect: "
    )
    assert inert("[plugins.merchant-promo]\n")[0].startswith(
        f"{F}: plugins.merchant-promo: this entry does nothing: "
    )
    assert inert("[plugins.merchant-promo]\nenabled = true\nrollout = 30\n") == []
    assert inert("[plugins.merchant-promo]\nenabled = false\nrollout = 30\n") == []
    assert inert("[plugins.pension]\nrollout = 30\n") == []
    parsed, _ = parse_branch(b"[plugins.merchant-promo]\nrollout = 30\n", F)
    assert parsed is not None
    assert validate_branch("0755", parsed, file=F, hq=hq, approved=approved, inventory=inventory) == []


def test_an_entry_for_a_plugin_hq_does_not_name_needs_enabled_to_switch_it_on(
    hq: HqFile, approved: dict[str, ApprovedPlugin]
) -> None:
    """A branch entry for a plugin HQ does not name, with only a pin or a rollout, leaves it off (as a
    plugin no file names is) and the check says so: it gave the plugin to every customer of the branch,
    where the same entry for a plugin HQ has off was refused as doing nothing."""
    from fulcrum_core.branches.layering import layer
    from fulcrum_core.branches.validate import inert_entries

    assert "city-coupons" not in hq.plugins
    parsed, problems = parse_branch(b'[plugins.city-coupons]\npin = { "home.banner/v1" = 3 }\n', F)
    assert parsed is not None
    assert problems == []
    effective = layer("0755", hq, parsed)
    assert "city-coupons" not in effective.enabled_ids
    assert [p.line for p in inert_entries(parsed, file=F, hq=hq)] == [
        f"{F}: plugins.city-coupons: pin has no effect: 'city-coupons' is not in hq.toml (so it is off) "
        "and this entry does not switch it on; add `enabled = true` to give it to this branch's customers "
        "(or `enabled = false` to say it stays off)"
    ]
    switched_on, _ = parse_branch(b"[plugins.city-coupons]\nenabled = true\nrollout = 30\n", F)
    assert switched_on is not None
    assert "city-coupons" in layer("0755", hq, switched_on).enabled_ids
    assert inert_entries(switched_on, file=F, hq=hq) == []
