"""The app's request class: litestar's, with a body that is not UTF-8 refused as malformed JSON."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

__all__ = ["FulcrumRequest"]


class FulcrumRequest(Request[Any, Any, Any]):
    """``Request.json`` turns msgspec's ``UnicodeDecodeError`` and ``RecursionError`` into the 400 any
    malformed body gets.

    msgspec raises ``UnicodeDecodeError`` rather than ``DecodeError`` for a string holding bytes that
    are not UTF-8, and ``RecursionError`` for a document nested about a thousand levels deep; litestar
    only maps ``DecodeError``: without this such a body is a 500.
    """

    async def json(self) -> Any:
        """The decoded JSON body (litestar's), or ``SerializationException`` (a 400) when it is not UTF-8."""
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise SerializationException("the body is not valid JSON: a string in it is not UTF-8") from None
        except RecursionError:  # msgspec gives up on nesting deeper than the interpreter allows
            raise SerializationException("the body is nested too deeply") from None
