"""Every client mistake becomes an RFC 9457 problem that names the field, whoever detected it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

PROBLEM = "application/problem+json"


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    """The real app with no plugins: the error paths need none."""
    return make_app()


def test_bad_query_parameter_names_the_parameter(app: Any) -> None:
    """A page that is not an integer is a 400 naming ``page``, in our problem shape."""
    response = app.get("/v1/search?q=x&page=abc")
    body = response.json()
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert (body["code"], body["field"]) == ("invalid-input", "page")
    assert body["detail"].startswith("page: ")
    assert body["type"].endswith("/invalid-input")


def test_out_of_range_parameter_names_the_parameter(app: Any) -> None:
    """A feed limit below 1 is a 400 naming ``limit``, the value sent and the range it takes."""
    response = app.get("/v1/feeds/wealth?limit=0")
    assert response.status_code == 400
    assert response.json()["field"] == "limit"
    assert response.json()["detail"] == "limit: '0' is not an integer from 1 to 50"


@pytest.mark.parametrize(
    ("path", "field", "message"),
    [
        ("/v1/search?q=x&page=abc", "page", "'abc' is not an integer from 1 to 1000"),
        ("/v1/search?q=x&page_size=0", "page_size", "'0' is not an integer from 1 to 50"),
        ("/v1/feeds/wealth?limit=x", "limit", "'x' is not an integer from 1 to 50"),
        ("/v1/feeds/wealth?limit=51", "limit", "'51' is not an integer from 1 to 50"),
    ],
)
def test_every_v1_query_parameter_names_the_value_and_the_valid_ones(
    app: Any, path: str, field: str, message: str
) -> None:
    """Each query parameter of the /v1 routes, refused by litestar, is our 400 naming the parameter, the
    value sent and the values it takes (before: msgspec's ``Expected `int`, got `str` ``)."""
    from fulcrum_core.api.input_problems import InputProblem

    response = app.get(path)
    assert response.status_code == 400, response.text
    problem = msgspec.convert(response.json(), InputProblem)  # the documented shape, exactly
    assert (problem.code, problem.field, problem.detail) == ("invalid-input", field, f"{field}: {message}")
    assert problem.errors is not None
    assert problem.errors[0].value == message.split("'")[1]


def test_a_repeated_parameter_is_refused_before_litestar_reads_one_of_its_values(app: Any) -> None:
    """Litestar reads the last of a repeated single-valued parameter, so ``page=1&page=x`` was judged by
    ``'x'`` alone and ``page=x&page=1`` passed as page 1: either is now a 400 naming the parameter."""
    for query in ("page=1&page=x", "page=x&page=1"):
        response = app.get(f"/v1/search?q=x&{query}")
        assert response.status_code == 400
        assert (response.json()["field"], response.json()["detail"]) == (
            "page", "query parameter 'page' is sent 2 times; send it once"
        )


def test_missing_transaction_body_names_the_body(app: Any) -> None:
    """An empty POST body is a 400 that says a JSON body is required, not an internal key name."""
    response = app.client.post(
        "/v1/transactions",
        content=b"",
        headers={"Authorization": f"Bearer {app.token()}", "Idempotency-Key": "k"},
    )
    body = response.json()
    assert response.status_code == 400
    assert body["field"] == "body"
    assert "JSON request body is required" in body["detail"]


def test_malformed_json_is_a_problem_naming_the_body(app: Any) -> None:
    """Malformed JSON is a 400 problem with ``field: body`` and the parser's message: for a transaction
    the catalogue's ``body.malformed`` (litestar's decoding answered ``invalid-input`` before the
    pipeline's own check could), ``invalid-input`` on other routes."""
    response = _post_json(app, "/v1/transactions", b"{bad", app.token())
    body = response.json()
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert (body["code"], body["field"]) == ("body.malformed", "body")
    assert "not valid JSON" in body["detail"]


TRUNCATED = (
    "the body is not valid JSON: the body ends before the JSON does (a closing quote, bracket or brace "
    "is missing)"
)


@pytest.mark.parametrize(
    "path", ["/v1/transactions", "/registry/v1/publishers", "/registry/v1/releases/1/suspend"]
)
@pytest.mark.parametrize("content", [b'{"id": "city-coup', b'{"reason": "gone", "ids": [1, 2', b"{"])
def test_a_body_cut_short_is_worded_alike_on_every_route(app: Any, path: str, content: bytes) -> None:
    """A JSON body that stops early says what is missing on every route, in the words the transactions
    pipeline used alone; litestar's decoding passed on msgspec's "Input data was truncated"."""
    token = app.token() if path.startswith("/v1") else app.runtime.tokens.issue(
        "rita", ["registry:review"], kind="staff"
    )
    response = _post_json(app, path, content, token)
    body = response.json()
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert (body["field"], body["detail"]) == ("body", TRUNCATED)


@pytest.mark.parametrize(
    "path", ["/v1/transactions", "/registry/v1/publishers", "/registry/v1/releases/1/suspend"]
)
@pytest.mark.parametrize(
    ("content", "at"),
    [
        (b'{"reason": "\\ud800"}', 12),
        (b'{"reason": "gone", "\\uD83D": 1}', 20),
        (b'{"a": "\\\\\\ud800x"}', 9),  # an escaped backslash, then the escape
    ],
)
def test_half_a_surrogate_pair_is_named_not_called_a_body_cut_short(
    app: Any, path: str, content: bytes, at: int
) -> None:
    """msgspec reads a lone ``\\ud800`` escape as "Input data was truncated", which the host turned into
    "the body ends before the JSON does" about a body that did not; now the escape and its byte."""
    token = app.token() if path.startswith("/v1") else app.runtime.tokens.issue(
        "rita", ["registry:review"], kind="staff"
    )
    body = _post_json(app, path, content, token).json()
    escape = content[at:at + 6].decode()
    assert (body["status"], body["field"]) == (400, "body")
    assert body["detail"] == (
        f"the body is not valid JSON: the escape '{escape}' at byte {at} is the first half of a UTF-16 "
        "surrogate pair without its second (a \\uDC00–\\uDFFF escape right after it); send the character "
        "as UTF-8 or as both escapes"
    )


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/v1/nothing-here", "'/v1/nothing-here'"),
        ("/registry/v1/releases/1/nothing", "'/registry/v1/releases/1/nothing'"),
    ],
)
def test_a_path_no_route_answers_is_named_with_where_the_routes_are(app: Any, path: str, shown: str) -> None:
    """The router's own 404 said "Not Found" alone: nothing said that the path, not a resource, was the
    trouble. (``/registry/v1/releases/abc`` has a route: its 400 names ``release_id``.)"""
    problem = app.get(path).json()
    assert (problem["status"], problem["code"], problem["field"]) == (404, "not-found", "path")
    assert problem["detail"] == (
        f"no route answers {shown}: /schema/openapi.json lists the routes and what each path parameter takes"
    )


