"""The lean per-request paths keep their behaviour: raw header reads, per-handler scope caching, the
request-id echo on the raw header list, the key set's inline re-check and ids across a fork."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fulcrum_core.api.deps import current_customer, request_id_of
from fulcrum_core.auth.keys import KeyStore
from fulcrum_core.auth.middleware import auth_middleware
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.errors import Forbidden, problem_details_plugin
from fulcrum_core.observability import logging as obs_logging
from fulcrum_core.observability.logging import RequestIdMiddleware, echo_request_id
from fulcrum_core.observability.ratelimit import RedisCounter
from fulcrum_core.settings import Settings, load_settings
from litestar import Litestar, Request, Response, get, post
from litestar.testing import RequestFactory, TestClient


@get("/v1/thing", opt={"scopes": ["home:read"]}, sync_to_thread=False)
def read_thing() -> str:
    """Reading needs home:read."""
    return "read"


@post("/v1/thing", opt={"scopes": ["transactions:write"]}, sync_to_thread=False)
def write_thing() -> str:
    """Writing the same path needs another scope."""
    return "written"


@get("/v1/own-id", opt={"scopes": []}, sync_to_thread=False)
def own_id() -> Response[str]:
    """Sets its own X-Request-ID, which the echo must replace rather than duplicate."""
    return Response("x", headers={"X-Request-ID": "handler-made"})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a fresh state_dir."""
    return load_settings(environ={}, state_dir=str(tmp_path), issuer="https://fulcrum.test")


@pytest.fixture
def tokens(settings: Settings) -> TokenService:
    """The service the app verifies with."""
    return TokenService.from_settings(settings)


@pytest.fixture
def app(settings: Settings, tokens: TokenService) -> Litestar:
    """A small app wired like create_app: request ids, authentication, problem details."""
    app = Litestar(
        route_handlers=[read_thing, write_thing, own_id],
        middleware=[RequestIdMiddleware, auth_middleware()],
        plugins=[problem_details_plugin("http://testserver.local/problems/")],
        before_send=[echo_request_id],
    )
    app.state.runtime = SimpleNamespace(settings=settings, tokens=tokens)
    return app


