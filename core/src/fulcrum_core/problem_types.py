"""Every problem type the API answers: the one catalogue behind ``GET /problems`` and each ``type`` URI.

An error response is an RFC 9457 problem document whose ``type`` is :func:`problem_base` plus a code
of this catalogue and whose ``code`` member is the stable slug a client switches on. ``code`` and the
type's last segment are the same, except for a plugin's refusal: its ``code`` is the plugin's own
(``pension.annual_cap_exceeded``) and its ``type`` the catalogue's ``transaction.refused``.

``tests/core/test_problem_types.py`` reads the source for every code the host can emit and fails
when one is missing here, or when an entry here is emitted nowhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Final, Literal

import msgspec

if TYPE_CHECKING:
    from fulcrum_core.settings import Settings

__all__ = [
    "CATALOGUE",
    "LEGACY_PROBLEM_BASE",
    "PLUGIN_REFUSAL",
    "RENAMED",
    "ProblemCode",
    "ProblemType",
    "ProblemTypeURI",
    "Remedy",
    "by_code",
    "problem_base",
    "type_uri",
]

Remedy = Literal[
    "fix-request", "retry", "reauthenticate", "get-scope", "ask-consent", "ask-customer", "contact-operator",
    "none",
]
"""What a client does about a problem, for tools: ``fix-request`` (change the request; ``field`` names
what), ``retry`` (send the same request again later, after ``Retry-After`` when given), ``reauthenticate``
(get a new access token), ``get-scope`` (a token with other scopes or of another kind), ``ask-consent``
(the customer grants a consent), ``ask-customer`` (show ``message`` or ``detail``: the customer decides,
e.g. a new transaction), ``contact-operator`` (the platform must act), ``none`` (nothing to do)."""


ProblemTypeURI = Annotated[
    str,
    msgspec.Meta(
        description="The problem type: an absolute URI whose page documents this code (what it means, what "
        "to do); GET /problems on the API lists every type."
    ),
]
"""The ``type`` member of the API's problem schemas, as the OpenAPI document describes it."""

ProblemCode = Annotated[
    str,
    msgspec.Meta(
        description="The stable code to switch on (the last segment of `type`, except a plugin's own refusal "
        "code, typed `transaction.refused`); `detail` is for people and may change."
    ),
]
"""The ``code`` member of the API's problem schemas, as the OpenAPI document describes it."""


