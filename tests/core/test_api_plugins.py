"""``GET /v1/plugins`` over HTTP: loaded, inactive and quarantined plugins, and call statistics."""

from __future__ import annotations

from typing import Any

import msgspec
from fulcrum_core.plugins import PluginPolicy


def _staff(app: Any) -> str:
    token: str = app.token("ops-1", ["platform:read"], kind="staff")
    return token


def test_plugins_lists_state_quarantine_and_stats(make_app: Any, kit: Any) -> None:
    """Loaded plugins with hooks, grants and state; quarantined ones with reasons; per-hook counters."""
    broken = kit.plugin("broken", search=lambda ctx, query: [])
    broken.MANIFEST = msgspec.structs.replace(broken.MANIFEST, sdk=">=9")
    app = make_app(
        kit.plugin("good", scopes=["search:contribute"], search=lambda ctx, query: [kit.hit("x")]),
        kit.plugin("paused", search=lambda ctx, query: []),
        broken,
    )
    app.runtime.plugins.set_policy(
        {
            "good": PluginPolicy(active=True, granted_scopes=frozenset({"search:contribute"})),
            "paused": PluginPolicy(active=False, granted_scopes=frozenset(), reason="suspended"),
        }
    )
    app.get("/v1/search", params={"q": "x"})
    body = app.get("/v1/plugins", token=_staff(app)).json()
    plugins = {p["id"]: p for p in body["plugins"]}
    assert plugins["good"]["state"] == "active"
    assert plugins["good"]["hooks"] == ["search"]
    assert plugins["good"]["granted_scopes"] == ["search:contribute"]
    assert plugins["good"]["version"] == "1.0.0"
    assert plugins["good"]["name"]["zh-CN"]
    assert (plugins["paused"]["state"], plugins["paused"]["reason"]) == ("inactive", "suspended")
    assert [q["id"] for q in body["quarantined"]] == ["broken"]
    assert "fulcrum-sdk" in body["quarantined"][0]["reason"]
    [stat] = [s for s in body["stats"] if s["plugin"] == "good"]
    assert (stat["hook"], stat["calls"], stat["ok"]) == ("search", 1, 1)


def test_plugins_needs_platform_read(make_app: Any) -> None:
    """A customer token (without platform:read) gets 403."""
    assert make_app().get("/v1/plugins").status_code == 403
