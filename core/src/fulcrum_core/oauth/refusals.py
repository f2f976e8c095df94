"""The ``error_description`` of the OAuth refusals authlib leaves bare or vague, in words.

RFC 6749's error codes stay authlib's; only the description says what was sent and what would do (an
unknown scope and the one it nearly spells, the grant types accepted). A description may hold only
printable ASCII without ``"`` and ``\\`` (RFC 6749 section 5.2), so what a client sent is quoted safely.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from fulcrum_sdk._in_words import did_you_mean

__all__ = [
    "AUTHLIB_VAGUE_CLIENT",
    "client_refusal",
    "described",
    "grant_type_refusal",
    "response_type_refusal",
    "sent",
    "unknown_scope_refusal",
]

_ECHO = 40
"""Characters of a value sent quoted back: enough to recognise it."""

AUTHLIB_VAGUE_CLIENT = (
    "The client cannot authenticate with methods",
    "The client does not exist on this server",
)
"""How authlib's client refusals begin: they say neither which client nor what would do."""

_HOW = {
    "client_secret_basic": "its id and secret by HTTP Basic (client_secret_basic)",
    "private_key_jwt": "a client assertion signed with a key it registered (private_key_jwt)",
    "none": "its client_id alone (a public client)",
}


def described(words: str) -> str:
    """``words`` as a description may hold them: each character it may not hold is ``?``."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in words)


def sent(value: str) -> str:
    """``value`` quoted for a description: each character a description may not hold is ``?``."""
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in value[:_ECHO])
    return f"'{safe}{'...' if len(value) > _ECHO else ''}'"


def grant_type_refusal(grant_type: str | None, accepted: Iterable[str]) -> str:
    """A missing or unsupported ``grant_type``, with the ones this token endpoint accepts."""
    names = sorted(accepted)
    what = f"grant_type {sent(grant_type)} is not supported" if grant_type else "grant_type is missing"
    hint = did_you_mean(grant_type, names) if grant_type else ""
    return f"{what}; the grant types accepted are: {', '.join(names)}{hint}"


def response_type_refusal(response_type: str | None) -> str:
    """Any ``response_type`` but ``code``: the implicit flow (``token``) is not offered."""
    what = "response_type is missing"
    if response_type:
        what = f"response_type {sent(response_type)} is not supported"
    return f"{what}; only 'code' is (the authorization code flow, with PKCE)"


def unknown_scope_refusal(unknown: list[str], known: Iterable[str]) -> str:
    """Scopes no client can ask for, the first with the scope it nearly spells."""
    names = ", ".join(sent(s) for s in unknown)
    return f"unknown scope {names}{did_you_mean(unknown[0], known)}"



def client_refusal(
    client_id: str | None,
    *,
    sent_by: str | None,
    registered: tuple[str, bool, bool] | None,
    accepted: Sequence[str] = (),
    secret_sent: bool = True,
) -> str:
    """A client that did not authenticate, or a client_id the authorization endpoint cannot serve.

    ``sent_by`` is how the request authenticated (a key of ``_HOW``, or None); ``registered`` the
    client's ``(auth_method, active, is a plugin's)``, or None for an id registered nowhere;
    ``accepted`` the methods this endpoint and grant take (empty: not an authentication);
    ``secret_sent`` false when HTTP Basic named the client with no secret.
    """
    if not client_id:
        return "no client was named: a client authenticates with " + "; or ".join(_HOW.values())
    who = f"client {sent(client_id)}"
    if registered is None:
        return f"{who} is not registered here"
    method, active, plugin = registered
    if not active:
        why = (
            ": a plugin's client works while a release of the plugin is approved and not suspended, and a "
            "partner's once that release's manifest lists its public keys under [oauth]" if plugin else ""
        )
        return f"{who} is disabled{why}"
    how = _HOW.get(method, method)
    if accepted and method not in accepted:
        takes = ", ".join(accepted)
        return f"{who} authenticates with {how}, which this request does not take (it takes {takes})"
    if sent_by is None:
        return f"{who} authenticates with {how}, and the request sent no client authentication"
    if sent_by != method:
        return f"{who} authenticates with {how}, not {_HOW[sent_by]}"
    if method == "client_secret_basic" and not secret_sent:
        return f"no secret was sent for {who}: HTTP Basic carries client_id:secret"
    if method == "client_secret_basic":
        return (
            f"the secret sent for {who} is not its current one "
            "(fulcrum oauth rotate-secret gives a new secret, and the old one stops working at once)"
        )
    return f"{who} could not authenticate with {how}"
