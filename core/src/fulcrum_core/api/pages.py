"""``GET /v1/pages/{plugin}/{path}``: the screen a plugin's deep link ``fulcrum://<plugin>/<path>`` opens.

Only the plugin named in the link is asked, and only when it is on for this customer (branch
configuration, rollout and approval as everywhere else); it sees its scoped context like in any hook.
A page is one plugin's answer, so a failure cannot be degraded around: it is a 503 naming the plugin.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated, Any

import msgspec
from fulcrum_sdk._validate import PAGE_PATH, page_path_problem, page_query_problem, received_page_path
from fulcrum_sdk.errors import ScopeDenied
from fulcrum_sdk.models import Page
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES
from litestar import Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter

from fulcrum_core.api.deps import customer_contexts, plugin_calls
from fulcrum_core.api.input_problems import NOT_FOUND_RESPONSE, PROBLEM_MEDIA_TYPE
from fulcrum_core.api.query_text import checked_query
from fulcrum_core.dispatch.results import PluginCallError
from fulcrum_core.errors import BadRequest, Forbidden, NotFound, ServiceUnavailable
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.runtime import runtime_of

__all__ = ["PAGE_PATH", "ROUTES", "PageProblem", "PageResponse", "page"]

class PageProblem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details of a page's 403 and 503: ``plugin`` names the plugin that needs the
    customer's consent to ``missing_scopes`` (``consent.required``) or could not show the page."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    plugin: str | None = None
    missing_scopes: list[str] | None = None


_FORBIDDEN = ResponseSpec(
    data_container=PageProblem,
    description="The token lacks `pages:read` (`missing_scopes`) or is the wrong kind; or (`code` "
    "consent.required) `plugin` needs the customer's consent to `missing_scopes` first: ask for it, then "
    "open the link again",
    media_type=PROBLEM_MEDIA_TYPE,
    generate_examples=False,
)

_UNAVAILABLE = ResponseSpec(
    data_container=PageProblem,
    description="The plugin could not show the page now (it failed, was too slow or is paused); "
    "`plugin` names it. Retry later; the rest of the app is unaffected. Without `plugin` (`code` "
    "customer.data_unavailable): the bank's customer data did not answer in time",
    media_type=PROBLEM_MEDIA_TYPE,
    generate_examples=False,
)


class PageResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The page, with who drew it and the request id."""

    plugin: str
    path: str
    page: Page
    request_id: str


def _page_query(request: Request[Any, Any, Any]) -> MappingProxyType[str, str]:
    """The request's query parameters (the deep link's own, the last of a repeated one), or 400."""
    pairs = list(request.query_params.items())
    query = dict(pairs)
    problem = page_query_problem(query, sent=len(pairs))  # repeats count: each was sent and parsed
    if problem is not None:
        raise BadRequest(problem, field="query", code="page.invalid-query")
    return MappingProxyType(query)


def _page_path(path: str) -> str:
    """The path as the plugin gets it (without slashes at either end, repeated ones as one: the rule
    the conformance kit judges deep links by), or 400 naming ``path``."""
    cleaned = received_page_path(path)
    problem = page_path_problem(cleaned)
    if problem is not None:
        raise BadRequest(f"{problem}; got {echoed(cleaned)}", field="path", code="page.invalid-path")
    return cleaned


def _data_unavailable(why: str) -> ServiceUnavailable:
    """The documented 503 ``customer.data_unavailable`` (no ``plugin``: no plugin failed), to retry."""
    return ServiceUnavailable(
        f"{why}; retry shortly", code="customer.data_unavailable", headers={"Retry-After": "1"}
    )


def _unavailable(plugin: str, kind: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"{plugin!r} could not show this page now ({kind}); try again later",
        code="page.unavailable", plugin=plugin, headers={"Retry-After": "1"},
    )


@get(
    "/v1/pages/{plugin:str}/{path:path}", before_request=checked_query,
    opt={"scopes": ["pages:read"]}, tags=["app"],
    summary="A plugin's page (what its deep link opens)",
    responses={403: _FORBIDDEN, 404: NOT_FOUND_RESPONSE, 503: _UNAVAILABLE},
)
async def page(
    request: Request[Any, Any, Any],
    plugin: Annotated[str, PathParameter(description="The plugin id, as in fulcrum://<plugin>/<path>.")],
    path: Annotated[str, PathParameter(description="The deep link's path after the plugin id, e.g. report.")],
) -> PageResponse:
    """The page at ``path`` of ``plugin``, drawn for the customer behind the token; the deep link's
    query parameters (``?part=allocation``) are passed on to the plugin as they are."""
    wanted, query = _page_path(path), _page_query(request)
    runtime = runtime_of(request)
    found = [p for p in runtime.plugins.enabled_for("page") if p.id == plugin]
    contexts = await customer_contexts(request)
    calls = await plugin_calls(contexts, found) if found else []  # [] when it is off for this customer
    if not calls:
        raise NotFound(f"there is no plugin {echoed(plugin)} with pages for this customer", field="plugin",
                       code="page.unknown-plugin")
    loaded, ctx = calls[0]
    dispatcher = runtime.dispatcher
    # Granted customer data the customer has not consented to (or whose consent could not be read): a
    # page stopping for one of these gets a consent prompt (or a 503 to retry); a consent error about
    # anything else is the plugin's fault, charged like one.
    asks = frozenset(s for s in loaded.granted & CUSTOMER_DATA_SCOPES if ctx.data.access(s) != "allowed")
    try:
        drawn = await dispatcher.call_one(loaded, "page", ctx, deadline_ms=dispatcher.deadline_ms("page"),
                                          asks_consent=asks, path=wanted, query=query)
    except ScopeDenied as exc:
        if ctx.data.access(exc.scope) == "unknown":  # the customer may well have consented already
            raise _data_unavailable("the customer's consents could not be read in time") from None
        raise Forbidden(
            f"this page of {plugin!r} needs your consent to {exc.scope!r} first",
            code="consent.required", plugin=plugin, missing_scopes=[exc.scope],
        ) from None
    except PluginCallError as exc:
        if exc.data_unavailable:  # the bank's data (or consents) were late: not the plugin's failure
            raise _data_unavailable("the bank's customer data did not answer in time") from None
        raise _unavailable(plugin, exc.kind) from None
    finally:
        contexts.close()  # after the handlers above: they still ask the context what it allowed
    if drawn is None:
        raise NotFound(f"{plugin!r} has no page {echoed(wanted)}", field="path", code="page.not-found")
    return PageResponse(plugin=plugin, path=wanted, page=drawn, request_id=contexts.request_id)


ROUTES: list[Any] = [page]
