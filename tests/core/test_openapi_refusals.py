"""Every refusal the app answers before a handler runs is documented on each operation that gives it: the
406 of an ``Accept`` admitting no JSON, the 400 of a query or path that is no text, the 415 of a body
declared otherwise than the route reads it; each as the problem details (or OAuth error) the app sends."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest
from fulcrum_core.api.acceptable import PREFIXES
from fulcrum_core.api.query_text import checked_query
from fulcrum_core.auth.guards import declared_scopes
from fulcrum_sdk.scopes import SCOPES

from tests.core.test_openapi_security import _handlers

_REGISTRY = ("registry:publish", "registry:review", "registry:install")
_REFUSALS = (400, 406, 415)
_STATUS = {"accept": 406, "escape": 400, "bytes": 400, "path": 400, "media type": 415, "charset": 415}
"""The status each probe of :func:`_probes` is refused with where it is refused."""


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


def _token(app: Any, path: str, handler: Any) -> str:
    """A token the operation lets through to its refusals: staff for the registry and staff scopes."""
    scopes = sorted(declared_scopes(handler.opt) or ())
    staff = path.startswith(("/registry", "/admin", "/metrics")) or any(
        SCOPES[name].kind == "staff" for name in scopes if name in SCOPES
    )
    if staff:
        return str(app.token("ops", [*scopes, *_REGISTRY], kind="staff"))
    return str(app.token(scopes=scopes or None))


def _probes(path: str, op: dict[str, Any]) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    """(what is wrong, URL, headers, body) of each refusal worth trying on the operation at ``path``."""
    filled = re.sub(r"\{\w+\}", "x", path)
    probes: list[tuple[str, str, dict[str, str], bytes | None]] = [
        ("accept", filled, {"Accept": "application/xml"}, None),
        ("escape", f"{filled}?x=%zz", {}, None),
        ("bytes", f"{filled}?x=%ff", {}, None),
    ]
    if "{" in path:
        probes.append(("path", re.sub(r"\{\w+\}", "%ff", path, count=1).replace("{", "").replace("}", ""),
                       {}, None))
    if "requestBody" in op or path.startswith("/oauth/"):
        probes.append(("media type", filled, {"Content-Type": "text/plain"}, b"{}"))
        probes.append((
            "charset", filled,
            {"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"}, b"decision=\xe9",
        ))
    return probes


def _assert_documented(
    spec: dict[str, Any], op: dict[str, Any], response: Any, where: tuple[str, ...]
) -> None:
    """``response`` is a status the operation documents, in a media type it lists, fitting its schema."""
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, (*where, response.status_code, response.text)
    media = response.headers["content-type"].partition(";")[0].strip()
    assert media in documented.get("content", {}), (*where, media, sorted(documented.get("content", {})))
    schema = {**documented["content"][media]["schema"], "components": spec["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(response.json())


def test_every_refusal_the_app_answers_is_documented(app: Any, spec: dict[str, Any]) -> None:
    """Each operation is sent each malformed request; whenever it answers a 400, 406 or 415, the document
    lists that status on that operation with the schema of the body it sent; and the refusals are given
    where they must be: 406 on every JSON API operation, a query that is no text refused wherever
    ``checked_query`` guards (``/registry/v1/audit/verify`` takes no parameter), a body that is not
    declared JSON refused by every operation reading one."""
    handlers = _handlers(app)
    refused: dict[str, set[tuple[str, str]]] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            handler = handlers[(method, path)]
            token = _token(app, path, handler)
            for kind, url, headers, body in _probes(path, op):
                response = app.client.request(
                    method.upper(), url, content=body,
                    headers={"Authorization": f"Bearer {token}", **headers},
                )
                if response.status_code in _REFUSALS:
                    _assert_documented(spec, op, response, (method, path, kind))
                if response.status_code == _STATUS[kind]:
                    refused.setdefault(kind, set()).add((method, path))
    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert refused["accept"] == {(m, p) for m, p in operations if p.startswith(PREFIXES)}
    guarded = {key for key, handler in handlers.items() if handler.resolve_before_request() is checked_query}
    assert ("get", "/registry/v1/audit/verify") in guarded
    assert guarded <= refused["escape"] & refused["bytes"]
    assert {(m, p) for m, p in operations if "{" in p} <= refused["path"]
    json_bodies = {
        (m, p) for m, p in operations if p.startswith(PREFIXES) and "requestBody" in spec["paths"][p][m]
    }
    assert ("post", "/registry/v1/publishers") in json_bodies
    assert json_bodies <= refused["media type"]
    assert {("post", "/oauth/login")} <= refused["charset"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/v1/home", "406"),
        ("post", "/registry/v1/publishers", "406"),
        ("post", "/registry/v1/publishers", "415"),
        ("post", "/registry/v1/releases/{release_id}/review", "415"),
        ("post", "/oauth/authorize", "415"),
        ("post", "/oauth/login", "415"),
        ("get", "/registry/v1/audit/verify", "400"),
    ],
)
def test_the_refusals_are_documented_as_problem_details(
    spec: dict[str, Any], method: str, path: str, status: str
) -> None:
    """Each refusal names its problem schema and says what it means, as the 400s, 401s and 403s do."""
    documented = spec["paths"][path][method]["responses"][status]
    assert set(documented["content"]) == {"application/problem+json"}, documented
    assert documented["description"]
    schema = documented["content"]["application/problem+json"]["schema"]
    name = schema["$ref"].rpartition("/")[2]
    required = set(spec["components"]["schemas"][name]["required"])
    assert {"type", "title", "status", "detail", "code"} <= required
