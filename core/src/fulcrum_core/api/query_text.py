"""A route's query is text, and each parameter it takes is sent once, or a 400 naming the parameter
(``checked_query``, a ``before_request`` hook); an integer one is written in digits.

litestar decodes a percent-encoded query with replacement characters, so ``?q=%ff%fe`` reached a
handler as ``"��"`` and searched for it; nothing said the client sent bytes that are no text. It also
reads the last value of a parameter sent twice, so ``?state=approved&state=retired`` listed the retired
releases alone, an empty page that looked like an answer to both. Every query parameter a route declares
takes one value; one it does not declare (a page's deep-link query, the plugin's to read) is not counted.

A ``%`` not followed by two hex digits is no percent-escape (RFC 3986 section 2.1): litestar read
``?q=%zz`` as the text ``%zz`` while ``?q=100%ab`` read ``%ab`` as a byte, so a client that left a
literal ``%`` unescaped got one or the other by chance. Such a query is a 400 naming the parameter and
quoting the escape, saying to send ``%`` as ``%25``.

An integer parameter, in the query or the path, is written in ASCII digits: litestar converts a
``:int`` path segment with ``int()`` and a query value with msgspec's lax reading, so ``1_0`` named
release 10, ``+5``, `` 5`` and ``٥`` (an Arabic-Indic five) release 5, and ``?limit=1e1`` or ``1.0`` were
read as integers. One resource has one spelling; any other is the 400 a bad parameter gets, named and
worded by ``parameter_problems``. Routes declare such path segments ``:str``: litestar's own reading
then refuses every other spelling but ``1.0`` and ``1e1``, which this hook refuses (an ``int``
annotation keeps the parameter an integer in the handler and the OpenAPI document).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import unquote_to_bytes
from weakref import WeakKeyDictionary

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import CookieParameter, HeaderParameter, QueryParameter

from fulcrum_core.errors import BadRequest
from fulcrum_core.parameter_problems import echoed

__all__ = ["checked_query", "query_problem"]

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
"""A ``%`` that does not begin a percent-escape (two hex digits)."""

_DECLARED: WeakKeyDictionary[BaseRouteHandler, frozenset[str]] = WeakKeyDictionary()
_INTEGERS: WeakKeyDictionary[BaseRouteHandler, tuple[tuple[str, str], ...]] = WeakKeyDictionary()


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


def _integers(handler: BaseRouteHandler) -> tuple[tuple[str, str], ...]:
    """The integer path and query parameters ``handler`` takes: the handler's name for each and the
    name clients send."""
    try:
        found = _INTEGERS.get(handler)
    except TypeError:  # litestar's generated OPTIONS handler (it takes no parameters)
        return ()
    if found is None:
        found = _INTEGERS[handler] = tuple(
            (name, (kwarg.query or kwarg.name or name) if isinstance(kwarg, QueryParameter) else name)
            for name, field in handler.parsed_fn_signature.parameters.items()
            if not isinstance(kwarg := field.kwarg_definition, HeaderParameter | CookieParameter)
            and (field.is_subclass_of(int) or any(t.is_subclass_of(int) for t in field.inner_types))
            and not field.is_subclass_of(bool)
            and name not in ("request", "data")
        )
    return found


def _bad_escape(raw: bytes) -> str | None:
    """The first ``%`` of ``raw`` (a query's name or value as sent) that begins no percent-escape, with
    what follows it (``'%zz'``, ``'%2'``, ``'%'``), or None when every ``%`` begins one."""
    found = _BAD_ESCAPE.search(raw)
    if found is None:
        return None
    return repr(raw[found.start():found.start() + 3].decode("ascii", "backslashreplace"))


def _escape_problem(bad: str) -> str:
    return (
        f"holds {bad}, which is no percent-escape (a '%' and two hex digits, RFC 3986 section 2.1): send a "
        "literal '%' as %25"
    )


def _read_as_integer(value: str) -> bool:
    """Whether litestar's lax reading would take ``value`` for an integer (``1.0``, ``1e1``)."""
    try:
        msgspec.convert(value, int, strict=False)
    except msgspec.ValidationError:
        return False
    return True


def _plain_integers(request: Request[Any, Any, Any]) -> None:
    """Refuse integer parameters written other than in ASCII digits that litestar would read (see the
    module docstring); the ones it refuses itself (``1_0``, ``٥``) it names with every other bad
    parameter of the request."""
    refused: list[dict[str, str]] = []
    for name, sent_as in _integers(request.route_handler):
        value: Any = request.path_params.get(name)
        source = "path"
        if value is None:
            values = request.query_params.getall(sent_as, None)
            value, source = (values[-1] if values else None), "query"
        if isinstance(value, str) and not (value.isascii() and value.isdigit()) and _read_as_integer(value):
            refused.append({"key": name, "source": source, "message": "is not an integer"})
    if refused:
        raise ValidationException(extra=refused)


def query_problem(raw: bytes) -> tuple[str | None, str] | None:
    """The first parameter of the query ``raw`` (as sent) whose name or value holds a malformed
    percent-escape or is not UTF-8 once percent-decoded: its name (None when the name itself is at fault)
    and what is wrong, in words; None when the whole query is text. The OAuth authorization endpoint,
    which reads its query itself, judges it with this too."""
    for part in raw.split(b"&"):
        name, _, value = part.partition(b"=")
        bad = _bad_escape(name)
        if bad is not None:
            return None, f"a query parameter's name {_escape_problem(bad)}"
        try:
            shown = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return None, "a query parameter's name is not UTF-8 text once percent-decoded"
        bad = _bad_escape(value)
        if bad is not None:
            return shown, f"query parameter {echoed(shown)} {_escape_problem(bad)}"
        try:
            unquote_to_bytes(value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError as exc:
            return shown, (
                f"query parameter {echoed(shown)} is not UTF-8 text once percent-decoded (byte {exc.start}: "
                f"0x{exc.object[exc.start]:02x}); percent-encode the UTF-8 bytes of the text"
            )
    return None


async def checked_query(request: Request[Any, Any, Any]) -> None:
    """Refuse the request when a query parameter's name or value holds a malformed percent-escape or
    is not UTF-8 once percent-decoded, when a parameter the route takes is sent more than once, or when
    an integer parameter of the query or the path is not written in ASCII digits."""
    raw: bytes = request.scope.get("query_string", b"")
    if not raw:
        _plain_integers(request)
        return
    problem = query_problem(raw)
    if problem is not None:
        name, words = problem
        raise BadRequest(words, field="query" if name is None else name[:64])
    sent: Counter[str] = Counter(
        unquote_to_bytes(part.partition(b"=")[0].replace(b"+", b" ")).decode("utf-8")
        for part in raw.split(b"&")
    )
    declared = _declared(request.route_handler)
    for text, times in sent.items():
        if times > 1 and text in declared:
            raise BadRequest(
                f"query parameter {echoed(text)} is sent {times} times; send it once", field=text
            )
    _plain_integers(request)
