"""``EncodedJSON``: a handler's already-encoded JSON body, answered as litestar's own ``Response`` would."""

from __future__ import annotations

from typing import Any

import pytest
from fulcrum_core.api.encoded import EncodedJSON
from litestar import Litestar, MediaType, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import Cookie
from litestar.response.base import ASGIResponse
from litestar.testing import TestClient

BODY = b'{"slots":{},"degraded":[],"request_id":"r-1"}'
_SLOTS = [s for s in ASGIResponse.__slots__ if s != "headers"]


def _asgi(response: Response[Any], **kwargs: Any) -> ASGIResponse:
    """What litestar's response handler makes of ``response`` (its arguments as the handler passes them)."""
    defaults: dict[str, Any] = {
        "app": None, "background": None, "cookies": [], "headers": {}, "media_type": "application/json",
        "request": None, "status_code": 200, "type_encoders": None,
    }
    return response.to_asgi_response(**{**defaults, **kwargs})


def _same(ours: ASGIResponse, theirs: ASGIResponse) -> None:
    assert ours.encode_headers() == theirs.encode_headers()
    assert [getattr(ours, s) for s in _SLOTS] == [getattr(theirs, s) for s in _SLOTS]


def test_made_as_a_litestar_response_is() -> None:
    """Every attribute is what ``Response(body, media_type=MediaType.JSON)`` sets."""
    ours, theirs = EncodedJSON(BODY), Response(BODY, media_type=MediaType.JSON)
    assert [getattr(ours, s) for s in Response.__slots__] == [getattr(theirs, s) for s in Response.__slots__]


def test_plain_page_is_what_a_litestar_response_gives() -> None:
    """Same status, headers (content type, then length), body and attributes as ``Response(body)``."""
    _same(_asgi(EncodedJSON(BODY)), _asgi(Response(BODY, media_type=MediaType.JSON)))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"x-extra": "1"}},
        {"cookies": [Cookie(key="k", value="v")]},
        {"background": BackgroundTask(print)},
        {"is_head_response": True},
    ],
)
def test_anything_asked_beyond_the_body_takes_litestars_own_path(kwargs: dict[str, Any]) -> None:
    """Route-level headers, cookies, a background task or a HEAD answer are honoured exactly as by
    ``Response``: the shortcut is taken only when there is nothing but the body to send."""
    if kwargs.get("is_head_response"):
        with pytest.raises(Exception, match="HEAD"):  # litestar refuses a body for HEAD; so do we
            _asgi(EncodedJSON(BODY), **kwargs)
        return
    _same(_asgi(EncodedJSON(BODY), **kwargs), _asgi(Response(BODY, media_type=MediaType.JSON), **kwargs))


def test_headers_and_cookies_set_on_it_are_sent() -> None:
    """A header or cookie set on the response object itself is not lost to the shortcut."""
    ours, theirs = EncodedJSON(BODY), Response(BODY, media_type=MediaType.JSON)
    for response in (ours, theirs):
        response.set_header("x-one", "1")
        response.set_cookie("k", "v")
    _same(_asgi(ours), _asgi(theirs))


def test_served_through_an_app_with_before_send_hooks() -> None:
    """Over ASGI the body and headers arrive, and a ``before_send`` hook can still add a header."""

    async def stamp(message: Any, scope: Any) -> None:
        if message["type"] == "http.response.start":
            message["headers"].append((b"x-stamp", b"yes"))

    @get("/page")
    async def page() -> Response[Any]:
        return EncodedJSON(BODY)

    with TestClient(Litestar([page], before_send=[stamp])) as client:
        answer = client.get("/page")
    assert answer.status_code == 200
    assert answer.content == BODY
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == str(len(BODY))
    assert answer.headers["x-stamp"] == "yes"
