"""HEAD is GET without the body (RFC 9110 section 9.3.2), which every general-purpose server must
support (section 9.1). litestar routes HEAD only to handlers declared for it, before any middleware
runs, so every GET route answered 405 (load balancers and uptime checks probe ``/healthz`` and
``/readyz`` with HEAD): :class:`HeadAsGet` answers it at the application's entry instead, and lists
it in the ``Allow`` header of an OPTIONS answer (:func:`with_head` for a 405's)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.types import Message, Send

__all__ = ["HeadAsGet", "with_head"]


class HeadAsGet(Litestar):
    """litestar's application, answering a HEAD request as the GET of the same URL would, headers alone."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            answer = _allow_head(send) if scope.get("method") == "OPTIONS" else send
            await super().__call__(scope, receive, answer)
            return
        as_get = {**scope, "method": "GET"}  # a copy: the server reads the method as HEAD to send no body
        await super().__call__(as_get, receive, _headers_only(send))  # type: ignore[arg-type]
        if "path_template" in as_get:  # the route litestar matched, for what counts requests outside
            scope["path_template"] = as_get["path_template"]


def _headers_only(send: Send) -> Send:
    async def headers_only(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}  # the server sends none for HEAD
        await send(message)

    return headers_only


def with_head(allow: str) -> str:
    """An ``Allow`` value with HEAD beside GET, which every GET route answers: ``GET, HEAD, OPTIONS``."""
    methods = [m.strip() for m in allow.split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return ", ".join(methods)


def _allow_head(send: Send) -> Send:
    async def allowing_head(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (name, with_head(value.decode("latin-1")).encode("latin-1")) if name.lower() == b"allow"
                else (name, value)
                for name, value in message.get("headers", [])
            ]
            message = {**message, "headers": headers}
        await send(message)

    return allowing_head
