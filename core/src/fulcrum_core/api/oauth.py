"""The OAuth endpoints: authorize, token, revoke, introspect, metadata (RFC 8414) and the JWKS.

They are ``public`` for the bearer-token middleware: the client authenticates to authlib (secret,
``private_key_jwt`` or PKCE for the public app) and the customer on the consent page. Each handler
reads the request, runs authlib in a worker thread and returns its answer unchanged; OAuth errors
are OAuth error JSON (RFC 6749 §5.2), not problem details, as OAuth clients expect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec
from authlib.oauth2.rfc6749 import OAuth2Error
from fulcrum_registry import RegistryError
from fulcrum_sdk.display import find_display_problem
from fulcrum_sdk.manifest import Manifest
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.openapi.datastructures import ResponseSpec

from fulcrum_core import host_threads
from fulcrum_core.api.input_problems import INPUT_PROBLEM_RESPONSE, PROBLEM_MEDIA_TYPE
from fulcrum_core.api.openapi_refusals import UNSUPPORTED_MEDIA_TYPE_RESPONSE
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.errors import BadRequest, Forbidden, ServiceUnavailable, UnsupportedMediaType
from fulcrum_core.oauth import consent_csrf, login_session
from fulcrum_core.oauth.adapter import (
    MAX_BODY,
    OAuthResponse,
    RequestSnapshot,
    SnapshotRequest,
    back_channel_refusal,
    garbled_words,
    snapshot,
    to_litestar,
)
from fulcrum_core.oauth.authorize import ConsentPrompt, decide, prepare, round_trip_params
from fulcrum_core.oauth.consent_page import (
    CONSENT_PAGE_HEADERS,
    render_consent_page,
    render_expired_page,
    render_refused_page,
    render_sign_in_page,
)
from fulcrum_core.oauth.jwt_bearer import verify_assertion
from fulcrum_core.oauth.metadata import server_metadata
from fulcrum_core.oauth.refusals import sent
from fulcrum_core.oauth.server import oauth_server
from fulcrum_core.registry_host.host import watcher_of
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = [
    "ROUTES",
    "OAuthError",
    "authorize_decision",
    "authorize_page",
    "introspect",
    "jwks",
    "login",
    "logout",
    "metadata",
    "revoke",
    "token",
]

log = logging.getLogger("fulcrum.oauth")

_PUBLIC = {"public": True}


def _guarded(call: Callable[[], OAuthResponse]) -> OAuthResponse:
    """Run an authlib call; an error raised outside authlib's own handling (e.g. plain HTTP) → its JSON."""
    try:
        return call()
    except OAuth2Error as error:
        status, body, headers = error()
        return OAuthResponse(status=400 if status == 302 else status, body=body, headers=list(headers))


async def _in_thread(call: Callable[[], OAuthResponse]) -> Response[bytes]:
    return to_litestar(await host_threads.run_sync(_guarded, call))


async def _back_channel(
    request: Request[Any, Any, Any], answer: Callable[[Runtime, RequestSnapshot], OAuthResponse]
) -> Response[bytes]:
    """A token, revocation or introspection request: one form, checked, then answered by authlib."""
    runtime = runtime_of(request)
    snap = await snapshot(request, base_url=runtime.settings.issuer)
    refused = back_channel_refusal(snap)
    if refused is not None:
        return to_litestar(refused)
    return await _in_thread(lambda: answer(runtime, snap))


def _readable_form(snap: RequestSnapshot) -> None:
    """415 naming the charset of a form declared in another than UTF-8, and 400 naming a parameter that
    is not UTF-8 text, at the endpoints that answer problem details (the back channel refuses both in
    OAuth's words)."""
    if snap.charset_refused is not None:
        raise UnsupportedMediaType(f"{snap.charset_refused} (a form is sent in UTF-8)", field="Content-Type")
    if snap.garbled is not None:
        raise BadRequest(garbled_words(snap.garbled), field=snap.garbled or "body")


