"""The auth middleware on a small app: 401 problems with challenges, 403 for scopes, fail closed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fulcrum_core.auth.claims import AccessTokenClaims
from fulcrum_core.auth.middleware import BearerAuthenticationMiddleware, auth_middleware, bearer_token
from fulcrum_core.auth.principal import Principal
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.errors import problem_details_plugin
from fulcrum_core.settings import Settings, load_settings
from litestar import Litestar, Request, Router, get, post
from litestar.middleware import DefineMiddleware
from litestar.testing import TestClient


@get("/healthz", opt={"public": True}, sync_to_thread=False)
def healthz() -> dict[str, str]:
    """Public: no token needed."""
    return {"status": "ok"}


@get("/v1/home", opt={"scopes": ["home:read"]}, sync_to_thread=False)
def home(request: Request[Principal, AccessTokenClaims, Any]) -> dict[str, Any]:
    """Echo who called, to check request.user and request.auth."""
    return {
        "sub": request.user.sub,
        "kind": request.user.kind,
        "scopes": sorted(request.user.scopes),
        "client_id": request.auth.client_id,
        "claims_type": type(request.auth).__name__,
    }


@post("/v1/transactions", opt={"scopes": ["transactions:write", "home:read"]}, sync_to_thread=False)
def transact() -> dict[str, str]:
    """Needs two scopes."""
    return {"ok": "yes"}


@get("/v1/whoami", opt={"scopes": []}, sync_to_thread=False)
def whoami(request: Request[Principal, AccessTokenClaims, Any]) -> str:
    """Any valid token."""
    return request.user.sub


@get("/v1/forgotten", sync_to_thread=False)
def forgotten() -> str:
    """Declares nothing: must fail closed."""
    return "should never be served"


@get("/v1/stringy", opt={"scopes": "home:read"}, sync_to_thread=False)
def stringy() -> str:
    """Declares scopes as a bare string: a mistake, must fail closed."""
    return "should never be served"


@get("/staff/plugins", sync_to_thread=False)
def staff_plugins() -> str:
    """Scopes come from the router layer above."""
    return "staff view"


staff_router = Router("/", route_handlers=[staff_plugins], opt={"scopes": ["platform:read"]})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh state_dir."""
    return load_settings(environ={}, state_dir=str(tmp_path), issuer="https://fulcrum.test")


@pytest.fixture
def tokens(settings: Settings) -> TokenService:
    """The service the app verifies with."""
    return TokenService.from_settings(settings)


@pytest.fixture
def client(settings: Settings, tokens: TokenService) -> Iterator[TestClient[Litestar]]:
    """A small app wired like create_app: the middleware, problem details, and a runtime stub."""
    app = Litestar(
        route_handlers=[healthz, home, transact, whoami, forgotten, stringy, staff_router],
        middleware=[auth_middleware()],
        plugins=[problem_details_plugin("http://testserver.local/problems/")],
    )
    app.state.runtime = SimpleNamespace(settings=settings, tokens=tokens)
    with TestClient(app) as c:
        yield c


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_public_route_needs_no_token(client: TestClient[Litestar]) -> None:
    """A handler with opt public=True answers without a token."""
    assert client.get("/healthz").json() == {"status": "ok"}


def test_valid_token_sets_user_and_auth(client: TestClient[Litestar], tokens: TokenService) -> None:
    """With a good token the handler sees the Principal in request.user and the claims in request.auth."""
    r = client.get("/v1/home", headers=_auth(tokens.issue("c-0755-001", ["home:read"], client_id="app")))
    assert r.status_code == 200
    assert r.json() == {
        "sub": "c-0755-001", "kind": "customer", "scopes": ["home:read"], "client_id": "app",
        "claims_type": "AccessTokenClaims",
    }


def test_scheme_is_case_insensitive(client: TestClient[Litestar], tokens: TokenService) -> None:
    """'bearer' in any case is accepted (RFC 7235 auth schemes are case-insensitive)."""
    token = tokens.issue("c-1", ["home:read"])
    assert client.get("/v1/home", headers={"Authorization": f"bearer  {token} "}).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}, {"Authorization": "Bearer"},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}])
