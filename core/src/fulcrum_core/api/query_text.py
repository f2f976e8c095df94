"""A route's query is text, and each parameter it takes is sent once, or a 400 naming the parameter
(``checked_query``, a ``before_request`` hook).

litestar decodes a percent-encoded query with replacement characters, so ``?q=%ff%fe`` reached a
handler as ``"��"`` and searched for it; nothing said the client sent bytes that are no text. It also
reads the last value of a parameter sent twice, so ``?state=approved&state=retired`` listed the retired
releases alone, an empty page that looked like an answer to both. Every query parameter a route declares
takes one value; one it does not declare (a page's deep-link query, the plugin's to read) is not counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import unquote_to_bytes
from weakref import WeakKeyDictionary

from litestar import Request
from litestar.handlers import BaseRouteHandler
from litestar.params import QueryParameter

from fulcrum_core.errors import BadRequest
from fulcrum_core.parameter_problems import echoed

__all__ = ["checked_query"]

_DECLARED: WeakKeyDictionary[BaseRouteHandler, frozenset[str]] = WeakKeyDictionary()


def _declared(handler: BaseRouteHandler) -> frozenset[str]:
    """The query parameters ``handler`` takes, by the names clients send (``name=`` or ``query=``)."""
    try:
        names = _DECLARED.get(handler)
    except TypeError:  # litestar's generated OPTIONS handler takes no weak reference (and no query)
        return _taken(handler)
    if names is None:
        names = _DECLARED[handler] = _taken(handler)
    return names


def _taken(handler: BaseRouteHandler) -> frozenset[str]:
    return frozenset(
        kwarg.query or kwarg.name or name
        for name, field in handler.parsed_fn_signature.parameters.items()
        if isinstance(kwarg := field.kwarg_definition, QueryParameter)
    )


async def checked_query(request: Request[Any, Any, Any]) -> None:
    """Refuse the request when a query parameter's name or value is not UTF-8 once percent-decoded, or
    when a parameter the route takes is sent more than once."""
    raw: bytes = request.scope.get("query_string", b"")
    if not raw:
        return
    sent: Counter[str] = Counter()
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        try:
            shown = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(
                "a query parameter's name is not UTF-8 text once percent-decoded", field="query"
            ) from None
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(
                f"query parameter {echoed(shown)} is not UTF-8 text once percent-decoded (byte {exc.start}: "
                f"0x{exc.object[exc.start]:02x}); percent-encode the UTF-8 bytes of the text",
                field=shown[:64],
            ) from None
        sent[shown] += 1
    declared = _declared(request.route_handler)
    for text, times in sent.items():
        if times > 1 and text in declared:
            raise BadRequest(
                f"query parameter {echoed(text)} is sent {times} times; send it once", field=text
            )
