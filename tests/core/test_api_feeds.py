"""``GET /v1/feeds/{column}`` over HTTP: unknown columns, scope filtering and cursor pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_sdk.models import Targeting


def _writer(kit: Any, plugin_id: str, count: int, **kwargs: Any) -> Any:
    def items(ctx: Any, column: str) -> list[Any]:
        return [
            kit.item(
                column,
                f"{plugin_id}-{i}",
                priority=100 + (i % 2) * 100,
                published=kit.now - timedelta(hours=i),
            )
            for i in range(count)
        ]

    return kit.plugin(plugin_id, feed_items=items, **kwargs)


def test_walking_the_feed_over_http_visits_every_card_once(make_app: Any, kit: Any) -> None:
    """Following next_cursor returns every card of every plugin exactly once."""
    app = make_app(_writer(kit, "alpha", 9), _writer(kit, "beta", 8))
    seen: list[tuple[str, str]] = []
    cursor = None
    for _ in range(20):
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        body = app.get("/v1/feeds/wealth", params=params).json()
        assert body["column"] == "wealth"
        assert len(body["items"]) <= 4
        seen += [(i["plugin"], i["key"]) for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 17 == len(set(seen))


def test_a_partner_cannot_target_cards_by_profile_data_the_customer_has_not_shared(
    make_app: Any, kit: Any
) -> None:
    """A partner's cards targeted by segment or branch are shown once the customer consented to
    ``profile:basic``, not before (a tap would tell the partner what the customer did not share)."""
    items = [
        kit.item("life", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
        kit.item("life", "shenzhen", targeting=Targeting(branches=frozenset({"0755"}))),
        kit.item("life", "everyone"),
    ]
    app = make_app(
        kit.plugin("partner", kind="partner", scopes=["feed:contribute"], optional=["profile:basic"],
                   feed_items=lambda ctx, column: items),
        consent_cache_ms=0,
    )
    assert [i["key"] for i in app.get("/v1/feeds/life").json()["items"]] == ["everyone"]
    later = datetime.now(UTC) + timedelta(days=30)
    consents = ConsentStore(app.runtime.db)
    consents.grant("synthetic-young-professional", "partner", ["profile:basic"], "排序", later)
    assert [i["key"] for i in app.get("/v1/feeds/life").json()["items"]] == ["everyone", "mass", "shenzhen"]


def test_empty_cursor_means_first_page(make_app: Any, kit: Any) -> None:
    """``cursor=`` (empty) starts at the beginning."""
    app = make_app(_writer(kit, "alpha", 3))
    assert len(app.get("/v1/feeds/life?cursor=&limit=20").json()["items"]) == 3


def test_unknown_column_is_404_naming_it(make_app: Any) -> None:
    """A column outside the configured ones is a 404 problem naming the column."""
    response = make_app().get("/v1/feeds/gossip")
    assert response.status_code == 404
    assert response.json()["field"] == "column"
    assert "gossip" in response.json()["detail"]


@pytest.mark.parametrize("cursor", ["garbage!", "eyJ4IjoxfQ"])
def test_bad_cursor_is_400_naming_cursor(make_app: Any, cursor: str) -> None:
    """A cursor the feed did not issue is a 400 problem naming cursor."""
    response = make_app().get("/v1/feeds/wealth", params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["field"] == "cursor"


def test_cursor_from_another_column_is_400(make_app: Any, kit: Any) -> None:
    """A next_cursor of one column is refused by another."""
    app = make_app(_writer(kit, "alpha", 5))
    cursor = app.get("/v1/feeds/wealth", params={"limit": 2}).json()["next_cursor"]
    response = app.get("/v1/feeds/life", params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["field"] == "cursor"


def test_plugins_without_feed_scope_are_not_called(make_app: Any, kit: Any) -> None:
    """A plugin lacking feed:contribute is never asked for items."""
    calls: list[str] = []
    app = make_app(
        kit.plugin(
            "mute", scopes=["profile:basic"], feed_items=lambda ctx, column: calls.append(column) or []
        )
    )
    assert app.get("/v1/feeds/wealth").json()["items"] == []
    assert calls == []


@pytest.mark.parametrize("limit", ["0", "51", "many"])
def test_bad_limit_is_400(make_app: Any, limit: str) -> None:
    """limit outside 1..50 (or not a number) is a 400 naming limit."""
    response = make_app().get("/v1/feeds/wealth", params={"limit": limit})
    assert response.status_code == 400
    assert "limit" in response.text


def test_a_forged_cursor_naming_a_long_column_is_not_echoed_whole(make_app: Any) -> None:
    """A hand-made cursor naming a 30 000-character column gets a short ``detail``: the column was
    quoted back whole (a 30 KB problem for a 40 KB query)."""
    import base64
    import json

    forged = json.dumps(["x" * 30_000, [0, 0, "a", "b"]]).encode()
    cursor = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    response = make_app().get("/v1/feeds/wealth", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "cursor"
    assert len(response.json()["detail"]) < 200
    assert "(30000 characters)" in response.json()["detail"]
