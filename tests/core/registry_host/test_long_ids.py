"""A client's over-long id is echoed in a problem's ``detail`` cut to its first 64 characters and an
ellipsis, with its length, never in full; the problem keeps its status, code and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fulcrum_core.parameter_problems import echoed
from fulcrum_sdk import Page, PageSection
from fulcrum_sdk.scopes import APP_SCOPES

from .test_api import PUBLISHER, Api

LONG = "x" * 300
CUT = repr("x" * 64 + "…") + " (300 characters)"


def _bounded(response: Any, status: int, code: str, field: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert body.get("field") == field, body
    assert CUT in body["detail"], body["detail"]
    assert "x" * 65 not in body["detail"]
    assert "x" * 65 not in response.text


def test_echoed_cuts_only_long_values() -> None:
    """Short values are quoted as before; a long one keeps its first characters, an ellipsis, its length."""
    assert echoed("tx-1") == "'tx-1'"
    assert echoed("y" * 64) == repr("y" * 64)
    assert echoed("y" * 65) == repr("y" * 64 + "…") + " (65 characters)"
    assert echoed("y" * 10, limit=4) == "'yyyy…' (10 characters)"


@pytest.mark.parametrize(
    ("path", "status", "code", "field"),
    [
        (f"/v1/transactions/{LONG}", 404, "transaction.not_found", "tx_id"),
        (f"/v1/pages/{LONG}/report", 404, "page.unknown-plugin", "plugin"),
        (f"/v1/feeds/{LONG}", 404, "feed.unknown-column", "column"),
        (f"/registry/simple/{LONG}", 404, "registry.not-found", "project"),
    ],
)
def test_app_and_index_404s_bound_the_id(
    make_app: Callable[..., Any], path: str, status: int, code: str, field: str
) -> None:
    """Transactions, pages, feeds and the package index: the 404 names the field and cuts the id."""
    app = make_app()
    token = app.runtime.tokens.issue("synthetic-young-professional", APP_SCOPES)
    if path.startswith("/registry/"):  # the package index is for registry staff
        token = app.runtime.tokens.issue("rita", ["registry:review"], kind="staff")
    _bounded(app.client.get(path, headers={"Authorization": f"Bearer {token}"}), status, code, field)


def test_page_paths_are_bounded_in_400_and_404(make_app: Callable[..., Any], kit: Any) -> None:
    """A path too long to be valid (400) and a valid 200-character path the plugin has no page at (404)."""

    def page(ctx: Any, path: str) -> Page | None:
        return None if path != "home" else Page(title=kit.text("t"), sections=(PageSection(key="k"),))

    app = make_app(kit.plugin("pager", page=page))
    _bounded(app.get(f"/v1/pages/pager/{LONG}"), 400, "page.invalid-path", "path")
    valid = "x" * 200
    response = app.get(f"/v1/pages/pager/{valid}")
    assert response.status_code == 404, response.text
    assert response.json()["field"] == "path"
    assert repr("x" * 64 + "…") + " (200 characters)" in response.json()["detail"]


def test_registry_404_and_403_bound_the_publisher(
    make_app: Callable[..., Any], kit: Any, wheel_for: Callable[..., Path], staff: Callable[..., str]
) -> None:
    """A token for a publisher that does not exist (404), and a form naming another publisher (403)."""
    api = Api(make_app(), staff)
    assert api.call("POST", "/publishers", api.rita, json=PUBLISHER).status_code == 201
    manifest = kit.manifest("notices", hooks=["home_slot_offers"], scopes=["slot:home.notice"])
    ghost = staff(api.runtime, "gus", "registry:publish", publisher=LONG)
    _bounded(api.submit(wheel_for(manifest), ghost), 404, "registry.not-found", None)
    _bounded(api.submit(wheel_for(manifest), publisher=LONG), 403, "registry.other-publisher", "publisher")
