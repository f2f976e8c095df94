"""The JSON API's answer to an ``Accept`` that admits no JSON: a 406 naming ``Accept``.

The ``/v1``, ``/admin/v1`` and ``/registry/v1`` routes answer ``application/json`` alone (their errors
``application/problem+json``). ``Accept: application/xml`` got JSON with a 200, as though asked for;
RFC 9110 section 12.5.1 lets a server either disregard such an ``Accept`` or honour it with a 406, and
a client that said it reads no JSON is better told so than handed a page it will fail to parse.

What is admitted: no ``Accept`` (any type, section 12.5.1), and any that admits ``application/json`` or
``application/problem+json`` with a weight above zero, directly, as ``application/*`` or as ``*/*``:
what browsers, ``fetch``, curl and HTTP libraries send. The most specific range naming a type sets its
weight (``application/json;q=0, */*`` admits the problem type alone, and is admitted). Elements that are
no media range (Java's ``*``) are skipped, and an ``Accept`` of none at all is disregarded. Routes that
negotiate for themselves (the package index, ``/problems``, OAuth, ``/schema``) are outside these
prefixes and unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable
from functools import lru_cache
from typing import Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from fulcrum_core.errors import NotAcceptable
from fulcrum_core.parameter_problems import echoed

__all__ = ["PREFIXES", "AcceptableMiddleware", "admits_json"]

PREFIXES: Final = ("/v1/", "/admin/v1/", "/registry/v1/")
"""The JSON API's routes, whose only representation is JSON."""

_ANSWERED: Final = (("application", "json"), ("application", "problem+json"))
_COMMON: Final = frozenset({b"*/*", b"application/json"})  # a page's fast path: nothing to parse


def _weight(parameters: list[str]) -> float | None:
    """The ``q`` of a media range's parameters (1 when none), or None when it is no qvalue."""
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return None
            return weight if 0 <= weight <= 1 else None
    return 1.0


@lru_cache(maxsize=256)
def admits_json(accept: str) -> bool:
    """Whether the ``Accept`` value ``accept`` admits JSON or the problem type (see the module docstring)."""
    ranges: list[tuple[str, str, float]] = []
    for element in accept.split(","):
        media, *parameters = element.split(";")
        kind, slash, subtype = media.strip().lower().partition("/")
        weight = _weight(parameters)
        if not slash or not kind or not subtype or weight is None or (kind == "*" and subtype != "*"):
            continue  # no media range: skipped, as a reader that cannot read it would
        ranges.append((kind, subtype, weight))
    if not ranges:
        return True
    for kind, subtype in _ANSWERED:
        best = -1, 0.0  # (specificity, weight) of the most specific range naming the type
        for sent_kind, sent_subtype, weight in ranges:
            if (sent_kind, sent_subtype) == (kind, subtype):
                specificity = 2
            elif (sent_kind, sent_subtype) == (kind, "*"):
                specificity = 1
            elif (sent_kind, sent_subtype) == ("*", "*"):
                specificity = 0
            else:
                continue
            best = max(best, (specificity, weight))
        if best[1] > 0:
            return True
    return False


class AcceptableMiddleware:
    """ASGI middleware answering 406 (``not-acceptable``, field ``Accept``) on the JSON API's routes when
    ``Accept`` admits no JSON, before the handler reads anything."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """Refuse the request when its ``Accept`` admits no JSON; otherwise the inner app's awaitable,
        handed back rather than awaited here: no frame of this layer stays on the stack while the request
        runs, for every resume of the handler to pass through (``observability/requests.py``)."""
        path: str = scope["path"]
        if path.startswith(PREFIXES) and scope["type"] == ScopeType.HTTP and scope["method"] != "OPTIONS":
            sent = None
            for name, value in scope["headers"]:
                # ASGI servers send header names in lower case; one that did not would be served as before
                if name == b"accept":
                    sent = value if sent is None else sent + b", " + value  # a list header, joined
            if sent is not None and sent not in _COMMON:
                accept = sent.decode("latin-1")
                if not admits_json(accept):
                    raise NotAcceptable(
                        f"Accept {echoed(accept, 80)} admits no media type this route answers in: it answers "
                        "application/json (its errors application/problem+json); send Accept: "
                        "application/json, one with */*, or none",
                        field="Accept",
                    )
        return self.app(scope, receive, send)