async def _call(app: Litestar, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, Any]:
    """One request straight through ASGI, so header names reach the app exactly as given."""
    scope: MutableMapping[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
        "state": {},
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"], sent[0]["headers"]


def test_authorization_header_name_in_any_case_is_read(app: Litestar, tokens: TokenService) -> None:
    """ASGI servers should lowercase header names but need not: ``Authorization`` still authenticates."""
    token = tokens.issue("c-1", ["home:read"]).encode()
    status, _ = asyncio.run(_call(app, "GET", "/v1/thing", [(b"Authorization", b"Bearer " + token)]))
    assert status == 200


def test_two_authorization_headers_are_refused(app: Litestar, tokens: TokenService) -> None:
    """A request carries one Authorization header (it is no list, RFC 9110 §11.6.2). With two, the first
    was used and the other ignored, so a proxy reading the last and the host the first judged different
    credentials; now 401 ``token.malformed`` whichever comes first, two copies of one token too."""
    good = b"Bearer " + tokens.issue("c-1", ["home:read"]).encode()
    for other in (b"Basic dXNlcjpwYXNz", b"Bearer x", good):
        for pair in ((good, other), (other, good)):
            sent = [(b"authorization", value) for value in pair]
            status, headers = asyncio.run(_call(app, "GET", "/v1/thing", sent))
            assert status == 401
            challenge = dict(headers)[b"www-authenticate"].decode()
            assert 'error="invalid_token"' in challenge
            assert "Authorization header is sent 2 times; send it once" in challenge


def test_each_method_of_one_path_checks_its_own_scopes(app: Litestar, tokens: TokenService) -> None:
    """The remembered scopes are per handler: GET and POST of one path never borrow each other's."""
    reader = {"Authorization": f"Bearer {tokens.issue('c-1', ['home:read'])}"}
    writer = {"Authorization": f"Bearer {tokens.issue('c-1', ['transactions:write'])}"}
    with TestClient(app) as client:
        for _ in range(2):  # the second round is served from the remembered declarations
            assert client.get("/v1/thing", headers=reader).status_code == 200
            refused = client.post("/v1/thing", headers=reader)
            assert (refused.status_code, refused.json()["missing_scopes"]) == (403, ["transactions:write"])
            assert client.post("/v1/thing", headers=writer).status_code == 201
            assert client.get("/v1/thing", headers=writer).json()["missing_scopes"] == ["home:read"]


def test_handler_set_request_id_is_replaced_not_duplicated(app: Litestar, tokens: TokenService) -> None:
    """A response that already names an X-Request-ID leaves with exactly one: the request's."""
    token = tokens.issue("c-1", [])
    with TestClient(app) as client:
        r = client.get("/v1/own-id", headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-9"})
    assert r.status_code == 200
    assert r.headers.get_list("x-request-id") == ["trace-9"]


def test_refusals_carry_the_request_id(app: Litestar) -> None:
    """A 401 sent by litestar's exception handling outside the middleware still names the request."""
    with TestClient(app) as client:
        r = client.get("/v1/thing", headers={"X-Request-ID": "trace-401"})
    assert (r.status_code, r.headers["x-request-id"]) == (401, "trace-401")


def test_unrouted_answers_carry_a_request_id_too(app: Litestar) -> None:
    """A 404 (no such path) and a 405 (no such method) are answered before any middleware runs: they
    still name an id, the client's when well-formed, else a new one, and one per request."""
    with TestClient(app) as client:
        missing = client.get("/v1/nowhere", headers={"X-Request-ID": "trace-404"})
        wrong = client.delete("/v1/thing")
        again = client.delete("/v1/thing", headers={"X-Request-ID": "not well formed!"})
    assert (missing.status_code, missing.headers.get_list("x-request-id")) == (404, ["trace-404"])
    assert wrong.status_code == 405
    assert re.fullmatch(r"[0-9a-f]{32}", wrong.headers["x-request-id"])
    assert again.status_code == 405
    assert re.fullmatch(r"[0-9a-f]{32}", again.headers["x-request-id"])
    assert again.headers["x-request-id"] != wrong.headers["x-request-id"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"content-type", b"text/plain")], [(b"content-type", b"text/plain"), (b"x-request-id", b"r-1")]),
        (((b"content-type", b"text/plain"),), [(b"content-type", b"text/plain"), (b"x-request-id", b"r-1")]),
        (None, [(b"x-request-id", b"r-1")]),
        (
            [(b"X-Request-ID", b"old"), (b"a", b"1"), (b"x-request-id", b"older")],
            [(b"a", b"1"), (b"x-request-id", b"r-1")],
        ),
    ],
)
def test_echo_edits_the_raw_header_list(headers: Any, expected: list[tuple[bytes, bytes]]) -> None:
    """Lists are edited in place, other iterables copied, a missing list created, old ids dropped."""
    message: dict[str, Any] = {"type": "http.response.start", "status": 200}
    if headers is not None:
        message["headers"] = headers
    asyncio.run(echo_request_id(message, {"state": {"request_id": "r-1"}}))  # type: ignore[arg-type]
    assert message["headers"] == expected


@pytest.mark.parametrize(
    ("message", "scope"),
    [
        ({"type": "http.response.body", "body": b"x"}, {"state": {"request_id": "r-1"}}),
        ({"type": "http.response.start", "status": 200, "headers": []}, {"state": {}}),
        ({"type": "http.response.start", "status": 200, "headers": []}, {}),
    ],
)
def test_echo_leaves_other_messages_and_id_less_scopes_alone(message: dict[str, Any], scope: Any) -> None:
    """Body messages and requests without an id pass through unchanged."""
    before = {k: (list(v) if isinstance(v, list) else v) for k, v in message.items()}
    asyncio.run(echo_request_id(message, scope))  # type: ignore[arg-type]
    assert message == before