def _dev_login_enabled(runtime: Runtime) -> bool:
    return runtime.settings.oauth_dev_login or runtime.settings.dev_mode


_SIGN_IN = (
    "sign the customer in first: the app posts its identity provider's assertion to "
    f"{login_session.LOGIN_PATH} (see docs/oauth.md)"
)


async def _signed_in(request: Request[Any, Any, Any], runtime: Runtime) -> str | None:
    """The customer the login cookie names (set by ``POST /oauth/login``), or None, also for a cookie
    signed out since (``POST /oauth/logout``, on any worker)."""
    issuer = runtime.settings.issuer
    value = request.cookies.get(login_session.cookie_name(issuer))
    claims = login_session.verify(runtime.tokens.keys, value, issuer=issuer)
    if claims is None:
        return None
    sign_outs = login_session.SignOuts(runtime.db, issuer)
    return None if await host_threads.run_sync(sign_outs.signed_out, claims) else claims.sub


def _no_login(runtime: Runtime) -> Forbidden:
    """403 ``oauth.no_login``: no customer is signed in and the development login is off."""
    if runtime.settings.oauth_idp.issuer is None:
        return Forbidden(
            "no customer login is configured: set the bank's identity provider ([oauth_idp]), or "
            "enable the development login (oauth_dev_login) in a demo",
            code="oauth.no_login",
        )
    return Forbidden(f"no customer is signed in; {_SIGN_IN}", code="oauth.no_login")


def _refuse_no_login(request: Request[Any, Any, Any], runtime: Runtime) -> Response[Any]:
    """No customer signed in: a page saying so for a browser (the app's webview, or a partner's link
    opened outside the app), else the 403 ``oauth.no_login`` problem."""
    refusal = _no_login(runtime)
    if not _prefers_html(request):
        raise refusal
    page = render_sign_in_page(
        "oauth.no_login", refusal.detail, login_configured=runtime.settings.oauth_idp.issuer is not None
    )
    return Response(content=page, status_code=403, media_type="text/html", headers=CONSENT_PAGE_HEADERS)


def _demo_customers(runtime: Runtime) -> list[tuple[str, str]]:
    """(customer number, label) of the demo customers the development login offers."""
    listing = getattr(runtime.provider, "customers", None)
    if not callable(listing):
        return []
    out = []
    for record in listing():
        profile = record.profile
        out.append((record.id, f"{record.id} · {profile.segment} · {profile.branch}"))
    return out