class ProblemType(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One problem type: its code, the statuses it comes with, what it means and what to do about it."""

    code: str
    statuses: tuple[int, ...]
    title: str
    meaning: str
    action: str
    remedy: Remedy
    # Members the problem carries beside type, title, status, detail and code.
    members: tuple[str, ...] = ()
    # Response headers that come with it.
    headers: tuple[str, ...] = ()


LEGACY_PROBLEM_BASE: Final = "https://fulcrum.dev/problems/"
"""The base of every ``type`` before the catalogue was served: a domain nobody serves. Transaction
problems journaled then are typed afresh when replayed (``transactions.render.replay``)."""

PLUGIN_REFUSAL: Final = "transaction.refused"
"""The type of every problem whose ``code`` a plugin chose: the catalogue cannot list a plugin's codes."""

_FIELD = ("field",)
_RETRY = ("Retry-After",)
_TX = ("transaction", "message")


def _t(
    code: str, statuses: int | tuple[int, ...], title: str, meaning: str, action: str, remedy: Remedy,
    members: tuple[str, ...] = (), headers: tuple[str, ...] = (),
) -> ProblemType:
    return ProblemType(
        code=code, statuses=statuses if isinstance(statuses, tuple) else (statuses,), title=title,
        meaning=meaning, action=action, remedy=remedy, members=members, headers=headers,
    )


CATALOGUE: Final[tuple[ProblemType, ...]] = (
    # --- Any route: the request itself ------------------------------------------------------------
    _t("invalid-input", 400, "Invalid input",
       "A parameter or the body does not match the operation's schema, or the body is not valid JSON.",
       "Fix the input named by `field`; `errors` lists each bad input with the value sent and, for a "
       "fixed set, the `allowed` values. Do not retry unchanged.",
       "fix-request", ("field", "errors")),
    _t("bad-request", 400, "Bad request",
       "The request is well-formed JSON but a value in it is refused (an unknown scope, a malformed "
       "client id, a decision other than allow or deny).",
       "Fix the input named by `field` as `detail` says. Do not retry unchanged.", "fix-request", _FIELD),
    _t("not-found", 404, "Not found",
       "No route at this path, or nothing by that name for this caller.",
       "Check the path against the OpenAPI document (/schema/openapi.json) and the id sent.",
       "fix-request", _FIELD),
    _t("method-not-allowed", 405, "Method not allowed", "The route exists but not with this HTTP method.",
       "Use a method the route takes (the `Allow` header and the detail list them).", "fix-request", _FIELD),
    _t("not-acceptable", 406, "Not acceptable",
       "The `Accept` header admits no media type the operation answers in: the JSON API answers "
       "`application/json` (its errors `application/problem+json`).",
       "Send `Accept: application/json`, one with `*/*`, or none.", "fix-request", _FIELD),
    _t("too-large", 413, "Content too large", "The request body is larger than the host accepts.",
       "Send a smaller body.", "fix-request"),
    _t("unsupported-media-type", 415, "Unsupported media type",
       "The body is not declared as one the operation reads: another media type, a charset other than "
       "UTF-8, or a content coding (Content-Encoding: gzip) the host does not undo.",
       "Send the body uncompressed as `application/json` in UTF-8 (or the form the operation documents).",
       "fix-request",
       _FIELD),
    _t("rate-limited", 429, "Too many requests",
       "This client (the token's client and subject) sent more /v1 requests in the current window than "
       "the limit allows.",
       "Wait `Retry-After` seconds, then send again; spread requests out.", "retry", headers=_RETRY),
    _t("http-error", (500, 503), "HTTP error",
       "An HTTP error of the web framework the host has no more specific type for; `status` says which.",
       "Act on `status`: fix a 4xx request, retry a 5xx later.", "retry"),
    _t("internal", 500, "Internal error",
       "The host failed in a way it did not expect. Nothing the client sent is known to be wrong.",
       "Retry later; if it persists, report the response's X-Request-ID to the platform team.",
       "contact-operator"),
    # --- Generic fallbacks of the host's error kinds ----------------------------------------------
    _t("unauthorized", 401, "Unauthorized", "No valid access token was presented.",
       "Get a new access token (refresh it, or sign in again) and retry.", "reauthenticate",
       headers=("WWW-Authenticate",)),
    _t("forbidden", 403, "Forbidden", "The caller may not do this.",
       "Do not retry with the same token; `detail` says what is missing.", "get-scope"),
    _t("conflict", 409, "Conflict", "The request clashes with the current state of the resource.",
       "Read the resource again and decide; `detail` says what clashed.", "fix-request"),
    _t("unprocessable", 422, "Unprocessable content", "The request is well-formed but refused.",
       "Act on `detail`; do not retry unchanged.", "fix-request", _FIELD),
    _t("unavailable", 503, "Service unavailable", "A dependency of the host is down.",
       "Retry later, after `Retry-After` seconds when given.", "retry", headers=_RETRY),
    # --- Access tokens (401) ------------------------------------------------------------------------
    _t("token.missing", 401, "No access token",
       "The route needs a Bearer access token and none was sent.",
       "Send `Authorization: Bearer <access token>`; get one from /oauth/token.", "reauthenticate",
       headers=("WWW-Authenticate",)),
    _t("token.malformed", 401, "Malformed access token",
       "The token is not an access token of this host: not a compact JWS, not `typ: at+jwt`, a claim "
       "missing or of the wrong type, or a lifetime above the maximum.",
       "Send the access token as /oauth/token returned it (not the refresh or ID token); get a new one.",
       "reauthenticate", headers=("WWW-Authenticate",)),
    _t("token.bad_alg", 401, "Token algorithm refused",
       "The token is signed with an algorithm this host does not accept (`none`, HMAC) or not the "
       "signing key's.", "Use a token this host issued.", "reauthenticate", headers=("WWW-Authenticate",)),
    _t("token.bad_signature", 401, "Token signature invalid",
       "The token's key id is unknown or its signature does not verify with this issuer's keys.",
       "Get a new token from this host's /oauth/token (keys rotate; an old token may be signed by a "
       "retired key).", "reauthenticate", headers=("WWW-Authenticate",)),
    _t("token.expired", 401, "Access token expired", "The token's `exp` is past.",
       "Refresh the token (grant_type=refresh_token) and retry the request.", "reauthenticate",
       headers=("WWW-Authenticate",)),
    _t("token.not_yet_valid", 401, "Access token not yet valid",
       "The token's `nbf` or `iat` is in the future: the clocks disagree.",
       "Check the device clock; get a new token.", "reauthenticate", headers=("WWW-Authenticate",)),
    _t("token.wrong_issuer", 401, "Token of another issuer", "The token's `iss` is not this host's issuer.",
       "Get a token from this host's /oauth/token.", "reauthenticate", headers=("WWW-Authenticate",)),
    _t("token.wrong_audience", 401, "Token for another audience",
       "The token's `aud` does not name this API.", "Get a token for this API's audience.",
       "reauthenticate", headers=("WWW-Authenticate",)),
    # --- Who may call (403) ---------------------------------------------------------------------------
    _t("scope.insufficient", 403, "Scope missing",
       "The token lacks a scope the operation needs; `missing_scopes` lists them.",
       "Get a token whose grant includes the missing scopes (a new authorization); retrying with this "
       "token fails again.", "get-scope", ("missing_scopes",), ("WWW-Authenticate",)),
    _t("route.undeclared", 403, "Route without access rule",
       "The route declares neither public access nor the scopes it needs, so the host refuses it.",
       "Nothing the client can do: report it to the platform team.", "contact-operator"),
    _t("staff.required", 403, "Staff token required", "Registry routes are for staff tokens only.",
       "Use a staff token (`fulcrum token issue --staff`).", "get-scope"),
    _t("customer.required", 403, "Customer token required",
       "This route acts for one customer and the token names none (a service or staff token).",
       "Use an access token the customer authorized (authorization code flow).", "get-scope"),
    _t("customer.unknown", 403, "Unknown customer",
       "The bank has no customer profile for the token's subject.",
       "Sign the customer in again; if it persists the customer is not onboarded.", "reauthenticate"),
    _t("customer.data_unavailable", 503, "Customer data unavailable",
       "The bank's customer data did not answer in time.", "Retry after `Retry-After` seconds.", "retry",
       headers=_RETRY),
    _t("consent.required", 403, "Consent required",
       "The plugin's page reads customer data the customer has not consented to share with it; "
       "`missing_scopes` names the scope and `plugin` the plugin.",
       "Ask the customer for the consent (the app's consent flow), then open the page again.",
       "ask-consent", ("plugin", "missing_scopes")),
    _t("consent.state", 409, "Consent not awaiting a decision",
       "The consent is no longer awaiting the customer's decision (already granted, denied or revoked).",
       "Read the consent again (GET /v1/consents) and show its current status.", "none"),
    # --- OAuth consent page (the token endpoint answers RFC 6749 errors, not problems) ---------------
    _t("oauth.no_login", 403, "No customer login configured",
       "No customer is signed in to the authorization endpoint: no login cookie from the bank's identity "
       "provider, and the development login is off.",
       "Sign the customer in first (the app posts its identity provider's assertion to `/oauth/login`); "
       "without an identity provider (`oauth_idp`) only the operator can help.", "contact-operator"),
    _t("oauth.bad_assertion", 400, "Identity assertion refused",
       "The bank's identity provider assertion sent to sign in to the consent page does not verify: its "
       "signature, issuer, audience or lifetime is wrong, it was used before, or it names no customer.",
       "Have the identity provider sign a fresh assertion for the customer and send it once.",
       "fix-request", _FIELD),
    _t("oauth.cross_site", 403, "Sign-in from another site",
       "A sign-in to the consent page came from another site's page (its `Origin` or `Sec-Fetch-Site` "
       "names another origin): a page could otherwise sign the browser in as someone else.",
       "Post the assertion from the app or from this host's own pages.", "fix-request"),
    _t("oauth.csrf", 403, "Consent form expired",
       "The consent form's CSRF token is missing or does not match this browser's.",
       "Open the consent page again from the authorization request and decide there.", "fix-request",
       _FIELD),
    # --- Search, feeds, pages ---------------------------------------------------------------------------
    _t("invalid-query", 400, "Invalid search query", "The search text `q` is empty or too long.",
       "Send 1–100 characters in `q`.", "fix-request", _FIELD),
    _t("invalid-page", 400, "Invalid page", "`page` or `page_size` is out of range.",
       "Send values within the range `detail` gives.", "fix-request", _FIELD),
    _t("invalid-cursor", 400, "Invalid cursor",
       "The feed cursor is not one this feed column returned.",
       "Send the `next_cursor` of the previous page of the same column, or none for the first page.",
       "fix-request", _FIELD),
    _t("invalid-limit", 400, "Invalid limit", "The feed page size `limit` is out of range.",
       "Send a limit within the range `detail` gives.", "fix-request", _FIELD),
    _t("feed.unknown-column", 404, "Unknown feed column", "There is no feed column by that name.",
       "Use one of the columns `detail` lists.", "fix-request", _FIELD),
    _t("page.invalid-path", 400, "Invalid page path", "The plugin page path is not a valid page path.",
       "Use the path of a deep link the plugin gave.", "fix-request", _FIELD),
    _t("page.invalid-query", 400, "Invalid page query", "The page's query parameters are not acceptable.",
       "Send at most 20 parameters, names of letters, digits, `_ . -`, values of at most 200 printable "
       "characters.", "fix-request", _FIELD),
    _t("page.unknown-plugin", 404, "No such plugin",
       "No plugin by that id shows pages to this customer.",
       "Open pages only from links the host served; hide the link.", "fix-request", _FIELD),
    _t("page.not-found", 404, "No such page", "The plugin has no page at that path.",
       "Open pages only from links the host served.", "fix-request", _FIELD),
    _t("page.unavailable", 503, "Page unavailable",
       "The plugin could not show the page now (it failed, timed out or is paused).",
       "Retry after `Retry-After` seconds; show a fallback meanwhile.", "retry", ("plugin",), _RETRY),
    # --- Transactions: the request ---------------------------------------------------------------------
    _t("idempotency.key_missing", 400, "Idempotency-Key missing",
       "POST /v1/transactions needs an `Idempotency-Key` header.",
       "Send a unique key per transaction, and the same key on every retry of it.", "fix-request", _FIELD),
    _t("idempotency.key_invalid", 400, "Idempotency-Key invalid",
       "The `Idempotency-Key` is not 1–255 visible ASCII characters.",
       "Send a key such as a UUID.", "fix-request", _FIELD),
    _t("body.malformed", 400, "Body is not JSON", "The body is not valid JSON (or nested too deeply).",
       "Send a JSON object `{\"type\": ..., \"params\": {...}}`.", "fix-request", _FIELD),
    _t("body.invalid", 400, "Body invalid",
       "The body is JSON but not a transaction request (a member missing, unknown or of the wrong type).",
       "Fix the member named by `field`.", "fix-request", _FIELD),
    _t("transaction.client_missing", 403, "Token names no client",
       "The token names no OAuth client, so the transaction's idempotency key has no owner.",
       "Use an access token issued through /oauth/token.", "reauthenticate"),
    _t("transaction.not_owner", 403, "Not this plugin's transaction type",
       "A plugin's token may submit only its own plugin's transaction types.",
       "Submit only the types your plugin declares.", "fix-request", _FIELD),
    _t("transaction.unknown_type", 422, "Unknown transaction type",
       "No installed plugin offers this transaction type.",
       "Use a type GET /v1/transaction-types lists.", "fix-request", _FIELD),
    _t("transaction.plugin_inactive", 403, "Transaction type unavailable",
       "The plugin owning the type is switched off or suspended.",
       "Hide the action; GET /v1/transaction-types lists what is available.", "none", _FIELD),
    _t("transaction.plugin_not_enabled", 403, "Transaction type not for this customer",
       "The customer's branch configuration does not run the plugin owning the type.",
       "Hide the action for this customer.", "none", _FIELD),
    _t("transaction.plugin_scope_missing", 403, "Plugin lacks a scope",
       "The owning plugin is not granted a scope the type requires.",
       "Nothing the client can do: the platform team grants the scope.", "contact-operator"),
    _t("transaction.invalid_params", 422, "Invalid transaction parameters",
       "`params` do not match the type's parameter schema.",
       "Fix the parameter named by `field` (GET /v1/transaction-types gives each type's schema).",
       "fix-request", _FIELD),
    _t("transaction.unknown_account", 422, "Unknown account",
       "A parameter naming an account is not one of the customer's accounts as the type's plugin sees "
       "them (a partner sees its own ids for them, never the bank's).",
       "Send an account id the plugin gave (from its pages or results), as given.", "fix-request", _FIELD),
    _t("transaction.data_unavailable", 503, "Customer data unavailable",
       "The bank's customer data the transaction needs could not be read; nothing was carried out.",
       "Retry the same request with the same Idempotency-Key after `Retry-After` seconds.", "retry",
       headers=_RETRY),
    _t("limits.amount_not_fen", 422, "Amount not in whole fen",
       "The amount is not a whole number of fen (e.g. 12.5).", "Send an integer amount in fen.",
       "fix-request", _FIELD),
    _t("limits.negative_amount", 422, "Negative amount", "The amount is below zero.",
       "Send an amount of at least 0.", "fix-request", _FIELD),
    _t("limits.max_amount", 422, "Amount above the limit",
       "The amount is above the platform's single-transaction limit (`limit_fen`).",
       "Send at most `limit_fen`, or split the transaction if the product allows it.", "fix-request",
       ("field", "limit_fen")),
    _t("suitability.assessment_missing", 422, "Risk assessment missing",
       "The product is rated above R1 and the customer has no risk tolerance assessment.",
       "Show `message` and take the customer to the risk questionnaire.", "ask-customer",
       ("message", "risk_level")),
    _t("suitability.assessment_expired", 422, "Risk assessment expired",
       "The product is rated above R1 and the customer's risk assessment has expired (`expired_on`).",
       "Show `message` and take the customer to redo the risk questionnaire.", "ask-customer",
       ("message", "risk_level", "expired_on")),
    _t("suitability.risk_too_high", 422, "Product above risk tolerance",
       "The product's risk level is above the customer's risk tolerance.",
       "Show `message`; the customer cannot buy this product.", "ask-customer",
       ("message", "risk_level", "risk_tolerance")),
    _t("suitability.product_unrated", 422, "Product without a risk level",
       "The product named in `field` has no declared risk level, so the platform does not sell it.",
       "Choose another product; the plugin's publisher must declare this one's level in a new release.",
       "fix-request", _FIELD),
    # --- Transactions: idempotency -----------------------------------------------------------------------
    _t("idempotency.mismatch", 422, "Idempotency-Key reused",
       "The key was already used for a different request (`transaction_id` is that transaction).",
       "Use a new key for a new transaction.", "fix-request", ("field", "transaction_id")),
    _t("idempotency.in_flight", 409, "Request in flight",
       "A request with this key is still being processed.",
       "Retry the same request with the same key after `Retry-After` seconds.", "retry",
       ("field", "transaction_id"), _RETRY),
    _t("idempotency.owner_changed", 422, "Transaction type changed plugin",
       "The key's transaction was never carried out and its type now belongs to another plugin.",
       "Send it again with a new key if it is still wanted.", "ask-customer", ("field", "transaction_id")),
    _t("idempotency.expired", 422, "Retry window closed",
       "The key's transaction was never carried out and its retry window has closed: it ended as "
       "failed (`first_seen_at` is when it was first sent).",
       "Show `message`; if the customer still wants it, send it again with a new key.", "ask-customer",
       ("field", "first_seen_at", *_TX)),
    # --- Transactions: the outcome ---------------------------------------------------------------------
    _t("transaction.not_found", 404, "No such transaction",
       "No transaction with that id for this caller (another customer's answers the same).",
       "Use the id a POST /v1/transactions answer gave.", "fix-request", _FIELD),
    _t(PLUGIN_REFUSAL, 422, "Refused by the plugin",
       "The plugin owning the type refused the transaction for a business reason; `code` is the "
       "plugin's own (e.g. `pension.annual_cap_exceeded`), `message` says why in zh-CN and en. Once "
       "journaled, `transaction` is the failed transaction.",
       "Show `message` to the customer; a changed request needs a new Idempotency-Key.", "ask-customer",
       ("field", *_TX)),
    _t("transaction.failed", 422, "Transaction failed",
       "The plugin reported the transaction as failed without a code of its own.",
       "Show `message`; a new attempt needs a new Idempotency-Key.", "ask-customer", _TX),
    _t("transaction.plugin_error", 502, "Plugin failed",
       "The owning plugin failed; the transaction was not carried out.",
       "Show `message`; a retry with the same key replays this answer, a new key tries again.",
       "ask-customer", ("plugin", *_TX)),
    _t("transaction.plugin_unavailable", 503, "Plugin unavailable",
       "The owning plugin is temporarily unavailable (paused, overloaded); it was not asked, nothing "
       "was carried out.",
       "Retry the same request with the same Idempotency-Key after `Retry-After` seconds, within the "
       "retry window.", "retry", ("plugin", *_TX), _RETRY),
    # --- Staff and registry ------------------------------------------------------------------------------
    _t("branch.no-configuration", 404, "No branch configuration",
       "This host runs without branch configuration: every approved plugin is on for everyone.",
       "Nothing to read; configure branches (the `branches_dir` setting) to use these routes.", "none"),
    _t("branch.unknown", 404, "Unknown branch", "No branch configuration by that code.",
       "Use a branch `detail` lists.", "fix-request", _FIELD),
    _t("not-ready", 503, "Not ready",
       "The worker cannot serve yet: the database does not answer at this release's schema or plugins "
       "are not loaded; `reasons` says which.",
       "Load balancers: send traffic elsewhere. Operators: act on `reasons`.", "contact-operator",
       ("reasons",)),
    _t("registry.publisher-missing", 403, "Token names no publisher",
       "Publishing needs a token minted for a publisher.",
       "Mint a staff token with `--publisher ID`.", "get-scope"),
    _t("registry.other-publisher", 403, "Another publisher's",
       "The release or publisher belongs to another publisher than the token's.",
       "Act only on your own publisher's plugins.", "get-scope"),
    _t("registry.not-a-person", 403, "A tool cannot decide",
       "A staff tool's own token (client credentials) cannot approve, reject, resume or reinstate: these "
       "decisions name a person, and the two that four eyes need must be two people.",
       "Use a token issued to the reviewer.", "get-scope"),
    _t("registry.unusable-subject", 403, "The token's subject cannot act",
       "The registry records who acts (submitter, reviewer, audit actor) in 1 to 200 characters without "
       "NUL; the access token's subject is blank, longer, or holds a NUL, so nothing was done or written.",
       "Use a token issued to a subject of at most 200 characters.", "get-scope"),
    _t("registry.not-found", 404, "Not in the registry",
       "No publisher, plugin, release or approved file by that id.", "Check the id sent.", "fix-request",
       _FIELD),
    _t("registry.invalid-input", 422, "Registry input invalid",
       "An argument is malformed or out of range; `field` names it.", "Fix the input named by `field`.",
       "fix-request", _FIELD),
    _t("registry.forbidden", 403, "Forbidden by the registry's rules",
       "The registry's rules forbid this actor doing this.", "Act as `detail` says.", "get-scope"),
    _t("registry.four-eyes", 403, "Four-eyes rule",
       "A release needs decisions from people other than its submitter, each counted once.",
       "Ask another reviewer.", "none"),
    _t("registry.publisher-suspended", 403, "Publisher suspended",
       "The publisher is suspended: nothing new of theirs is filed or approved.",
       "The platform team reinstates the publisher.", "contact-operator"),
    _t("registry.conflict", 409, "Registry conflict", "The request clashes with what the registry stores.",
       "Read the current state and decide.", "fix-request"),
    _t("registry.already-exists", 409, "Already exists", "An item with that id exists already.",
       "Use another id, or read the existing one.", "fix-request"),
    _t("registry.illegal-transition", 409, "Illegal release transition",
       "The release is not in a state that allows the action; `state` is its state, `allowed` what it "
       "allows.", "Take one of the `allowed` actions, or none if the state is final.", "fix-request",
       ("release_id", "state", "allowed")),
    _t("registry.unavailable", 503, "Registry unavailable",
       "The registry's database or artifact store failed.", "Retry later.", "retry"),
    _t("registry.registry-error", 503, "Registry error", "The registry failed in an unclassified way.",
       "Retry later; if it persists, report it to the platform team.", "retry"),
    # --- The host's database ------------------------------------------------------------------------------
    _t("db.unavailable", 503, "Database unavailable", "The database could not be reached or timed out.",
       "Retry later.", "retry"),
    _t("db.duplicate", 409, "Duplicate", "A write broke a uniqueness or reference rule.",
       "Read the current state; use another id.", "fix-request"),
    _t("db.invalid-value", 422, "Value refused", "The database refused a value (too long, out of range).",
       "Send a shorter or smaller value.", "fix-request"),
)

_BY_CODE: Final = {entry.code: entry for entry in CATALOGUE}
if len(_BY_CODE) != len(CATALOGUE):  # pragma: no cover - caught by the tests at once
    raise ValueError("a problem code is catalogued twice")


RENAMED: Final = {"unknown-customer": "customer.unknown"}
"""Codes answered once and since merged into another (the same condition under two names): a ``type``
journaled or linked under the old code still leads to its entry."""


def by_code(code: str) -> ProblemType | None:
    """The catalogue entry of ``code`` (or of the code it was renamed to), or None."""
    return _BY_CODE.get(RENAMED.get(code, code))


def problem_base(settings: Settings) -> str:
    """The absolute URI every ``type`` starts with, ending in ``/``: ``problem_base_url`` when set,
    else ``/problems/`` under the issuer (the host's own public address, which serves the catalogue).

    Read from the settings, never from a request's Host: one deployment answers one ``type`` per
    code, however it was reached, and the transaction journal replays stored problems verbatim."""
    base = settings.problem_base_url or settings.issuer.rstrip("/") + "/problems"
    return base if base.endswith("/") else base + "/"


def type_uri(base: str, code: str) -> str:
    """The ``type`` of a problem with ``code`` (one the catalogue lists) under ``base``."""
    return base + code
