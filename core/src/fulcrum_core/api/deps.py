"""What the app-facing handlers share: who the customer is, the request id, and plugin contexts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, cast

import anyio
from fulcrum_sdk.context import PluginContext
from fulcrum_sdk.data import Profile
from litestar import Request

from fulcrum_core import host_threads
from fulcrum_core.auth.principal import Principal
from fulcrum_core.dispatch.context import RequestContexts, data_deadline
from fulcrum_core.errors import Forbidden, ServiceUnavailable
from fulcrum_core.observability.logging import new_request_id
from fulcrum_core.plugins import LoadedPlugin
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = [
    "current_customer", "customer_contexts", "customer_profile", "plugin_calls", "request_id_of",
]


def _customer_sub(request: Request[Any, Any, Any]) -> str:
    principal = request.scope.get("user")  # what ``request.user`` reads, without its property
    if not isinstance(principal, Principal) or principal.kind != "customer":
        raise Forbidden("this route is for customer tokens only", code="customer.required")
    return principal.sub


def _known(profile: Profile | None) -> Profile:
    if profile is None:
        raise Forbidden("the bank has no customer profile for this token's subject", code="customer.unknown")
    return profile


_BANK_BUSY: Final = object()


def _bounded_profile(runtime: Runtime, sub: str) -> object:
    """(worker thread) The provider's profile of ``sub`` holding one of the places of the profile reads
    (``ContextFactory.profile_reads``); none free: ``_BANK_BUSY`` at once. An abandoned read keeps its
    thread of the host's bounded pool, so a bank that hangs must tie up no more than those places, or
    the token endpoint and the readiness ping would find no thread."""
    places = runtime.contexts.profile_reads
    if not places.acquire(blocking=False):
        return _BANK_BUSY
    try:
        return runtime.provider.profile(sub)
    finally:
        places.release()


def current_customer(request: Request[Any, Any, Any]) -> str:
    """The bank's customer number behind the request's token; 403 for non-customer tokens or unknown ones.

    Asks the bank's data provider: call it from a worker thread (``sync_to_thread`` handlers); async
    handlers use :func:`customer_profile`.
    """
    sub = _customer_sub(request)
    _known(runtime_of(request).provider.profile(sub))
    return sub


async def customer_profile(
    request: Request[Any, Any, Any], *, until: float | None = None
) -> tuple[str, Profile]:
    """:func:`current_customer` and the customer's profile, for an async handler: a provider that
    does I/O is asked from a worker thread by ``until`` (the event loop's clock; default
    ``data_budget_ms`` from now), 503 when it does not answer, never on the event loop."""
    sub = _customer_sub(request)
    runtime = runtime_of(request)
    provider = runtime.provider
    if not getattr(provider, "blocking", False):
        return sub, _known(provider.profile(sub))
    return sub, await _profile_in_thread(runtime, sub, until)


async def _profile_in_thread(runtime: Runtime, sub: str, until: float | None) -> Profile:
    """The profile of ``sub`` from a provider that does I/O, asked from a worker thread by ``until``;
    503 when it does not answer (see :func:`customer_profile`)."""
    with anyio.CancelScope(deadline=data_deadline(runtime.settings, until)):
        asked = await host_threads.run_sync(_bounded_profile, runtime, sub, abandon_on_cancel=True)
        if asked is not _BANK_BUSY:
            return _known(cast(Profile | None, asked))
    raise ServiceUnavailable(
        "the bank's customer data did not answer in time; retry shortly", code="customer.data_unavailable",
        headers={"Retry-After": "1"},
    )


async def customer_contexts(
    request: Request[Any, Any, Any], *, by: float | None = None, runtime: Runtime | None = None
) -> RequestContexts:
    """The plugin contexts of the customer behind the request (see :func:`customer_profile`);
    ``runtime``: the request's, when the caller has it already.

    Everything the request reads about the customer before its plugins run (profile, consents,
    records) shares one deadline (:func:`data_deadline`), kept in the contexts for
    :func:`plugin_calls`: a slow bank or database costs the page that much at most, in all.
    """
    if runtime is None:
        runtime = runtime_of(request)
    until = data_deadline(runtime.settings, by)
    # customer_profile's, without a coroutine of its own when the provider does no I/O (every page).
    customer_ref = _customer_sub(request)
    provider = runtime.provider
    if getattr(provider, "blocking", False):
        profile = await _profile_in_thread(runtime, customer_ref, until)
    else:
        profile = _known(provider.profile(customer_ref))
    contexts = runtime.contexts.for_request(
        customer_ref, request_id=request_id_of(request), profile=profile
    )
    contexts.data_until = until
    return contexts


def request_id_of(request: Request[Any, Any, Any]) -> str:
    """The request's id: one set by middleware, a well-formed ``X-Request-ID`` header, or a new one.

    Reads ``scope["state"]`` directly: ``request.state`` builds a ``State`` wrapper on every access.
    """
    state = request.scope.setdefault("state", {})
    found = state.get("request_id")
    if isinstance(found, str) and found:
        return found
    request_id = new_request_id(request.headers.get("x-request-id"))
    state["request_id"] = request_id
    return request_id


async def plugin_calls(
    contexts: RequestContexts, plugins: Sequence[LoadedPlugin]
) -> list[tuple[LoadedPlugin, PluginContext]]:
    """Each plugin this customer gets, with its context.

    The customer's branch configuration picks the plugins first (on for the branch x rollout or
    allow-list x version range; precomputed per change, so this is a lookup and a hash or two);
    when consents must be read (partners), that happens in a thread, one read shared by concurrent
    requests for the same customer.
    """
    plugins = contexts.select(plugins)
    if contexts.needs_io(plugins):
        await contexts.aconsents(until=contexts.data_until)
    calls = contexts.for_plugins(plugins)
    if contexts.provider_blocks:
        # The bank's records are read here, in a worker thread, never by a plugin on the event loop.
        await contexts.aprefetch([ctx for _, ctx in calls], until=contexts.data_until)
    return calls