def test_missing_token_is_401_with_a_bare_challenge(
    client: TestClient[Litestar], headers: dict[str, str]
) -> None:
    """No Bearer token: 401 problem token.missing and a challenge without an error code (RFC 6750 §3.1)."""
    r = client.get("/v1/home", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == 401
    assert body["code"] == "token.missing"
    assert r.headers["www-authenticate"] == 'Bearer realm="fulcrum"'


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("Basic dXNlcjpwYXNz", "the Authorization header uses the 'Basic' scheme; a Bearer access token is "
         "expected (Authorization: Bearer <token>)"),
        (None, "no access token was sent"),
        ("Bearer", "no access token was sent"),
    ],
    ids=["basic", "none", "empty-bearer"],
)
def test_another_scheme_is_told_a_bearer_token_is_expected(
    client: TestClient[Litestar], authorization: str | None, detail: str
) -> None:
    """``Authorization: Basic …`` was answered "no access token was sent"."""
    r = client.get("/v1/home", headers={"Authorization": authorization} if authorization else {})
    assert (r.status_code, r.json()["code"], r.json()["detail"]) == (401, "token.missing", detail)


def test_bad_token_is_401_invalid_token(client: TestClient[Litestar], tokens: TokenService) -> None:
    """A tampered token: 401 problem token.bad_signature with an invalid_token challenge."""
    header, _, sig = tokens.issue("c-1", ["home:read"]).split(".")
    r = client.get("/v1/home", headers=_auth(f"{header}.e30.{sig}"))
    assert r.status_code == 401
    assert r.json()["code"] == "token.bad_signature"
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="fulcrum", error="invalid_token", error_description="')
    assert challenge.count('"') == 6  # the description cannot break out of its quotes


def test_expired_token_is_401(settings: Settings, tokens: TokenService, client: TestClient[Litestar]) -> None:
    """A token issued 10 minutes ago is refused as token.expired."""
    past = TokenService.from_settings(settings, clock=lambda: time.time() - 600)
    r = client.get("/v1/home", headers=_auth(past.issue("c-1", ["home:read"])))
    assert (r.status_code, r.json()["code"]) == (401, "token.expired")


def test_wrong_audience_is_401(client: TestClient[Litestar], tokens: TokenService) -> None:
    """A token for another audience is refused as token.wrong_audience."""
    r = client.get("/v1/home", headers=_auth(tokens.issue("c-1", ["home:read"], audience="elsewhere")))
    assert (r.status_code, r.json()["code"]) == (401, "token.wrong_audience")


def test_missing_scope_is_403_naming_it(client: TestClient[Litestar], tokens: TokenService) -> None:
    """A token lacking a declared scope: 403 listing what is missing, with an insufficient_scope challenge."""
    r = client.post("/v1/transactions", headers=_auth(tokens.issue("c-1", ["home:read"])))
    assert r.status_code == 403
    body = r.json()
    assert body["code"] == "scope.insufficient"
    assert body["missing_scopes"] == ["transactions:write"]
    assert "transactions:write" in body["detail"]
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", error_description="missing scope: transactions:write", '
        'scope="home:read transactions:write"'
    )


def test_all_declared_scopes_pass(client: TestClient[Litestar], tokens: TokenService) -> None:
    """Holding every declared scope lets the request through."""
    token = tokens.issue("c-1", ["home:read", "transactions:write"])
    assert client.post("/v1/transactions", headers=_auth(token)).json() == {"ok": "yes"}


def test_empty_scope_list_means_any_valid_token(client: TestClient[Litestar], tokens: TokenService) -> None:
    """opt scopes=[] accepts any valid token, and still refuses no token."""
    assert client.get("/v1/whoami", headers=_auth(tokens.issue("c-9", []))).text == "c-9"
    assert client.get("/v1/whoami").status_code == 401


