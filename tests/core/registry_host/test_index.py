"""The PEP 503 index serves approved, not suspended wheels only, and refuses everything else."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import CHECKLIST, publish


def _setup(make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]) -> tuple[Any, Any, Any]:
    harness = make_app()
    from fulcrum_core.registry_host import registry_of

    service = registry_of(harness.runtime).service
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    approved = publish(service, wheel_for(manifest, version="1.0.0"))
    service.approve(approved.id, reviewer="bob", checklist=CHECKLIST)
    pending = publish(service, wheel_for(manifest, version="1.1.0"))
    return harness.client, service, (approved, pending)


def test_only_approved_files_are_listed_and_served(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """1.0.0 (approved) is linked with its hash and downloadable; 1.1.0 (in review) is neither."""
    client, _service, (approved, pending) = _setup(make_app, kit, wheel_for)
    root = client.get("/registry/simple/")
    assert root.status_code == 200
    assert 'href="fulcrum-notices/"' in root.text
    page = client.get("/registry/simple/Fulcrum_Notices/")  # any spelling normalises to the project
    assert page.status_code == 200
    assert f"#sha256={approved.artifact.sha256}" in page.text
    assert pending.artifact.sha256 not in page.text
    wheel = client.get(f"/registry/files/{approved.artifact.sha256}/{approved.artifact.filename}")
    assert wheel.status_code == 200
    assert wheel.content[:2] == b"PK"
    hidden = client.get(f"/registry/files/{pending.artifact.sha256}/{pending.artifact.filename}")
    assert hidden.status_code == 404


def test_suspension_and_bad_requests_are_404(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A suspended project disappears; unknown projects, wrong names and malformed hashes are refused."""
    client, service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    sha, name = approved.artifact.sha256, approved.artifact.filename
    assert client.get(f"/registry/files/{sha}/other-1.0-py3-none-any.whl").status_code == 404
    assert client.get("/registry/simple/nothing-here/").status_code == 404
    assert client.get(f"/registry/files/{'z' * 64}/{name}").status_code == 400
    service.suspend(approved.id, actor="carol", reason="incident")
    assert client.get("/registry/simple/fulcrum-notices/").status_code == 404
    assert client.get(f"/registry/files/{sha}/{name}").status_code == 404
    assert "fulcrum-notices" not in client.get("/registry/simple/").text


def test_a_suspended_publishers_wheels_are_not_served(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Suspending the publisher hides its approved project like suspending the release does."""
    client, service, (approved, _pending) = _setup(make_app, kit, wheel_for)
    service.suspend_publisher("test-bank", actor="carol", reason="incident")
    assert client.get("/registry/simple/fulcrum-notices/").status_code == 404
    sha, name = approved.artifact.sha256, approved.artifact.filename
    assert client.get(f"/registry/files/{sha}/{name}").status_code == 404
    service.reinstate_publisher("test-bank", actor="dave", reason="cleared")
    assert client.get("/registry/simple/fulcrum-notices/").status_code == 200
