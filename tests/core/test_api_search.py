"""``GET /v1/search`` over HTTP: query validation, scope filtering, ranking and pagination."""

from __future__ import annotations

from typing import Any

import pytest
from fulcrum_core.settings import Deadlines


def _searcher(kit: Any, plugin_id: str, keys: list[tuple[str, float]], **kwargs: Any) -> Any:
    return kit.plugin(
        plugin_id, search=lambda ctx, query: [kit.hit(k, relevance=r) for k, r in keys], **kwargs
    )


def test_search_merges_ranks_and_paginates(make_app: Any, kit: Any) -> None:
    """Hits from several plugins come back ranked by relevance, paginated, with the total."""
    app = make_app(_searcher(kit, "alpha", [("a1", 0.9), ("a2", 0.1)]), _searcher(kit, "beta", [("b1", 0.5)]))
    first = app.get("/v1/search", params={"q": "  养老  ", "page_size": 2}).json()
    assert first["query"] == "养老"
    assert [(i["plugin"], i["key"]) for i in first["items"]] == [("alpha", "a1"), ("beta", "b1")]
    assert (first["total"], first["page"], first["page_size"]) == (3, 1, 2)
    second = app.get("/v1/search", params={"q": "养老", "page": 2, "page_size": 2}).json()
    assert [i["key"] for i in second["items"]] == ["a2"]
    assert second["degraded"] == []


def test_query_is_passed_stripped_to_plugins(make_app: Any, kit: Any) -> None:
    """Plugins receive the stripped query."""
    seen: list[str] = []
    app = make_app(kit.plugin("echo", search=lambda ctx, query: seen.append(query) or []))
    assert app.get("/v1/search", params={"q": "\t基金 "}).status_code == 200
    assert seen == ["基金"]


def test_plugins_without_search_scope_are_not_called(make_app: Any, kit: Any) -> None:
    """A plugin implementing search but not granted search:contribute is never called."""
    calls: list[str] = []
    app = make_app(
        kit.plugin("mute", scopes=["profile:basic"], search=lambda ctx, query: calls.append(query) or [])
    )
    body = app.get("/v1/search", params={"q": "x"}).json()
    assert calls == []
    assert body["items"] == []
    assert body["total"] == 0


def test_raising_search_plugin_is_degraded(make_app: Any, kit: Any) -> None:
    """A search plugin that raises is listed as degraded; the others' hits are returned."""

    def boom(ctx: Any, query: str) -> Any:
        raise ValueError("index offline")

    app = make_app(  # a deadline its thread cannot miss on a loaded CI machine: the error is under test
        _searcher(kit, "ok", [("k", 0.3)]), kit.plugin("down", search=boom), deadlines=Deadlines(search=5_000)
    )
    body = app.get("/v1/search", params={"q": "x"}).json()
    assert [i["key"] for i in body["items"]] == ["k"]
    assert body["degraded"] == [{"plugin": "down", "hook": "search", "reason": "error"}]


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "长" * 101}])
def test_bad_query_is_400_naming_q(make_app: Any, params: dict[str, str]) -> None:
    """Missing, blank or over-long q is a 400 problem whose field is q."""
    response = make_app().get("/v1/search", params=params)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "q"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "x", "page": "0"}, "page"),
        ({"q": "x", "page": "abc"}, "page"),
        ({"q": "x", "page": "1001"}, "page"),
        ({"q": "x", "page": "99999999999999999999999"}, "page"),
        ({"q": "x", "page_size": "51"}, "page_size"),
        ({"q": "x", "page_size": "0"}, "page_size"),
    ],
)
def test_bad_paging_is_400_naming_the_parameter(make_app: Any, params: dict[str, str], field: str) -> None:
    """Out-of-range or non-numeric paging parameters are a 400 that names the parameter."""
    response = make_app().get("/v1/search", params=params)
    assert response.status_code == 400
    assert field in response.text