@pytest.mark.parametrize("path", ["/v1/forgotten", "/v1/stringy"])
def test_undeclared_route_fails_closed(client: TestClient[Litestar], tokens: TokenService, path: str) -> None:
    """A route without a (well-formed) declaration is 403 route.undeclared even for a fully scoped token,
    and 401 without a token."""
    token = tokens.issue("c-1", sorted({"home:read", "transactions:write", "search:read"}))
    r = client.get(path, headers=_auth(token))
    assert (r.status_code, r.json()["code"]) == (403, "route.undeclared")
    assert client.get(path).status_code == 401


def test_layer_scopes_apply_and_customer_cannot_reach_staff_route(
    client: TestClient[Litestar], tokens: TokenService
) -> None:
    """Scopes declared on a router cover its handlers: a staff token passes, a customer token cannot."""
    staff = tokens.issue("ops-li", ["platform:read"], kind="staff", client_id="staff-console")
    assert client.get("/staff/plugins", headers=_auth(staff)).text == "staff view"
    customer = tokens.issue("c-1", sorted({"home:read", "transactions:read"}))
    r = client.get("/staff/plugins", headers=_auth(customer))
    assert (r.status_code, r.json()["missing_scopes"]) == (403, ["platform:read"])


def test_options_request_needs_no_token(client: TestClient[Litestar]) -> None:
    """An OPTIONS request to a protected path is answered without a token, as litestar's default has it."""
    r = client.options("/v1/home")
    assert r.status_code == 204
    assert "GET" in r.headers["allow"]


def test_public_route_ignores_a_bad_token(client: TestClient[Litestar]) -> None:
    """A public route is not authenticated at all: a malformed token there is no 401."""
    assert client.get("/healthz", headers=_auth("not-a-jwt")).json() == {"status": "ok"}


def test_excluded_paths_still_skip_authentication(settings: Settings, tokens: TokenService) -> None:
    """With a path pattern excluded the middleware takes litestar's own path: that path needs no token,
    the others still do."""
    app = Litestar(
        route_handlers=[home, whoami],
        middleware=[DefineMiddleware(BearerAuthenticationMiddleware, exclude=["/v1/whoami"])],
        plugins=[problem_details_plugin("http://testserver.local/problems/")],
    )
    app.state.runtime = SimpleNamespace(settings=settings, tokens=tokens)
    with TestClient(app) as c:
        assert c.get("/v1/home").status_code == 401
        token = tokens.issue("c-1", ["home:read"])
        assert c.get("/v1/home", headers=_auth(token)).json()["sub"] == "c-1"
        r = c.get("/v1/whoami")
        assert r.status_code == 500  # reached the handler: request.user was never set


def test_unknown_path_is_404_not_401(client: TestClient[Litestar]) -> None:
    """Routing happens first: an unknown path is a plain 404."""
    assert client.get("/v1/nope").status_code == 404


@pytest.mark.parametrize(
    ("value", "token"),
    [(None, ""), ("", ""), ("Bearer abc", "abc"), ("BEARER  abc ", "abc"), ("Basic abc", ""), ("Bearer", "")],
)
def test_bearer_token_parsing(value: str | None, token: str) -> None:
    """bearer_token extracts the token of a Bearer header and nothing else."""
    assert bearer_token(value) == token


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ([("Authorization", "Bearer a"), ("Authorization", "Bearer b")], "token.malformed"),
        ([("Authorization", "Basic dXNlcjpwYXNz")], "token.missing"),
        ([("Authorization", "Bearer not-a-jwt")], "token.malformed"),
        ([], "token.missing"),
    ],
    ids=["twice", "basic", "garbage", "none"],
)
def test_every_401_names_the_authorization_header(
    client: TestClient[Litestar], headers: list[tuple[str, str]], code: str
) -> None:
    """A 401 is about the Authorization header, so its problem names it as ``field``, like every problem
    about a header does (two of them answered with no field at all)."""
    r = client.get("/v1/home", headers=headers)
    assert (r.status_code, r.json()["code"], r.json().get("field")) == (401, code, "Authorization")
