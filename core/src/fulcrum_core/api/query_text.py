"""Query parameters that do not decode as UTF-8 are a 400 naming the parameter (``before_request``).

litestar decodes a percent-encoded query with replacement characters, so ``?q=%ff%fe`` reached a
handler as ``"��"`` and searched for it; nothing said the client sent bytes that are no text."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request

from fulcrum_core.errors import BadRequest
from fulcrum_core.parameter_problems import echoed

__all__ = ["utf8_query"]


async def utf8_query(request: Request[Any, Any, Any]) -> None:
    """Refuse the request when a query parameter's name or value is not UTF-8 once percent-decoded."""
    raw: bytes = request.scope.get("query_string", b"")
    if not raw:
        return
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
