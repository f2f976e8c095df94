"""A path that is not UTF-8 once percent-decoded is a 400 naming the path parameter that holds the
bytes, said without the replacement character the server decoded them to
(``parameter_problems.undecodable_path``).

``/registry/v1/publishers/%ff`` was "no publisher '\\ufffd'": a character the client never sent, and
the byte it did send lost. :class:`PathTextMiddleware` refuses such a path on every route before its
handler reads it; a path no route answers, or none with the request's method, is refused alike by the
404 and 405 handlers (``errors``), which the router raises before any middleware runs.
"""

from __future__ import annotations

from collections.abc import Awaitable

from litestar.types import ASGIApp, Receive, Scope, Send

from fulcrum_core.errors import BadRequest
from fulcrum_core.parameter_problems import undecodable_path

__all__ = ["PathTextMiddleware"]


class PathTextMiddleware:
    """ASGI middleware refusing a path that is not UTF-8 once percent-decoded (400 ``bad-request``,
    ``field`` the path parameter or ``path``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Refuse the request when its path is no text; otherwise the inner app's awaitable, handed back
        rather than awaited here (no frame of this layer stays on the stack while the request runs)."""
        if "\ufffd" in scope["path"]:  # the server's replacement character: else nothing to decode
            problem = undecodable_path(scope)
            if problem is not None:
                raise BadRequest(problem[1], field=problem[0])
        return self.app(scope, receive, send)
