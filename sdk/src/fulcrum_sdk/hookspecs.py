"""The hook specifications: the whole contract between the Fulcrum host and a plugin.

Every spec's docstring has the same shape: **When** it is called, **Arguments**, **Returns** (and what
``None`` means), **Combined** (how results from several plugins meet), **Async** (whether the
implementation may be ``async def``) and **Failure** (what the host does when the plugin raises or is
slow). Implement a hook with the :data:`hookimpl` marker; the function name must match the spec's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import pluggy

if TYPE_CHECKING:
    from fulcrum_sdk.context import AudienceContext, PluginContext
    from fulcrum_sdk.models import (
        FeedItem,
        Page,
        SearchHit,
        SlotOffer,
        TransactionRequest,
        TransactionResult,
        TransactionType,
    )

__all__ = [
    "HOOK_NAMES",
    "PROJECT_NAME",
    "REQUEST_HOOKS",
    "execute_transaction",
    "feed_items",
    "home_slot_campaigns",
    "home_slot_offers",
    "hookimpl",
    "hookspec",
    "is_nonblocking",
    "nonblocking",
    "page",
    "register_transaction_types",
    "search",
]

PROJECT_NAME = "fulcrum"
"""The pluggy project name, and the entry-point group plugins are published under."""

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Mark a plugin function as the implementation of the hook of the same name."""

NONBLOCKING_ATTR = "fulcrum_nonblocking"
_F = TypeVar("_F", bound=Callable[..., object])


def nonblocking(function: _F) -> _F:
    """Declare a plain (non-``async``) hookimpl free of blocking I/O, so the host may call it inline.

    Plain hookimpls normally run in a worker thread, which costs tens of microseconds per call. A
    function that only computes (no database, network, file or ``time.sleep``) may be declared
    nonblocking; the host then calls it directly on the event loop. The host cannot interrupt such
    a call: one that overruns the hook's deadline loses its result and counts as a timeout for its
    circuit breaker, and one that holds the loop for twice the deadline or more (the host's
    ``open_on_loop_hold``) opens that breaker at once, so a plugin breaking the promise soon stops
    being called. Apply it next to ``@hookimpl`` in either order; on an ``async def`` hookimpl it
    changes nothing.
    """
    setattr(function, NONBLOCKING_ATTR, True)
    return function


def is_nonblocking(function: Callable[..., object]) -> bool:
    """True when ``function`` was declared with :func:`nonblocking`."""
    return getattr(function, NONBLOCKING_ATTR, False) is True


# --- startup -------------------------------------------------------------------------------------


@hookspec
def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
    """Declare the transaction types this plugin owns.

    **When**: once per host start, after the plugin is loaded and its release approved.
    **Arguments**: ``register`` — call it once per :class:`~fulcrum_sdk.models.TransactionType`.
    **Returns**: nothing.
    **Combined**: every type key must be unique across plugins; a duplicate key quarantines the
    later plugin's type with a log line naming both plugins.
    **Async**: no; this runs at startup and must not do I/O.
    **Failure**: an exception quarantines the plugin's transaction types; its other hooks still run.
    """


# --- per request: the home page, search and feeds ------------------------------------------------


@hookspec
def home_slot_offers(ctx: PluginContext) -> list[SlotOffer] | Awaitable[list[SlotOffer] | None] | None:
    """Offer candidate items for the home page's slots.

    **When**: on every ``GET /v1/home`` for a customer for whom the plugin is enabled.
    **Arguments**: ``ctx`` — the customer and the plugin's scoped data and storage.
    **Returns**: a list of :class:`~fulcrum_sdk.models.SlotOffer`; ``None`` or ``[]`` offers nothing.
    Offers for a slot the plugin holds no ``slot:`` scope for are dropped.
    **Combined**: the host filters by validity window and targeting, ranks by priority, and keeps at
    most the slot's capacity (and a per-plugin share); popups are frequency-capped per customer.
    **Async**: yes, ``async def`` may be used.
    **Failure**: raising, returning another shape or missing the deadline (150 ms by default) drops
    this plugin's offers from the response, which still succeeds and lists the plugin as degraded.
    """


@hookspec
def home_slot_campaigns(
    ctx: AudienceContext,
) -> list[SlotOffer] | Awaitable[list[SlotOffer] | None] | None:
    """Offer home-page items scheduled per audience, not per customer (banners, icons, notices).

    **When**: rarely, not per request: on the first home page that needs them, then again at most once
    per ``campaign_ttl_ms`` (60 s by default) in each host worker, for each distinct effective
    ``settings`` (branches may set their own; all of them are called together, whichever branch's
    customer opened the page). Every customer's page in between reuses the result.
    **Arguments**: ``ctx`` — an :class:`~fulcrum_sdk.context.AudienceContext`: the plugin's grant,
    ``now`` and settings, and no customer, customer data or storage (so nothing it returns can be
    personalized).
    **Returns**: a list of :class:`~fulcrum_sdk.models.SlotOffer` for everyone the plugin is on for;
    ``None`` or ``[]`` offers nothing. Say who sees an offer with ``targeting`` and when with
    ``valid_from``/``valid_until``: the host applies both on every page, per customer (targeting as
    the plugin would see the customer: without ``profile:basic``, or for a partner without the
    customer's consent to it, segment and branch are blank). Offers for a slot the plugin holds no
    ``slot:`` scope for are dropped.
    **Combined**: on each page they join the plugin's :func:`home_slot_offers` (a plugin may implement
    both) and every other plugin's offers, under the same rules: ranking, capacity, per-plugin share,
    branch pins, popup frequency caps.
    **Async**: yes, ``async def`` may be used.
    **Failure**: raising, returning another shape or missing the home deadline (150 ms by default)
    keeps nothing new: a page served while the host has no result younger than ``campaign_ttl_ms``
    lists the plugin as degraded; the last good result is served until it is that old, never longer.
    """


