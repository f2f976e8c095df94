"""Releases filed under older manifest rules, over HTTP: the listings, a release's page, the review queue
and the package index answer (no 500), mark the release with the key and problem, and never serve it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.registry.old_rules import OLD_ROWS, file_under_old_rules

from .conftest import CHECKLIST, publish
from .test_index import _index_warnings


@pytest.mark.parametrize("old", list(OLD_ROWS))
def test_the_registry_routes_show_an_old_release_marked_and_the_index_leaves_it_out(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path], old: str,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """An approved release and one in review whose stored manifests today's rules refuse: each route
    answers as for any release, naming the key and the problem in words; approving one is a 409 saying
    why; the index serves the other plugin only, and its log says which release it left out and why."""
    from fulcrum_core.registry_host import registry_of

    changes, key, words = OLD_ROWS[old]
    harness = make_app()
    service = registry_of(harness.runtime).service
    engine = harness.runtime.db.engine
    notices = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    service.approve(publish(service, wheel_for(notices)).id, reviewer="bob", checklist=CHECKLIST)
    coupons = kit.manifest("coupons", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    approved = publish(service, wheel_for(coupons)).id
    service.approve(approved, reviewer="bob", checklist=CHECKLIST)
    pending = publish(service, wheel_for(coupons, version="1.1.0")).id
    for release_id in (approved, pending):
        file_under_old_rules(engine, release_id, **changes)
    client = harness.client
    token = harness.runtime.tokens.issue("rita", ["registry:review"], kind="staff")
    client.headers["Authorization"] = f"Bearer {token}"
    plugin = changes.get("id", "coupons")

    def marked(release: dict[str, Any]) -> None:
        problem = release["manifest_problem"]
        assert problem["key"] == key, release
        assert words in problem["problem"], release

    listing = client.get("/registry/v1/releases")
    assert listing.status_code == 200, listing.text
    by_id = {r["id"]: r for r in listing.json()["items"]}
    for release_id in (approved, pending):
        marked(by_id[release_id])
        page = client.get(f"/registry/v1/releases/{release_id}")
        assert page.status_code == 200, page.text
        marked(page.json()["release"])
    assert [r["manifest_problem"] for r in by_id.values() if r["plugin_id"] == "notices"] == [None]
    queue = client.get("/registry/v1/releases", params={"state": "in_review"})
    assert queue.status_code == 200, queue.text
    assert [r["id"] for r in queue.json()["items"]] == [pending]
    filtered = client.get("/registry/v1/releases", params={"plugin": plugin})
    assert filtered.status_code == 200, filtered.text
    assert [r["id"] for r in filtered.json()["items"]] == [approved, pending]

    bob = harness.runtime.tokens.issue("bob", ["registry:review"], kind="staff")
    approving = client.post(
        f"/registry/v1/releases/{pending}/review",
        json={"decision": "approve", "checklist": CHECKLIST},
        headers={"Authorization": f"Bearer {bob}"},
    )
    assert approving.status_code == 409, approving.text
    assert f"fails today's rules ({key}: " in approving.json()["detail"]

    _index_warnings(monkeypatch, caplog)
    index = client.get("/registry/simple/")
    assert index.status_code == 200, index.text
    assert "fulcrum-notices" in index.text
    assert "fulcrum-coupons" not in index.text
    assert client.get("/registry/simple/fulcrum-coupons/").status_code == 404
    said = [r.getMessage() for r in caplog.records if r.name == "fulcrum.registry.index"]
    assert any(f"release {approved} of plugin {plugin}: its manifest fails today's rules ({key}: " in line
               for line in said), said
