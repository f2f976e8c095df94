"""``/v1/consents``: the customer's consents to plugins, listed and revoked.

Revoking takes effect on the customer's next request in the worker that revoked it (its consent cache
entry is dropped), and within ``consent_cache_ms`` in every other worker. The authorization flow also
records consents for the bank's own plugins; those read customer data under the bank's grant, so each
view says what revoking it ends (``revoke_effect``: ``tokens_only`` for them).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get
from litestar.params import Parameter

from fulcrum_core.api.deps import current_customer
from fulcrum_core.api.input_problems import NOT_FOUND_RESPONSE
from fulcrum_core.data.consents import ConsentStore, ConsentView
from fulcrum_core.data.db import Database
from fulcrum_core.oauth.clients import ClientStore
from fulcrum_core.oauth.plugin_clients import plugin_client_id
from fulcrum_core.oauth.refresh import RefreshTokenStore
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "ConsentList", "list_consents", "revoke_consent"]


def _with_effects(db: Database, views: list[ConsentView]) -> list[ConsentView]:
    """Each view with what revoking it ends: only tokens for a plugin whose OAuth client is the bank's
    own (not a partner's); a consent with no client (seeded for a partner) governs data access."""
    clients = ClientStore(db)
    internal = {
        plugin_id
        for plugin_id in {v.plugin_id for v in views}
        if (client := clients.for_plugin(plugin_id)) is not None and not client.is_partner
    }
    return [
        msgspec.structs.replace(v, revoke_effect="tokens_only") if v.plugin_id in internal else v
        for v in views
    ]


class ConsentList(msgspec.Struct, frozen=True, kw_only=True):
    """The customer's consents, newest first."""

    consents: list[ConsentView]


@get(
    "/v1/consents",
    opt={"scopes": ["consents:read"]},
    tags=["consents"],
    summary="Your consents",
    sync_to_thread=True,
)
def list_consents(request: Request[Any, Any, Any]) -> ConsentList:
    """Every consent the customer has given, with its status (expired ones included)."""
    customer_ref = current_customer(request)
    db = runtime_of(request).db
    return ConsentList(consents=_with_effects(db, ConsentStore(db).list(customer_ref)))


@delete(
    "/v1/consents/{consent_id:str}",
    opt={"scopes": ["consents:write"]},
    tags=["consents"],
    summary="Revoke a consent",
    status_code=200,
    responses={404: NOT_FOUND_RESPONSE},
    sync_to_thread=True,
)
def revoke_consent(
    request: Request[Any, Any, Any],
    consent_id: Annotated[str, Parameter(max_length=64, description="The consent's id")],
) -> ConsentView:
    """Revoke one of the customer's consents; another customer's consent is reported as not found.

    The plugin's refresh tokens for this customer go with it (the customer number for an internal
    plugin, the pairwise id for a partner), so its backend cannot mint new access tokens either.
    """
    customer_ref = current_customer(request)
    runtime = runtime_of(request)
    view = ConsentStore(runtime.db).revoke(consent_id, customer_ref)
    subjects = (customer_ref, runtime.contexts.pairwise_id(view.plugin_id, customer_ref))
    RefreshTokenStore(runtime.db).revoke_subject(plugin_client_id(view.plugin_id), subjects)
    return _with_effects(runtime.db, [view])[0]


ROUTES: list[Any] = [list_consents, revoke_consent]