@hookspec
def search(ctx: PluginContext, query: str) -> list[SearchHit] | Awaitable[list[SearchHit] | None] | None:
    """Contribute results to the app's search box.

    **When**: on every ``GET /v1/search`` for a plugin holding ``search:contribute``.
    **Arguments**: ``ctx`` — as for :func:`home_slot_offers`; ``query`` — the customer's text,
    stripped, 1–100 characters.
    **Returns**: a list of :class:`~fulcrum_sdk.models.SearchHit`; ``None`` or ``[]`` for no match.
    **Combined**: hits from all plugins are merged and ranked by relevance with a stable tie-break,
    then paginated by the host.
    **Async**: yes.
    **Failure**: as for :func:`home_slot_offers`, with the search deadline (300 ms by default).
    """


@hookspec
def feed_items(ctx: PluginContext, column: str) -> list[FeedItem] | Awaitable[list[FeedItem] | None] | None:
    """Contribute cards to one content feed column.

    **When**: on every ``GET /v1/feeds/{column}`` for a plugin holding ``feed:contribute``.
    **Arguments**: ``ctx`` — as for :func:`home_slot_offers`; ``column`` — the column id
    (``wealth``, ``education``, ``retirement``, ``life``).
    **Returns**: a list of :class:`~fulcrum_sdk.models.FeedItem` for that column; ``None`` or ``[]``
    when the plugin has nothing for it. Items for another column are dropped.
    **Combined**: merged, ordered by priority then recency, paginated with an opaque cursor.
    **Async**: yes.
    **Failure**: as for :func:`home_slot_offers`, with the feed deadline (300 ms by default).
    """


@hookspec
def page(ctx: PluginContext, path: str, query: Mapping[str, str]) -> Page | Awaitable[Page | None] | None:
    """Render one of the plugin's own screens: the one a deep link ``fulcrum://<plugin-id>/<path>`` opens.

    **When**: on ``GET /v1/pages/{plugin}/{path}``, only on that plugin, for a customer for whom it is
    enabled (the app asks when the customer taps an item whose action is such a deep link).
    **Arguments**: ``ctx`` — as for :func:`home_slot_offers`; ``path`` — the deep link's path after
    the plugin id, without a leading slash (``report``, ``products/WM-001``): 1–200 characters of
    letters, digits and ``- _ . /``, without empty, ``.`` or ``..`` segments; ``query`` — the deep
    link's query parameters (``report?part=allocation`` → ``{"part": "allocation"}``), read-only, empty
    when there are none (an implementation that needs none may leave ``query`` out of its arguments).
    **Returns**: a :class:`~fulcrum_sdk.models.Page`; ``None`` when the plugin has no page at ``path``
    (the app gets 404 and handles the link natively, if it can).
    **Combined**: never; the page is the plugin's alone.
    **Async**: yes.
    **Failure**: raising, returning another shape or missing the page deadline (300 ms by default)
    answers 503 ``page.unavailable``; reading customer data the partner's customer has not consented to
    answers 403 ``consent.required`` naming the scope, so the app can ask for consent; customer data
    (or consents, for ``ctx.data.allows`` too) the host could not read in time raises
    ``DataUnavailable``, which answers 503 ``customer.data_unavailable`` to retry.
    """


# --- transactions --------------------------------------------------------------------------------


@hookspec
def execute_transaction(
    ctx: PluginContext, request: TransactionRequest
) -> TransactionResult | Awaitable[TransactionResult]:
    """Carry out a transaction of a type this plugin registered.

    **When**: on ``POST /v1/transactions``, only on the plugin that owns ``request.type``, after the
    host validated the parameters, checked scopes, suitability and limits, and journaled the request.
    **Arguments**: ``ctx`` — as above; ``request`` — the journal id, the decoded parameters, the
    amount in fen and the idempotency key (use it to make the plugin's own side effects idempotent:
    it is unique among the customer's transactions, whichever OAuth client sent them, and the same on
    every call about one transaction; it is derived from the client's ``Idempotency-Key``, not that
    header itself).
    **Returns**: a :class:`~fulcrum_sdk.models.TransactionResult`. Raise
    :class:`~fulcrum_sdk.errors.TransactionRefused` to refuse with a code and a message for the customer.
    **Combined**: never; exactly one plugin owns a type.
    **Async**: yes.
    **Failure**: raise :class:`~fulcrum_sdk.errors.OutcomeUnknown` when the action may have gone through
    but cannot be confirmed: it is recorded as ``unknown`` (202) for reconciliation, as is a missed
    deadline (5 s by default) or a result that is not a valid ``TransactionResult``. Any other exception
    records it as ``failed`` (502), which tells the customer it was not carried out: raise one only when
    nothing was applied. Reconciliation, and a retry of a call the host never made, call again with the
    same ``request.id`` and ``idempotency_key``: apply the action once per key
    (:func:`fulcrum_sdk.idempotency.run_once`).
    """


REQUEST_HOOKS: tuple[str, ...] = (
    "home_slot_offers", "home_slot_campaigns", "search", "feed_items", "page", "execute_transaction",
)
"""Hooks called on a request path, through the host's dispatcher."""

HOOK_NAMES: tuple[str, ...] = ("register_transaction_types", *REQUEST_HOOKS)
"""Every hook a plugin may implement."""
