"""The OpenAPI document lists the per-client rate limit's 429, with ``Retry-After``, on every route the
limit applies to, in the shape the middleware really sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest
from fulcrum_core.settings import RateLimit

PROBLEM = "application/problem+json"
ONE_PER_MINUTE = RateLimit(requests=1, window_seconds=60)


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app(rate_limit=ONE_PER_MINUTE)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in spec["paths"].items() for method, op in item.items()]


def test_every_limited_operation_documents_its_429(spec: dict[str, Any]) -> None:
    """Each /v1 operation (all take a token, so all are counted) lists a 429 problem with a required
    integer Retry-After; operations outside /v1 (registry, OAuth, health) list none. Before, no
    operation mentioned the 429 at all."""
    limited = 0
    for method, path, op in _operations(spec):
        refused = op["responses"].get("429")
        if not path.startswith("/v1/"):
            assert refused is None, (method, path)
            continue
        limited += 1
        assert refused is not None, (method, path)
        assert set(refused["content"]) == {PROBLEM}, (method, path)
        assert refused["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/RateLimitProblem"}
        header = refused["headers"]["Retry-After"]
        assert header["required"] is True
        assert header["schema"] == {"type": "integer", "minimum": 1}
    assert limited >= 10  # home, search, feeds, pages, plugins, transaction types, transactions, consents


def test_a_real_429_matches_the_documented_response(app: Any, spec: dict[str, Any]) -> None:
    """The second request in the window is refused exactly as /schema says: the body validates against
    the documented schema and holds nothing it does not list, and Retry-After is an integer ≥ 1."""
    token = app.token()
    assert app.get("/v1/home", token=token).status_code == 200
    refused = app.get("/v1/home", token=token)
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)
    documented = spec["paths"]["/v1/home"]["get"]["responses"]["429"]
    schema = {**documented["content"][PROBLEM]["schema"], "components": spec["components"]}
    body = refused.json()
    jsonschema_rs.Draft202012Validator(schema).validate(body)
    properties = spec["components"]["schemas"]["RateLimitProblem"]["properties"]
    assert set(body) == set(properties)
    assert body["code"] == "rate-limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert set(documented["headers"]) == {"Retry-After"}


def test_a_switched_off_limit_documents_no_429(make_app: Callable[..., Any]) -> None:
    """With the limit off no request is ever refused, and the document promises no 429."""
    app = make_app(rate_limit=RateLimit(enabled=False))
    spec = app.client.get("/schema/openapi.json").json()
    assert all("429" not in op["responses"] for _, _, op in _operations(spec))


def test_the_home_page_documents_pinned_positions(spec: dict[str, Any]) -> None:
    """A branch's pin reorders a slot without changing the response's shape: the operation's description
    says so (the schema has nothing to add), where before it said only "ranked"."""
    description = spec["paths"]["/v1/home"]["get"]["description"]
    assert "pin" in description
    assert "the shape is the same" in description
