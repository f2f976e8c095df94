"""Every route of the real app declares its access, and no non-public route answers without a token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.auth.guards import declared_scopes, is_public
from fulcrum_core.settings import load_settings
from fulcrum_sdk.scopes import SCOPES
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute, WebSocketRoute
from litestar.testing import TestClient

# The only routes anyone may call without a token: health, the OAuth metadata and JWKS, and the OAuth
# protocol endpoints, which authenticate the client (secret, private_key_jwt or PKCE) and the customer
# (the bank's identity assertion at /oauth/login, which /oauth/logout ends) themselves instead of taking
# a bearer token.
PUBLIC_PATHS = {"/healthz", "/readyz", "/.well-known/oauth-authorization-server", "/oauth/jwks"}
OAUTH_PROTOCOL_PATHS = {
    "/oauth/authorize", "/oauth/login", "/oauth/logout", "/oauth/token", "/oauth/revoke", "/oauth/introspect"
}
# /problems documents the error codes, where every problem's `type` leads (docs, like /schema). The
# registry's PEP 503 index is not public: it takes a staff token, also as HTTP Basic for installers.
PUBLIC_PREFIXES = ("/schema", "/problems")

_SAMPLES = {"int": "1", "float": "1.5", "uuid": str(uuid.uuid4()), "date": "2025-01-01",
            "datetime": "2025-01-01T00:00:00", "path": "x", "str": "x", "decimal": "1"}
_PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")


@pytest.fixture
def app(tmp_path: Path) -> Litestar:
    """The real app (create_app) on a throwaway state_dir, with no plugins loaded."""
    settings = load_settings(environ={}, state_dir=str(tmp_path))
    return create_app(settings, runtime=build_runtime(settings, load_entry_points=False))


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """A client for ``app``."""
    with TestClient(app) as c:
        yield c


def _is_generated_options(handler: HTTPRouteHandler) -> bool:
    """Litestar adds an OPTIONS handler per path that only lists the allowed methods."""
    return handler.http_methods == {"OPTIONS"} and handler.fn.__name__ == "options_handler"


def _handlers(app: Litestar) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                if _is_generated_options(handler):
                    continue
                for method in sorted(handler.http_methods):
                    yield route.path, method, handler
        else:
            kind = type(route).__name__
            assert isinstance(route, WebSocketRoute), f"{route.path}: unexpected route type {kind}"


def _concrete(path: str) -> str:
    return _PARAM.sub(lambda m: _SAMPLES.get(m.group(2) or "str", "x"), path)


def test_every_route_declares_public_or_known_scopes(app: Litestar) -> None:
    """Each handler has opt public=True or a list of scopes from the vocabulary; none has both."""
    problems = []
    for path, method, handler in _handlers(app):
        opt = handler.opt
        scopes = declared_scopes(opt)
        if is_public(opt) == (scopes is not None):
            problems.append(f"{method} {path}: declare exactly one of public=True or scopes=[…] (opt={opt})")
        elif scopes is not None and (unknown := sorted(scopes - SCOPES.keys())):
            problems.append(f"{method} {path}: unknown scopes {unknown}")
        elif "public" in opt and opt["public"] is not True:
            problems.append(f"{method} {path}: public must be exactly True, not {opt['public']!r}")
    assert not problems, "\n".join(problems)
    assert any(True for _ in _handlers(app))


def test_only_the_expected_routes_are_public(app: Litestar) -> None:
    """Public routes are health, readiness, the schema, the OAuth metadata, JWKS and protocol endpoints."""
    public = {path for path, _, handler in _handlers(app) if is_public(handler.opt)}
    allowed = PUBLIC_PATHS | OAUTH_PROTOCOL_PATHS
    unexpected = sorted(p for p in public if p not in allowed and not p.startswith(PUBLIC_PREFIXES))
    assert not unexpected, f"routes public by mistake: {unexpected}"
    assert public >= PUBLIC_PATHS


def test_no_non_public_route_answers_without_a_token(app: Litestar, client: TestClient[Litestar]) -> None:
    """Calling each non-public route without a token gets 401 token.missing, never the handler."""
    leaks = []
    for path, method, handler in _handlers(app):
        if is_public(handler.opt):
            continue
        r = client.request(method, _concrete(path))
        if r.status_code != 401 or r.json().get("code") != "token.missing":
            leaks.append(f"{method} {path} → {r.status_code} {r.text[:120]}")
    assert not leaks, "\n".join(leaks)


def test_the_package_index_is_not_public(app: Litestar, client: TestClient[Litestar]) -> None:
    """The PEP 503 index and its wheel files take a token (pip sends it as Basic ``__token__``)."""
    index = [(path, handler) for path, _, handler in _handlers(app) if path.startswith("/registry/")]
    assert {p for p, _ in index} >= {"/registry/simple", "/registry/files/{sha256:str}/{filename:str}"}
    assert not [p for p, handler in index if is_public(handler.opt)]
    challenge = client.get("/registry/simple/").headers["www-authenticate"]
    assert challenge.startswith('Basic realm="fulcrum registry"')


def test_schema_is_public(client: TestClient[Litestar]) -> None:
    """The OpenAPI document is served without a token."""
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    assert "/v1/home" in r.json()["paths"]


def test_options_on_every_path_lists_its_methods(app: Litestar, client: TestClient[Litestar]) -> None:
    """OPTIONS is not authenticated (a browser's preflight carries no token): every path answers it
    with 204 and its ``allow`` header, the registry's guarded ones too, never a 500."""
    wrong = []
    for path in sorted({path for path, _, _ in _handlers(app)}):
        r = client.options(_concrete(path))
        if r.status_code != 204 or "OPTIONS" not in r.headers.get("allow", ""):
            wrong.append(f"OPTIONS {path} → {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_options_with_a_query_lists_its_methods(app: Litestar, client: TestClient[Litestar]) -> None:
    """OPTIONS with a query (a preflight of a listing's URL, ``?state=approved&state=retired`` too) answers
    as without one on every path: the query check reads no parameters of litestar's OPTIONS handler."""
    wrong = []
    for path in sorted({path for path, _, _ in _handlers(app)}):
        r = client.options(_concrete(path) + "?state=approved&state=retired&limit=5")
        if r.status_code != 204 or "OPTIONS" not in r.headers.get("allow", ""):
            wrong.append(f"OPTIONS {path}?... → {r.status_code} {r.text[:120]}")
    assert not wrong, "\n".join(wrong)
