"""HEAD answers as GET would, without the body (RFC 9110 sections 9.1 and 9.3.2)."""

from __future__ import annotations

from typing import Any


def test_head_answers_every_get_route_with_its_headers_and_no_body(make_app: Any, kit: Any) -> None:
    """The probes, an API route and a missing token answer HEAD with GET's status and headers and no
    body; a route without GET still answers 405. Every GET route answered HEAD with 405."""
    app = make_app(kit.plugin("good", home_slot_offers=lambda ctx: [kit.offer("home.banner", "b")]))
    for path in ("/healthz", "/readyz"):
        get, head = app.client.get(path), app.client.head(path)
        assert (head.status_code, head.content) == (get.status_code, b"") == (200, b"")
        assert head.headers["content-type"] == get.headers["content-type"]
    token = {"Authorization": f"Bearer {app.token()}"}
    home = app.client.head("/v1/home", headers=token)
    assert home.status_code == 200
    assert home.content == b""
    assert home.headers["content-type"].startswith("application/json")
    assert app.client.head("/v1/home").status_code == 401  # still authenticated as GET is
    assert app.client.head("/v1/transactions", headers=token).status_code == 405  # POST only