def test_a_body_too_large_says_how_large_one_may_be(app: Any) -> None:
    """The 413 said "Request Entity Too Large" alone: now the route's limit, in bytes and KiB."""
    response = _post_json(app, "/v1/transactions", b" " * (64 * 1024 + 1), app.token())
    problem = response.json()
    assert (response.status_code, problem["code"], problem["field"]) == (413, "too-large", "body")
    assert problem["detail"] == "the body is larger than this route reads: at most 65536 bytes (64 KiB)"


def test_a_method_a_route_does_not_take_is_named_with_those_it_takes(app: Any) -> None:
    """The router's own 405 said "Method Not Allowed" alone; the ``Allow`` header listed the methods."""
    response = app.client.put("/v1/home")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("method-not-allowed", "method")
    assert problem["detail"] == "PUT is not a method of '/v1/home', which takes GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    ("path", "allow"), [("/v1/home", "GET, HEAD, OPTIONS"), ("/v1/transactions", "OPTIONS, POST")]
)
def test_the_methods_a_route_takes_include_head_where_it_is_answered(app: Any, path: str, allow: str) -> None:
    """Every GET route answers HEAD (``head.py``), but ``Allow`` on OPTIONS and on a 405 left it out, so
    a client reading it would not try HEAD; a route without GET does not claim it."""
    assert app.client.options(path).headers["allow"] == allow
    assert app.client.head("/v1/home", headers={"Authorization": f"Bearer {app.token()}"}).status_code == 200


