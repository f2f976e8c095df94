"""The authorization endpoint's two steps, synchronous (they run in a worker thread).

``prepare`` validates the request and returns what the consent page shows, or the OAuth error to
answer. ``decide`` re-validates, records the customer's consent to a plugin, and issues the code
(or ``access_denied``), whose tokens rest on that consent. Errors go back to the client's redirect
URI only once that URI is known to be registered; before that they are shown to the user, never
redirected (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

import msgspec
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from fulcrum_sdk.scopes import SCOPES

from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth.adapter import OAuthResponse, RequestSnapshot, SnapshotRequest
from fulcrum_core.oauth.clients import OAuthClient
from fulcrum_core.oauth.grants import QUERY_WORDS, ResourceOwner
from fulcrum_core.oauth.refusals import described
from fulcrum_core.oauth.server import FulcrumAuthorizationServer

__all__ = ["CONSENTED_SCOPES", "CONSENT_TTL", "ConsentPrompt", "decide", "prepare", "round_trip_params"]

CONSENT_TTL: Final = timedelta(days=180)
"""How long a consent given through the authorization flow lasts."""

CONSENTED_SCOPES: Final = frozenset(n for n, s in SCOPES.items() if s.kind in ("customer_data", "action"))
"""The scopes a plugin's authorization records as the customer's consent: its customer's data and what
it may do on the customer's behalf (``transactions:write``, ``push:send``), so the customer can see and
revoke both; placements are the bank's to grant, not the customer's."""

ROUND_TRIP: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
)
"""The authorization request's parameters, carried through the consent form unchanged."""


class ConsentPrompt(msgspec.Struct, frozen=True, kw_only=True):
    """What the consent page shows: the client, the scopes it asks for and the parameters to resubmit."""

    client: OAuthClient
    scopes: tuple[str, ...]
    params: dict[str, str]


def round_trip_params(snap: RequestSnapshot) -> dict[str, str]:
    """The authorization request's parameters in ``snap`` (what the consent form resubmits)."""
    data = SnapshotRequest(snap).payload.data
    return {k: data[k] for k in ROUND_TRIP if data.get(k)}


def _validated(server: FulcrumAuthorizationServer, snap: RequestSnapshot) -> tuple[SnapshotRequest, Any]:
    request = SnapshotRequest(snap)
    grant = server.get_consent_grant(request=request, end_user=None)
    return request, grant


def _error(server: FulcrumAuthorizationServer, request: SnapshotRequest, error: OAuth2Error) -> OAuthResponse:
    if error.redirect_uri is None:
        # The redirect URI is unknown or unregistered: answer the user agent directly.
        status, body, headers = error()
        return OAuthResponse(status=400 if status == 302 else status, body=body, headers=list(headers))
    return server.error_response(request, error)


_UNTRUSTED: Final = (None, "client_id", "redirect_uri")
"""Query parameters (None: a parameter's name) that, when they are no text, leave the redirect URI
untrusted: the refusal is answered to the user agent, never redirected."""


def _query_refusal(snap: RequestSnapshot) -> OAuthResponse | None:
    """``invalid_request`` answered directly for a query whose client id, redirect URI or a parameter's
    name is no text (RFC 6749 section 4.1.2.1); another parameter is refused at the redirect URI, once
    it is trusted (``grants.AuthorizationCodeGrant``)."""
    refused = snap.query_refused
    if refused is None or refused[0] not in _UNTRUSTED:
        return None
    status, body, headers = InvalidRequestError(description=described(QUERY_WORDS.format(refused[1])))()
    return OAuthResponse(status=status, body=body, headers=list(headers))


def prepare(server: FulcrumAuthorizationServer, snap: RequestSnapshot) -> ConsentPrompt | OAuthResponse:
    """Validate an authorization request: the consent prompt, or the OAuth error response."""
    refused = _query_refusal(snap)
    if refused is not None:
        return refused
    request = SnapshotRequest(snap)
    try:
        request, grant = _validated(server, snap)
    except OAuth2Error as error:
        return _error(server, request, error)
    params = round_trip_params(snap)
    # A request naming no scope asks for all the client's: the form names the ones shown, so the
    # decision is for them even if the client's grant changes while the page is open.
    if request.scope:
        params.setdefault("scope", request.scope)
    return ConsentPrompt(client=grant.client, scopes=tuple(request.scope.split()), params=params)


def _purpose(client: OAuthClient, consented: list[str]) -> str:
    """The consent's purpose in both languages: the data it lets the plugin use, what it lets it do."""
    name_zh, name_en = client.shown_names()
    data = any(SCOPES[s].kind == "customer_data" for s in consented)
    acts = any(SCOPES[s].kind == "action" for s in consented)
    zh = "、".join(w for w, on in (("使用所选数据", data), ("代您办理所选事项", acts)) if on)
    said = (("use the selected data", data), ("act for you as selected", acts))
    en = " and ".join(w for w, on in said if on)
    return f"授权{name_zh}{zh} / allow {name_en} to {en}"


def decide(
    server: FulcrumAuthorizationServer,
    snap: RequestSnapshot,
    *,
    customer_ref: str | None,
    consents: ConsentStore,
    pairwise_id: Callable[[str, str], str],
) -> OAuthResponse:
    """The customer's answer: ``customer_ref`` allowed the request, or ``None`` refused it."""
    refused = _query_refusal(snap)
    if refused is not None:
        return refused
    request = SnapshotRequest(snap)
    try:
        request, grant = _validated(server, snap)
    except OAuth2Error as error:
        return _error(server, request, error)
    client: OAuthClient = grant.client
    owner: ResourceOwner | None = None
    if customer_ref is not None:
        owner = ResourceOwner(customer_ref, "customer")
        if client.kind == "plugin" and client.plugin_id is not None:
            consent_id = None
            consented = sorted(set(request.scope.split()) & CONSENTED_SCOPES)
            if consented:
                # The new consent supersedes older live ones (in one transaction, so a form sent
                # twice at once leaves one live consent), and one DELETE really ends the access.
                consent_id, superseded = consents.supersede(
                    customer_ref,
                    client.plugin_id,
                    consented,
                    purpose=_purpose(client, consented),
                    expires_at=utcnow() + CONSENT_TTL,
                )
                if superseded:
                    # So do the refresh families minted under them: they carry the scopes given then.
                    subjects = (customer_ref, pairwise_id(client.plugin_id, customer_ref))
                    server.refresh_tokens.revoke_subject(client.client_id, subjects)
            # Partners never learn the bank's customer number. The code's tokens rest on the consent.
            sub = pairwise_id(client.plugin_id, customer_ref) if client.is_partner else customer_ref
            owner = ResourceOwner(sub, "customer", consent_id)
    response: OAuthResponse = server.create_authorization_response(
        request=request, grant_user=owner, grant=grant
    )
    return response
