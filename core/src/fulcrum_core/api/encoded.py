"""A response for a body the handler already encoded as JSON, handed on without litestar's generic work.

litestar's ``Response.to_asgi_response`` merges header dicts, looks up a serializer, renders the bytes
(unchanged) and fills a case-insensitive header map one ``setdefault`` at a time: ≈ 6 µs a page on the
hot path for two fixed headers. :class:`EncodedJSON` sends the same status, headers and body, and takes
litestar's own path whenever anything beyond the body is asked (headers, cookies, a background task,
a HEAD answer), so route and app configuration keep working as they do for ``Response``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar import Litestar, MediaType, Request, Response
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.datastructures import Cookie
from litestar.datastructures.headers import MutableScopeHeaders
from litestar.response.base import ASGIResponse
from litestar.types import TypeEncodersMap

__all__ = ["EncodedJSON"]

_JSON = MediaType.JSON.value


class _Prepared(ASGIResponse):
    """An ``ASGIResponse`` of a JSON body with no extra headers or cookies: what litestar's constructor
    makes of it, set directly."""

    __slots__ = ()

    def __init__(self, body: bytes) -> None:
        # Deliberately not super().__init__(): the attributes below are everything it sets, in the
        # order it adds the headers (tested against litestar's own path).
        headers = MutableScopeHeaders()
        headers.headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        self.headers = headers
        self.background = None
        self.body = body
        self.content_length = len(body)
        self._encoded_cookies = ()
        self.encoding = "utf-8"
        self.is_head_response = False
        self.status_code = 200


class EncodedJSON(Response[bytes]):
    """``Response(body, media_type=MediaType.JSON)`` for a ``body`` already encoded as JSON (status 200)."""

    __slots__ = ()

    def __init__(self, body: bytes) -> None:
        # What ``Response.__init__`` sets for these arguments, set directly (tested against it).
        self.content = body
        self.background = None
        self.cookies = []
        self.encoding = "utf-8"
        self.headers = {}
        self.media_type = _JSON
        self.status_code = None
        self.response_type_encoders = {}

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        """The prepared answer when only the body is to be sent, else litestar's own."""
        if (
            app is None and background is None and not cookies and encoded_headers is None and not headers
            and not is_head_response and self.background is None and not self.cookies and not self.headers
            and (self.status_code or status_code or 200) == 200 and self.media_type == _JSON
        ):
            return _Prepared(self.content)
        return super().to_asgi_response(
            app, request,
            background=background, cookies=cookies, encoded_headers=encoded_headers, headers=headers,
            is_head_response=is_head_response, media_type=media_type, status_code=status_code,
            type_encoders=type_encoders,
        )