def test_request_id_of_without_middleware_uses_a_good_header_once() -> None:
    """Without the middleware a well-formed header is the id, kept for the rest of the request."""
    request = RequestFactory().get("/", headers={"X-Request-ID": "abc-123"})
    assert request_id_of(request) == "abc-123"
    assert request.scope["state"]["request_id"] == "abc-123"


def test_request_id_of_without_middleware_replaces_a_bad_header() -> None:
    """A malformed header gives a fresh 32-hex id, and the same one on every later call."""
    request = RequestFactory().get("/", headers={"X-Request-ID": "bad id!"})
    first = request_id_of(request)
    assert len(first) == 32
    assert int(first, 16) >= 0
    assert request_id_of(request) == first


def test_request_id_of_prefers_the_middleware_id() -> None:
    """The id the middleware put in scope state wins over the header."""
    request = RequestFactory().get("/", headers={"X-Request-ID": "from-header"})
    request.scope["state"]["request_id"] = "from-middleware"
    assert request_id_of(request) == "from-middleware"


@pytest.mark.parametrize("user", [None, SimpleNamespace(kind="customer", sub="c-1")])
def test_current_customer_refuses_without_a_principal(user: Any) -> None:
    """No principal (or something else in ``scope["user"]``) is a 403 customer.required, not a 500."""
    request: Request[Any, Any, Any] = RequestFactory().get("/")
    if user is not None:
        request.scope["user"] = user
    with pytest.raises(Forbidden) as refused:
        current_customer(request)
    assert refused.value.code == "customer.required"


def test_key_version_rechecks_the_file_once_a_second(tmp_path: Path) -> None:
    """Another worker's rotation shows in ``version`` after the re-check interval, not before."""
    now = [100.0]
    store = KeyStore(tmp_path / "signing-keys.json", monotonic=lambda: now[0])
    store.refresh(max_age=0)
    before = store.version
    KeyStore.open(tmp_path).rotate()  # another worker
    now[0] += 0.5
    assert store.version == before
    now[0] += 0.6
    assert store.version != before
    assert store.version == store.version


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_worker_gets_its_own_id_prefix() -> None:
    """A worker forked after the parent made ids draws a new prefix, so ids never collide."""
    parent = obs_logging.new_request_id(None)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, obs_logging.new_request_id(None).encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child[:16] != parent[:16]
    assert obs_logging.new_request_id(None)[:16] == parent[:16]


def test_ids_are_unique_in_one_process() -> None:
    """Consecutive ids differ (the counter), sharing the process prefix."""
    ids = {obs_logging.new_request_id(None) for _ in range(1000)}
    assert len(ids) == 1000
    assert len({i[:16] for i in ids}) == 1


@pytest.mark.anyio
async def test_redis_hit_counts_sets_expiry_and_survives_a_script_flush(redis_url: str) -> None:
    """The one-script hit counts up, gives the window's key its TTL, and reloads itself after a flush."""
    prefix = f"fulcrum:test:{uuid.uuid4().hex}:"
    counter = RedisCounter(redis_url, prefix=prefix, timeout_s=5)  # not a speed test
    raw: Any = counter._redis
    try:
        assert [await counter.hit("app/c-1", 7, 61) for _ in range(3)] == [1, 2, 3]
        assert 0 < await raw.ttl(f"{prefix}app/c-1:7") <= 61
        await raw.script_flush()
        assert await counter.hit("app/c-1", 7, 61) == 4
        assert await counter.hit("app/c-1", 8, 61) == 1  # a new window starts over
    finally:
        await raw.delete(f"{prefix}app/c-1:7", f"{prefix}app/c-1:8")
        await counter.close()


def test_a_client_request_id_with_a_trailing_newline_is_replaced() -> None:
    from fulcrum_core.observability.logging import new_request_id

    assert new_request_id("abc-1.2_3") == "abc-1.2_3"
    for bad in ("abc\n", "abc\r\n", "a b", "x" * 65, ""):
        fresh = new_request_id(bad)
        assert fresh != bad
        assert "\n" not in fresh
