"""Every documented 400 is the problem details the app really sends, never litestar's own error shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs  # schemathesis' own validator
import pytest

PROBLEM = "application/problem+json"


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "responses" in op
    ]


def test_every_documented_400_is_problem_details(spec: dict[str, Any]) -> None:
    """Operations that take input document a 400 as problem+json (the OAuth protocol endpoints in
    RFC 6749's own JSON); those that take none document none."""
    with_400 = []
    oauth_protocol = {("get", "/oauth/authorize"), ("post", "/oauth/token"), ("post", "/oauth/revoke"),
                      ("post", "/oauth/introspect")}
    for path, method, op in _operations(spec):
        response = op["responses"].get("400")
        if response is None:
            continue
        with_400.append((method, path))
        expected = {"application/json"} if (method, path) in oauth_protocol else {PROBLEM}
        assert set(response["content"]) == expected, (method, path)
    assert ("get", "/v1/search") in with_400
    assert ("post", "/v1/transactions") in with_400
    assert ("post", "/oauth/authorize") in with_400  # refuses its form fields itself
    assert ("get", "/v1/home") not in with_400
    problem = spec["components"]["schemas"]["InputProblem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])


@pytest.mark.parametrize("query", ["", "?q=" + "x" * 500])
def test_a_real_400_matches_the_documented_schema(app: Any, spec: dict[str, Any], query: str) -> None:
    """A search without ``q``, or with one too long: the response validates against what /schema says."""
    r = app.client.get(f"/v1/search{query}", headers={"Authorization": f"Bearer {app.token()}"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["field"] == "q"
    content = spec["paths"]["/v1/search"]["get"]["responses"]["400"]["content"][PROBLEM]
    jsonschema_rs.Draft202012Validator({**content["schema"], "components": spec["components"]}).validate(body)


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password", "client_id": "fulcrum-app"}, 400, "unsupported_grant_type"),
        (
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            401,
            "invalid_client",
        ),
    ],
)
def test_oauth_errors_match_the_documented_rfc6749_shape(
    app: Any, spec: dict[str, Any], form: dict[str, str], status: int, error: str
) -> None:
    """The token endpoint answers in RFC 6749's own error JSON, and /schema says so for each status."""
    r = app.client.post("/oauth/token", data=form)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error
    content = spec["paths"]["/oauth/token"]["post"]["responses"][str(status)]["content"]
    schema = {**content["application/json"]["schema"], "components": spec["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(body)
    assert {"error"} <= set(spec["components"]["schemas"]["OAuthError"]["required"])


@pytest.mark.parametrize(
    ("method", "path", "documented"),
    [
        ("get", "/v1/transactions/nope", "/v1/transactions/{tx_id}"),
        ("get", "/v1/transactions/a%00b", "/v1/transactions/{tx_id}"),  # never reaches the database
        ("delete", "/v1/consents/nope", "/v1/consents/{consent_id}"),
        ("get", "/v1/feeds/nope", "/v1/feeds/{column}"),
    ],
)
def test_a_real_404_matches_the_documented_schema(
    app: Any, spec: dict[str, Any], method: str, path: str, documented: str
) -> None:
    """Unknown ids and columns are 404 problems, and /schema documents that 404 for the operation."""
    r = app.client.request(method.upper(), path, headers={"Authorization": f"Bearer {app.token()}"})
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    content = spec["paths"][documented][method]["responses"]["404"]["content"][PROBLEM]
    schema = {**content["schema"], "components": spec["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(r.json())
