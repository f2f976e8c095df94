"""``GET /problems`` and ``GET /problems/{code}``: the error catalogue, where each problem's ``type`` leads.

Public, like ``/schema``: no token, and outside ``/v1`` so no per-client rate limit. Each route answers
JSON for tools and, to a browser (``Accept`` preferring ``text/html``), a small HTML page: static, no
script, every catalogue text escaped. An unknown code is a 404 problem (``not-found``, ``field``
``code``). What they list is ``fulcrum_core.problem_types.CATALOGUE``, typed under the host's
``problem_base``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, Response, get
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import PathParameter

from fulcrum_core.api.input_problems import NOT_FOUND_RESPONSE
from fulcrum_core.errors import NotFound
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.problem_types import CATALOGUE, ProblemType, Remedy, by_code, problem_base, type_uri
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "ProblemTypeDoc", "ProblemTypeIndex", "problem_type", "problem_types"]

_PUBLIC: Final = {"public": True}
_JSON: Final = "application/json"
_HTML: Final = "text/html"

PAGE_HEADERS: Final = {
    "Vary": "Accept",
    "Cache-Control": "public, max-age=300",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "frame-ancestors 'none'",
}
"""Headers of both routes: the body depends on ``Accept``; the page loads nothing but its own style."""


class ProblemTypeDoc(msgspec.Struct, frozen=True, kw_only=True):
    """One problem type: ``type`` is the URI problems of this code carry, ``code`` the member clients
    switch on; ``remedy`` what to do, for tools (``action`` says it in words); ``members`` the problem's
    members beyond type, title, status, detail and code; ``headers`` the response headers with it."""

    type: str
    code: str
    statuses: list[int]
    title: str
    meaning: str
    action: str
    remedy: Remedy
    members: list[str]
    headers: list[str]


class ProblemTypeIndex(msgspec.Struct, frozen=True, kw_only=True):
    """Every problem type the API answers; each ``type`` is ``base`` plus its code."""

    base: str
    items: list[ProblemTypeDoc]


@dataclass
class _AlsoHTML(Operation):
    """An operation whose 200 is also served as an HTML page (``Accept: text/html``)."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.description = "The catalogue as JSON, or as an HTML page when `Accept` prefers `text/html`"
            page = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            ok.content = {**(ok.content or {}), _HTML: page}


def _doc(base: str, entry: ProblemType) -> ProblemTypeDoc:
    return ProblemTypeDoc(
        type=type_uri(base, entry.code), code=entry.code, statuses=list(entry.statuses), title=entry.title,
        meaning=entry.meaning, action=entry.action, remedy=entry.remedy, members=list(entry.members),
        headers=list(entry.headers),
    )


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    """A browser's ``Accept`` puts ``text/html`` first; ``*/*``, none or ``application/json`` get JSON."""
    return request.accept.best_match([_JSON, _HTML], default=_JSON) == _HTML


def _code(text: str) -> str:
    """Catalogue text with its `backticks` as <code>, everything escaped."""
    parts = escape(text, quote=True).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;"
    "border-bottom:1px solid #ddd;vertical-align:top}code{background:#f4f4f4;padding:0 .2rem}"
    "dt{font-weight:600;margin-top:.8rem}dd{margin-left:0}"
)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _index_page(request: Request[Any, Any, Any], index: ProblemTypeIndex) -> str:
    rows = "\n".join(
        f'<tr><td><a href="{escape(request.app.route_reverse("problem_type", code=doc.code))}">'
        f"<code>{escape(doc.code)}</code></a></td><td>{', '.join(str(s) for s in doc.statuses)}</td>"
        f"<td>{escape(doc.title)}</td><td>{escape(doc.remedy)}</td></tr>"
        for doc in index.items
    )
    return _page(
        "Fulcrum API problem types",
        "<h1>Problem types</h1>\n"
        "<p>Every error of this API is an RFC 9457 problem document (<code>application/problem+json</code>). "
        "Switch on its <code>code</code> member; its <code>type</code> is the address of the code's page "
        f"below (<code>{escape(index.base)}</code> plus the code). <code>detail</code> is for people and "
        "may change.</p>\n"
        "<table><thead><tr><th>code</th><th>status</th><th>title</th><th>remedy</th></tr></thead>\n"
        f"<tbody>\n{rows}\n</tbody></table>",
    )


def _type_page(request: Request[Any, Any, Any], doc: ProblemTypeDoc) -> str:
    def listed(names: list[str]) -> str:
        return ", ".join(f"<code>{escape(n)}</code>" for n in names) or "none"

    return _page(
        f"{doc.code}: {doc.title}",
        f'<p><a href="{escape(request.app.route_reverse("problem_types"))}">All problem types</a></p>\n'
        f"<h1>{escape(doc.title)}</h1>\n<dl>"
        f"<dt>code</dt><dd><code>{escape(doc.code)}</code></dd>"
        f"<dt>type</dt><dd><code>{escape(doc.type)}</code></dd>"
        f"<dt>HTTP status</dt><dd>{', '.join(str(s) for s in doc.statuses)}</dd>"
        f"<dt>What it means</dt><dd>{_code(doc.meaning)}</dd>"
        f"<dt>What to do</dt><dd>{_code(doc.action)} (remedy: <code>{escape(doc.remedy)}</code>)</dd>"
        f"<dt>Members besides type, title, status, detail and code</dt><dd>{listed(doc.members)}</dd>"
        f"<dt>Response headers</dt><dd>{listed(doc.headers)}</dd></dl>",
    )


def _answer(request: Request[Any, Any, Any], body: msgspec.Struct, page: Callable[[], str]) -> Response[Any]:
    if _wants_html(request):
        return Response(content=page(), media_type="text/html", headers=PAGE_HEADERS)
    return Response(content=body, media_type=_JSON, headers=PAGE_HEADERS)


@get(
    "/problems", name="problem_types", opt=_PUBLIC, tags=["docs"], sync_to_thread=False,
    summary="Every problem type the API answers", operation_class=_AlsoHTML,
)
def problem_types(request: Request[Any, Any, Any]) -> Response[ProblemTypeIndex]:
    """The error catalogue: each problem type's code, statuses, meaning and what a client does about it.
    JSON by default; an HTML page when ``Accept`` prefers ``text/html`` (a browser)."""
    base = problem_base(runtime_of(request).settings)
    index = ProblemTypeIndex(base=base, items=[_doc(base, entry) for entry in CATALOGUE])
    return _answer(request, index, lambda: _index_page(request, index))


@get(
    "/problems/{code:str}", name="problem_type", opt=_PUBLIC, tags=["docs"], sync_to_thread=False,
    summary="One problem type: where a problem's `type` leads", operation_class=_AlsoHTML,
    responses={404: NOT_FOUND_RESPONSE},
)
def problem_type(
    request: Request[Any, Any, Any],
    code: Annotated[str, PathParameter(description="A problem's `code`, the last segment of its `type`.")],
) -> Response[ProblemTypeDoc]:
    """One problem type by its code (the last segment of a problem's ``type``); 404 for a code the API
    never answers. JSON by default; an HTML page when ``Accept`` prefers ``text/html``."""
    entry = by_code(code)
    if entry is None:
        raise NotFound(f"no problem type {echoed(code)}; GET /problems lists them", field="code")
    doc = _doc(problem_base(runtime_of(request).settings), entry)
    return _answer(request, doc, lambda: _type_page(request, doc))


ROUTES: list[Any] = [problem_types, problem_type]