class OAuthError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An OAuth endpoint's error in RFC 6749's own shape (section 5.2), which OAuth clients expect,
    rather than problem details: ``invalid_request``, ``invalid_client``, ``invalid_grant``,
    ``unsupported_grant_type``, ``invalid_scope``, …"""

    error: str
    error_description: str | None = None
    error_uri: str | None = None
    state: str | None = None


def _oauth_error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=OAuthError, description=description, generate_examples=False)


# No body (litestar would document a JSON null for the 204 of a ``Response[None]``).
_SIGNED_IN = ResponseSpec(None, description="Signed in: the login cookie is set, no body")
_SIGNED_IN_NEXT = ResponseSpec(None, description="Signed in, and sent on to `next` (Location), no body")
_SIGNED_OUT = ResponseSpec(
    None, description="Signed out (or was not signed in): the login cookie is cleared, no body"
)
_BAD_REQUEST = _oauth_error("The request is invalid (`error` says how, RFC 6749 section 5.2)")
_BAD_CLIENT = _oauth_error("Client authentication failed (`invalid_client`)")


@get(
    "/oauth/authorize",
    opt=_PUBLIC,
    tags=["oauth"],
    summary="Authorization endpoint: the consent page",
    responses={
        400: _oauth_error(
            "The authorization request is invalid and cannot be redirected (a browser, whose Accept "
            "prefers HTML, gets a page saying so instead)"
        )
    },
)
async def authorize_page(request: Request[Any, Any, Any]) -> Response[Any]:
    """Validate the authorization request and show the consent page, or answer with the OAuth error: a
    redirect to the client, else a page for a browser and JSON for other clients."""
    runtime = runtime_of(request)
    snap = await snapshot(request, base_url=runtime.settings.issuer)
    result = await host_threads.run_sync(_guarded_prepare, runtime, snap)
    if isinstance(result, OAuthResponse):
        if result.location is None and _prefers_html(request):
            return _refused_page(result)
        return to_litestar(result)
    signed_in = await _signed_in(request, runtime)
    if signed_in is None and not _dev_login_enabled(runtime):
        return _refuse_no_login(request, runtime)
    customers = [] if signed_in else await host_threads.run_sync(_demo_customers, runtime)
    manifest = await host_threads.run_sync(_plugin_manifest, runtime, result)
    issuer = runtime.settings.issuer
    cookie = consent_csrf.cookie_name(issuer)
    # Keep the browser's secret if it has one, so two open consent tabs both stay valid.
    secret = consent_csrf.usable_secret(request.cookies.get(cookie)) or consent_csrf.new_secret()
    page = render_consent_page(
        result,
        action="/oauth/authorize",
        customers=customers,
        csrf_token=consent_csrf.form_token(secret, result.params, customer=signed_in),
        signed_in=signed_in,
        manifest=manifest,
    )
    response: Response[Any] = Response(
        content=page, media_type="text/html", headers=CONSENT_PAGE_HEADERS
    )
    response.set_cookie(
        cookie, secret, path="/", secure=cookie.startswith("__Host-"), httponly=True, samesite="lax"
    )
    return response


def _prefers_html(request: Request[Any, Any, Any]) -> bool:
    """Whether the client is a browser (its Accept prefers HTML); API clients, ``*/*`` included, get JSON."""
    return request.accept.best_match([PROBLEM_MEDIA_TYPE, "application/json", "text/html"]) == "text/html"


def _refused_page(refusal: OAuthResponse) -> Response[Any]:
    """An authorization request refused without a redirect, as a page the customer can read: the app's
    webview shows it in place of the consent page (RFC 6749 section 4.1.2.1: inform the resource owner)."""
    body = refusal.body if isinstance(refusal.body, dict) else {}
    page = render_refused_page(str(body.get("error", "invalid_request")), body.get("error_description"))
    return Response(
        content=page, status_code=refusal.status, media_type="text/html", headers=CONSENT_PAGE_HEADERS
    )


def _plugin_manifest(runtime: Runtime, prompt: ConsentPrompt) -> Manifest | None:
    """The manifest of the plugin whose client asks, for its name and scope reasons, or None for
    another client: on a host that obeys the registry, its newest approved release's (the same on
    every host, with the plugin installed or not, at any installed version during a rolling upgrade);
    else, or when the registry has none or cannot be read, the one installed here. Blocking (a read)."""
    plugin_id = prompt.client.plugin_id
    if plugin_id is None:
        return None
    watcher = watcher_of(runtime)
    if watcher is not None:
        try:
            approved = watcher.service.approved_manifest(plugin_id)
        except RegistryError as exc:
            log.warning("the consent page shows the installed manifest of %r: %s", plugin_id, exc)
        else:
            if approved is not None and _shown(approved, "approved release"):
                return approved
    loaded = runtime.plugins.loaded.get(plugin_id)
    return loaded.manifest if loaded is not None and _shown(loaded.manifest, "installed manifest") else None


def _shown(manifest: Manifest, which: str) -> bool:
    """Whether the page may show ``manifest``'s name and reasons: a release approved before display text
    was checked may hold a bidi override there, which would make them read otherwise (logged)."""
    found = find_display_problem(manifest)
    if found is None:
        return True
    log.warning("the consent page does not show the %s of %r: %s: %s", which, manifest.id, *found)
    return False


def _guarded_prepare(runtime: Runtime, snap: RequestSnapshot) -> ConsentPrompt | OAuthResponse:
    try:
        result: ConsentPrompt | OAuthResponse = prepare(oauth_server(runtime), snap)
    except OAuth2Error as error:
        _status, body, headers = error()
        return OAuthResponse(status=400, body=body, headers=list(headers))
    return result


@post(
    "/oauth/authorize",
    opt=_PUBLIC,
    request_max_body_size=MAX_BODY,
    tags=["oauth"],
    summary="The customer's decision on the consent page",
    responses={400: INPUT_PROBLEM_RESPONSE, 415: UNSUPPORTED_MEDIA_TYPE_RESPONSE},
)
async def authorize_decision(request: Request[Any, Any, Any]) -> Response[Any]:
    """Issue a code (``decision=allow``) or ``access_denied`` (``decision=deny``) to the redirect URI."""
    runtime = runtime_of(request)
    signed_in = await _signed_in(request, runtime)
    if signed_in is None and not _dev_login_enabled(runtime):
        return _refuse_no_login(request, runtime)
    snap = await snapshot(request, base_url=runtime.settings.issuer)
    _readable_form(snap)
    form = dict(snap.form)
    secret = request.cookies.get(consent_csrf.cookie_name(runtime.settings.issuer))
    params = round_trip_params(snap)
    if not consent_csrf.verify(secret, form.get(consent_csrf.FIELD), params, customer=signed_in):
        # A forged or stale form (or one whose page named another signed-in customer): refused before
        # anything is decided, never redirected with a code.
        if _prefers_html(request):
            # A browser (its Accept prefers HTML): a page saying the form expired, a link to start again.
            restart = "/oauth/authorize?" + urlencode(params)
            return Response(
                content=render_expired_page(restart), status_code=403, media_type="text/html",
                headers=CONSENT_PAGE_HEADERS,
            )
        raise Forbidden(
            "the consent form's CSRF token is missing or wrong, or its page named another signed-in "
            "customer; open the consent page again",
            code="oauth.csrf",
            field=consent_csrf.FIELD,
        )
    decision = form.get("decision")
    if decision not in ("allow", "deny"):
        raise BadRequest("decision must be 'allow' or 'deny'", field="decision")
    customer_ref: str | None = None
    if decision == "allow" and signed_in is not None:
        customer_ref = signed_in  # the signed-in customer, never a form field
    elif decision == "allow":
        customer_ref = form.get("customer", "")
        if not customer_ref:
            raise BadRequest("choose the customer to act as (the development login)", field="customer")
    consents = ConsentStore(runtime.db)

    def call() -> OAuthResponse:
        # In the worker thread: a bank's provider may do I/O to answer.
        if customer_ref is not None and runtime.provider.profile(customer_ref) is None:
            why = _unknown_customer(customer_ref, signed_in=signed_in is not None)
            raise BadRequest(why, field="customer")
        return decide(
            oauth_server(runtime),
            snap,
            customer_ref=customer_ref,
            consents=consents,
            pairwise_id=runtime.contexts.pairwise_id,
        )

    return await _in_thread(call)


def _unknown_customer(customer_ref: str, *, signed_in: bool) -> str:
    """Why a decision for a customer the bank's data does not hold is refused, in words true anywhere:
    the signed-in customer (closed since the login), or one the development login's form named."""
    if signed_in:
        known = f"the bank does not know the signed-in customer {sent(customer_ref)}"
        return f"{known} (any more): nothing was authorized"
    return f"the bank does not know a customer {sent(customer_ref)}: choose one the development login lists"


def _consent_path(path: str) -> bool:
    """Whether ``path`` is this host's authorization endpoint: no other host, no header-breaking bytes."""
    return path.startswith("/oauth/authorize?") and all(" " < c < "\x7f" and c != "\\" for c in path)


def _same_origin_only(request: Request[Any, Any, Any], issuer: str, action: str = "sign-in") -> None:
    """Refuse a sign-in (or sign-out) another site's page made the browser send (login CSRF: a browser
    signed in as someone else would grant a partner that someone's data; a forced sign-out is a
    nuisance). Browsers name the page's origin in ``Origin`` and ``Sec-Fetch-Site`` on every form POST;
    the app's own webview or backend, and clients outside a browser, send neither or this host's."""
    parts = urlsplit(issuer)
    own = f"{parts.scheme}://{parts.netloc}"
    origin = request.headers.get("origin")
    site = request.headers.get("sec-fetch-site")
    if (origin is not None and origin != own) or site in ("cross-site", "same-site"):
        raise Forbidden(
            f"a {action} must come from this host's own pages or the app (Origin {origin or 'absent'}, "
            f"Sec-Fetch-Site {site or 'absent'}; expected {own})",
            code="oauth.cross_site",
        )


@post(
    login_session.LOGIN_PATH,
    opt=_PUBLIC,
    request_max_body_size=MAX_BODY,
    tags=["oauth"],
    summary="Sign the customer in to the consent page with the bank's identity assertion",
    status_code=204,
    responses={
        204: _SIGNED_IN, 303: _SIGNED_IN_NEXT, 400: INPUT_PROBLEM_RESPONSE,
        415: UNSUPPORTED_MEDIA_TYPE_RESPONSE,
    },
)
async def login(request: Request[Any, Any, Any]) -> Response[None]:
    """Verify the IdP's ``assertion`` (RFC 7523, as at the token endpoint) and set the login cookie.

    With ``next`` (an ``/oauth/authorize?…`` path on this host) the answer is a 303 there, so the
    app's webview opens the consent page with one request; without it, 204.
    """
    runtime = runtime_of(request)
    _same_origin_only(request, runtime.settings.issuer)
    snap = await snapshot(request, base_url=runtime.settings.issuer)
    _readable_form(snap)
    refused = back_channel_refusal(snap)  # one form in the body, each parameter once
    if refused is not None:
        raise BadRequest(str(refused.body.get("error_description", "send one form")), field="assertion")
    form = dict(snap.form)
    after = form.get("next")
    if after is not None and not _consent_path(after):
        raise BadRequest("next must be a path on this host starting /oauth/authorize?", field="next")
    idp = runtime.settings.oauth_idp
    if idp.issuer is None:
        raise _no_login(runtime)
    assertion = form.get("assertion")
    if not assertion:
        raise BadRequest("send the identity provider's signed assertion", field="assertion")
    server = oauth_server(runtime)

    def call() -> str:
        try:
            return verify_assertion(server, SnapshotRequest(snap), assertion)
        except OAuth2Error as error:
            if error.status_code == 503:
                raise ServiceUnavailable(str(error.description)) from None
            raise BadRequest(
                f"the assertion is refused: {error.description or error.error}",
                code="oauth.bad_assertion",
                field="assertion",
            ) from None

    verified = await host_threads.run_sync(call)
    issuer = runtime.settings.issuer
    cookie = login_session.cookie_name(issuer)
    # The cookie this one replaces ends now: a copy of it would outlive the customer's sign-out, which
    # ends only the cookie the browser holds then.
    replaced = login_session.verify(runtime.tokens.keys, request.cookies.get(cookie), issuer=issuer)
    if replaced is not None:
        await host_threads.run_sync(login_session.SignOuts(runtime.db, issuer).sign_out, replaced)
    value = login_session.sign(
        runtime.tokens.keys, issuer=issuer, customer_ref=verified, seconds=idp.login_seconds
    )
    headers = {"Cache-Control": "no-store"} | ({"Location": after} if after is not None else {})
    response: Response[None] = Response(None, status_code=303 if after is not None else 204, headers=headers)
    response.set_cookie(
        cookie, value, path="/", max_age=idp.login_seconds, secure=cookie.startswith("__Host-"),
        httponly=True, samesite="lax",
    )
    return response


@post(
    login_session.LOGOUT_PATH,
    opt=_PUBLIC,
    tags=["oauth"],
    summary="Sign the customer out of the consent page: end the login cookie on every worker",
    status_code=204,
    responses={204: _SIGNED_OUT},
)
async def logout(request: Request[Any, Any, Any]) -> Response[None]:
    """Clear the login cookie and record it as signed out until it would have expired, so a copy taken
    before is refused by every worker too. Always 204, with or without a valid cookie (idempotent);
    it never redirects, so there is no target to abuse: the app decides what its webview opens next.
    """
    runtime = runtime_of(request)
    issuer = runtime.settings.issuer
    _same_origin_only(request, issuer, "sign-out")
    cookie = login_session.cookie_name(issuer)
    # The attributes the login set: a browser ignores a __Host- cookie's deletion without Secure.
    cleared = Cookie(
        key=cookie, value="", path="/", max_age=0, secure=cookie.startswith("__Host-"), httponly=True,
        samesite="lax",
    )
    claims = login_session.verify(runtime.tokens.keys, request.cookies.get(cookie), issuer=issuer)
    if claims is not None:
        try:
            await host_threads.run_sync(login_session.SignOuts(runtime.db, issuer).sign_out, claims)
        except Exception as exc:  # the browser forgets the cookie anyway; a copy of it still works
            log.warning("a sign-out could not be recorded: %s: %s", type(exc).__name__, exc)
            raise ServiceUnavailable(
                "the sign-out could not be recorded, so a copy of the login cookie taken earlier still works "
                "until it expires; this browser's cookie is cleared; send the sign-out again",
                headers={"Set-Cookie": cleared.to_header(header=""), "Cache-Control": "no-store"},
            ) from None
    response: Response[None] = Response(
        None, status_code=204, headers={"Cache-Control": "no-store"}, cookies=[cleared]
    )
    return response


@post(
    "/oauth/token",
    opt=_PUBLIC,
    request_max_body_size=MAX_BODY,
    tags=["oauth"],
    summary="Token endpoint",
    status_code=200,
    responses={400: _BAD_REQUEST, 401: _BAD_CLIENT},
)
async def token(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Exchange a code, a refresh token or client credentials for tokens."""
    return await _back_channel(
        request, lambda runtime, snap: oauth_server(runtime).create_token_response(request=snap)
    )


@post(
    "/oauth/revoke",
    opt=_PUBLIC,
    request_max_body_size=MAX_BODY,
    tags=["oauth"],
    summary="Token revocation (RFC 7009)",
    status_code=200,
    responses={400: _BAD_REQUEST, 401: _BAD_CLIENT},
)
async def revoke(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Revoke a refresh token (and its family); unknown tokens are answered 200 as RFC 7009 requires."""
    return await _back_channel(
        request, lambda runtime, snap: oauth_server(runtime).create_endpoint_response("revocation", snap)
    )


@post(
    "/oauth/introspect",
    opt=_PUBLIC,
    request_max_body_size=MAX_BODY,
    tags=["oauth"],
    summary="Token introspection (RFC 7662)",
    status_code=200,
    responses={400: _BAD_REQUEST, 401: _BAD_CLIENT},
)
async def introspect(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Whether a token is active, and what it grants, for a confidential client."""
    return await _back_channel(
        request, lambda runtime, snap: oauth_server(runtime).create_endpoint_response("introspection", snap)
    )


@get(
    "/.well-known/oauth-authorization-server",
    opt=_PUBLIC,
    tags=["oauth"],
    summary="Server metadata (RFC 8414)",
)
async def metadata(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Endpoints, grants, PKCE methods and scopes of this authorization server."""
    settings = runtime_of(request).settings
    return server_metadata(settings.issuer.rstrip("/"), jwt_bearer=settings.oauth_idp.issuer is not None)


@get(
    "/oauth/jwks",
    opt=_PUBLIC,
    tags=["oauth"],
    summary="The token signing keys (JWK Set)",
    sync_to_thread=True,
)
def jwks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The public half of every signing key; resource servers verify access tokens with these."""
    return runtime_of(request).tokens.keys.public_jwks()


ROUTES: list[Any] = [
    authorize_page,
    authorize_decision,
    login,
    logout,
    token,
    revoke,
    introspect,
    metadata,
    jwks,
]
