"""The OpenAPI document says who may call what: the OAuth 2 scheme, each operation's scopes, and its
401 and 403 in the problem shape the middleware really sends."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest
from fulcrum_core.auth.guards import declared_scopes

PROBLEM = "application/problem+json"


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


def _handlers(app: Any) -> dict[tuple[str, str], Any]:
    """Handlers by (method, path as the document writes it: ``{id}``, not litestar's ``{id:int}``)."""
    return {
        (method.lower(), re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)): handler
        for route in app.client.app.routes
        for handler in getattr(route, "route_handlers", ())
        if handler.resolve_include_in_schema()
        for method in handler.http_methods
    }


def test_every_protected_operation_names_its_scopes(app: Any, spec: dict[str, Any]) -> None:
    """Protected operations require the oauth2 scheme with exactly the scopes the route declares and
    document a 401 and a 403; public ones (health, OAuth endpoints, /schema) require nothing."""
    handlers = _handlers(app)
    protected = public = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            handler = handlers[(method, path)]
            if handler.opt.get("public") is True:
                public += 1
                assert "security" not in op, (method, path)
                continue
            protected += 1
            bearer = {"oauth2": sorted(declared_scopes(handler.opt) or ())}
            basic = [{"tokenBasic": []}] if path.startswith("/registry/") and "/v1/" not in path else []
            assert op["security"] == [bearer, *basic], (method, path)
            for status in ("401", "403"):
                assert set(op["responses"][status]["content"]) == {PROBLEM}, (method, path, status)
    assert protected > 10
    assert public >= 5
    assert spec["paths"]["/v1/home"]["get"]["security"] == [{"oauth2": ["home:read"]}]
    assert spec["paths"]["/registry/simple"]["get"]["security"] == [{"oauth2": []}, {"tokenBasic": []}]
    basic = spec["components"]["securitySchemes"]["tokenBasic"]
    assert (basic["type"], basic["scheme"]) == ("http", "basic")
    assert "__token__" in basic["description"]
    flows = spec["components"]["securitySchemes"]["oauth2"]["flows"]
    assert flows["authorizationCode"]["tokenUrl"].endswith("/oauth/token")
    assert "home:read" in flows["authorizationCode"]["scopes"]
    assert "slot:home.banner" not in flows["authorizationCode"]["scopes"]  # granted to plugins, not tokens


@pytest.mark.parametrize(("token", "status"), [("garbage", 401), ("staff", 403)])
def test_real_401_and_403_match_the_documented_schema(
    app: Any, spec: dict[str, Any], token: str, status: int
) -> None:
    """A bad token and a token without home:read: each response validates against what /schema says."""
    staff = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    bearer = token if token == "garbage" else staff
    r = app.client.get("/v1/home", headers={"Authorization": f"Bearer {bearer}"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    content = spec["paths"]["/v1/home"]["get"]["responses"][str(status)]["content"][PROBLEM]
    schema = {**content["schema"], "components": spec["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(r.json())
