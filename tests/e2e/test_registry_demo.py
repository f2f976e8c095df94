"""The demo runs what the registry approved, out of development mode, and obeys its kill switch live."""

from __future__ import annotations

import time

from fulcrum_core.registry_host import registry_of

from .conftest import Demo

SZ = "c-0755-001"


def _plugins_on_home(demo: Demo) -> set[str]:
    body = demo.get(SZ, "/v1/home")
    return {item["plugin"] for items in body["slots"].values() for item in items}


def test_the_demo_runs_the_three_approved_plugins_without_dev_mode(demo: Demo) -> None:
    """Not in dev mode, the policy comes from the registry, and each plugin runs with its granted scopes."""
    runtime = demo.runtime
    assert runtime.settings.dev_mode is False
    assert runtime.plugins.policy is not None
    active = registry_of(runtime).service.active_policy()
    for plugin_id in ("wealth-checkup", "pension", "merchant-promo"):
        assert runtime.plugins.is_active(plugin_id)
        (release,) = active[plugin_id].values()
        assert runtime.plugins.loaded[plugin_id].granted <= release.granted_scopes
    assert {"wealth-checkup", "pension"} <= _plugins_on_home(demo)


def test_suspending_pension_takes_it_off_the_running_demo(demo: Demo) -> None:
    """Suspending the pension release removes it from /v1/home within the poll interval, without restart."""
    service = registry_of(demo.runtime).service
    (release,) = service.active_policy()["pension"].values()
    assert "pension" in _plugins_on_home(demo)
    service.suspend(release.release_id, actor="ops", reason="demo kill switch")
    deadline = time.monotonic() + 15
    while "pension" in _plugins_on_home(demo):
        assert time.monotonic() < deadline, "the suspension did not reach the running app"
        time.sleep(0.05)
    assert "suspended" in demo.runtime.plugins.inactive["pension"]
