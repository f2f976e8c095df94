"""A bad query, path or header parameter in words a client can act on: the parameter's name as sent,
the value sent, and the values it may take, read from the route handler's own signature.

Litestar reports such a parameter by its Python name with msgspec's message (``Invalid enum value
'bogus'``, ``Expected `int` >= 1``), which names neither what was sent nor what would do. The
constraints live in the handler's annotations (a ``Literal``, ``ge``/``le``, ``max_length``), so the
words are derived from those and never written out per route.
"""

from __future__ import annotations

import enum
import typing
from typing import Any
from urllib.parse import unquote_to_bytes

from fulcrum_sdk._in_words import echoed, pattern_words
from litestar.connection import ASGIConnection
from litestar.params import KwargDefinition, ParameterKwarg
from litestar.typing import FieldDefinition

__all__ = ["ParameterProblem", "describe_parameter", "echoed", "undecodable_path"]

_ECHO = 40
"""Characters of a bad value quoted back (a longer one is cut): enough to recognise it, no more."""


def undecodable_path(scope: Any) -> tuple[str, str] | None:
    """What names the request's path that is not UTF-8 once percent-decoded (the path parameter holding
    the bytes, else ``path``) and the problem in words; None when the path is text.

    The server decodes the path with replacement characters (``%ff`` becomes U+FFFD), which a problem
    quoting the path or a parameter then showed: the byte sent is said instead. A U+FFFD sent in UTF-8
    (``%EF%BF%BD``) is text. Without ``raw_path`` (optional in ASGI) the two cannot be told apart and
    the path is taken as text."""
    path: str = scope["path"]
    raw = scope.get("raw_path")
    if "\ufffd" not in path or not isinstance(raw, bytes):
        return None
    decoded = unquote_to_bytes(raw)
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
    else:
        return None
    params: dict[str, Any] = scope.get("path_params") or {}
    field = next((name for name, sent in params.items() if isinstance(sent, str) and "\ufffd" in sent), None)
    before = decoded[:start].decode("utf-8")
    what = f"path parameter {field!r}" if field is not None else "the path"
    return field or "path", (
        f"{what} is not UTF-8 text once percent-decoded (byte 0x{decoded[start]:02x}, after "
        f"{echoed(before, 100)}); percent-encode the UTF-8 bytes of the text"
    )


class ParameterProblem(typing.NamedTuple):
    """One bad parameter: its name as sent, what is wrong, the value sent and, for a fixed set, the set."""

    field: str
    message: str
    value: str
    allowed: tuple[str, ...] | None


def describe_parameter(
    connection: ASGIConnection[Any, Any, Any, Any], key: str, source: str
) -> ParameterProblem | None:
    """The problem with parameter ``key`` (the handler's name for it) from ``source`` (query, path,
    header, cookie); None when the handler does not declare it or nothing was sent (litestar's words
    stay)."""
    handler = connection.scope.get("route_handler")
    signature = getattr(handler, "parsed_fn_signature", None)
    definition = signature.parameters.get(key) if signature is not None else None
    if definition is None:
        return None
    limits = definition.kwarg_definition
    name = _wire_name(key, limits)
    sent = _sent(connection, source, name)
    if sent is None:
        return None
    allowed = _choices(definition)
    takes = f"one of: {', '.join(allowed)}" if allowed is not None else _expected(definition, limits)
    value = sent if len(sent) <= _ECHO else sent[:_ECHO] + "…"
    return ParameterProblem(name, f"{echoed(sent, _ECHO)} is not {takes}", value, allowed)


def _wire_name(key: str, limits: KwargDefinition | None) -> str:
    if isinstance(limits, ParameterKwarg):
        return limits.name or limits.query or limits.header or limits.cookie or key
    return key


def _sent(connection: ASGIConnection[Any, Any, Any, Any], source: str, name: str) -> str | None:
    """The raw value as the client sent it; of a repeated query parameter the last, which is the one
    litestar reads into a single-valued parameter."""
    if source == "query":
        found: Any = (connection.query_params.getall(name, None) or [None])[-1]
    elif source == "path":
        found = connection.path_params.get(name)
    elif source == "header":
        found = connection.headers.get(name)
    elif source == "cookie":
        found = connection.cookies.get(name)
    else:
        return None
    return None if found is None else str(found)


def _choices(definition: FieldDefinition) -> tuple[str, ...] | None:
    """The values of a ``Literal`` or ``Enum`` parameter (optional or not), in declaration order."""
    inner = [t for t in definition.inner_types if not t.is_none_type] if definition.is_optional else []
    target = inner[0] if len(inner) == 1 else definition
    if target.is_literal:
        return tuple(str(v) for v in typing.get_args(target.annotation))
    if target.is_enum:
        return tuple(str(member.value) for member in typing.cast("type[enum.Enum]", target.annotation))
    return None


def _expected(definition: FieldDefinition, limits: KwargDefinition | None) -> str:
    """What the parameter takes, e.g. ``an integer from 1 to 100`` or ``text of at most 100 characters``."""
    integer = definition.is_subclass_of(int) or any(t.is_subclass_of(int) for t in definition.inner_types)
    low = high = None
    if limits is not None:
        low = limits.ge if limits.ge is not None else (limits.gt + 1 if limits.gt is not None else None)
        high = limits.le if limits.le is not None else (limits.lt - 1 if limits.lt is not None else None)
    if integer:
        if low is not None and high is not None:
            return f"an integer from {int(low)} to {int(high)}"
        if low is not None:
            return f"an integer of at least {int(low)}"
        if high is not None:
            return f"an integer of at most {int(high)}"
        return "an integer"
    if limits is not None and limits.pattern is not None:  # in words: the parameter's own, else its pattern's
        return limits.description or pattern_words(limits.pattern) or f"text matching {limits.pattern}"
    shortest = limits.min_length if limits is not None else None
    longest = limits.max_length if limits is not None else None
    if shortest is not None and longest is not None:
        return f"text of {shortest} to {longest} characters"
    if longest is not None:
        return f"text of at most {longest} characters"
    if shortest is not None:
        return f"text of at least {shortest} characters"
    return "a valid value"
