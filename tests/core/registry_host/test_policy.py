"""``plugin_policy``: the registry's approved releases mapped onto the installed plugins."""

from __future__ import annotations

from fulcrum_core.registry_host import plugin_policy
from fulcrum_registry import ActiveRelease


def _live(plugin_id: str, version: str, *scopes: str) -> ActiveRelease:
    return ActiveRelease(release_id=1, plugin_id=plugin_id, version=version, granted_scopes=frozenset(scopes))


def test_the_installed_approved_version_runs_with_its_grant() -> None:
    """An approved installed version is active with exactly the granted scopes."""
    policy = plugin_policy({"a": "1.0.0"}, {"a": {"1.0.0": _live("a", "1.0.0", "slot:home.notice")}}, [])
    assert policy["a"].active
    assert policy["a"].granted_scopes == {"slot:home.notice"}


def test_known_but_not_live_versions_are_inactive_with_the_state() -> None:
    """A suspended installed version is inactive, and the reason says suspended and what is approved."""
    policy = plugin_policy(
        {"a": "2.0.0"},
        {"a": {"1.0.0": _live("a", "1.0.0")}},
        [("a", "2.0.0", "suspended"), ("a", "1.0.0", "approved")],
    )
    assert not policy["a"].active
    assert policy["a"].granted_scopes == frozenset()
    assert "2.0.0 is suspended" in policy["a"].reason
    assert "approved: 1.0.0" in policy["a"].reason


def test_a_version_never_submitted_is_inactive() -> None:
    """A plugin the registry knows, installed at a version it never saw, does not run."""
    policy = plugin_policy({"a": "9.9.9"}, {}, [("a", "1.0.0", "rejected")])
    assert not policy["a"].active
    assert "never submitted" in policy["a"].reason


def test_unknown_plugins_are_left_to_the_plugin_set() -> None:
    """A plugin the registry never heard of gets no entry (it runs only in development mode)."""
    assert plugin_policy({"stranger": "1.0.0"}, {}, []) == {}