@pytest.mark.parametrize("path", ["/v1/transactions", "/registry/v1/publishers"])
def test_other_malformed_json_keeps_the_parsers_words_after_the_same_lead(app: Any, path: str) -> None:
    """JSON broken otherwise says so as the parser does, after the same lead on every route."""
    token = app.token() if path.startswith("/v1") else app.runtime.tokens.issue(
        "rita", ["registry:review"], kind="staff"
    )
    body = _post_json(app, path, b"{bad", token).json()
    assert body["detail"] == (
        "the body is not valid JSON: JSON is malformed: object keys must be strings (byte 1)"
    )


def _post_json(app: Any, path: str, content: bytes, token: str) -> Any:
    """POST ``content`` as JSON with a bearer token (and an Idempotency-Key, which only transactions read)."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "k", "content-type": "application/json"}
    return app.client.post(path, content=content, headers=headers)


def test_unknown_route_is_a_not_found_problem(app: Any) -> None:
    """An unknown path is a 404 problem with a stable code, not an HTML page."""
    response = app.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "not-found"


@pytest.mark.parametrize("path", ["/v1/transactions", "/registry/v1/publishers"])
def test_a_body_that_is_not_utf8_is_a_problem_naming_the_body(app: Any, path: str) -> None:
    """A JSON string holding bytes that are not UTF-8 is a 400 naming the body, not a 500 (msgspec
    raises UnicodeDecodeError there, which litestar does not expect)."""
    token = app.token() if path.startswith("/v1") else app.runtime.tokens.issue(
        "rita", ["registry:review"], kind="staff"
    )
    response = _post_json(app, path, b'{"type": "x", "params": {}, "note": "\xff"}', token)
    body = response.json()
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert body["field"] == "body"
    assert "UTF-8" in body["detail"]


def test_the_transaction_service_refuses_a_body_that_is_not_utf8() -> None:
    """The service decodes the raw bytes itself (to hash them): the same mistake is its 400 too."""
    from fulcrum_core.errors import BadRequest
    from fulcrum_core.transactions.checks import parse_body

    with pytest.raises(BadRequest) as refused:
        parse_body(b'{"type": "\xff", "params": {}}')
    assert (refused.value.code, refused.value.field) == ("body.malformed", "body")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"params": {}}, "type"),
        ({}, "type"),
    ],
)
def test_a_missing_body_field_is_named(app: Any, body: dict[str, Any], field: str) -> None:
    """A body without a required field names that field, not the body as a whole."""
    response = app.client.post(
        "/v1/transactions", json=body,
        headers={"Authorization": f"Bearer {app.token()}", "Idempotency-Key": "k"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


@pytest.mark.parametrize("depth", [950, 5_000])
def test_a_body_nested_too_deeply_is_a_problem_naming_the_body(app: Any, depth: int) -> None:
    """Thousands of nested arrays (a few KB): a 400 naming the body, never a 500 from the parser's
    recursion limit; a depth the parser takes is refused by the body's own checks."""
    body = b'{"type": "x", "params": {"x": ' + b"[" * depth + b"]" * depth + b"}}"
    response = _post_json(app, "/v1/transactions", body, app.token())
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
