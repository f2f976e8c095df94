"""The ``error_description`` of the OAuth refusals authlib leaves bare or vague, in words.

RFC 6749's error codes stay authlib's; only the description says what was sent and what would do (an
unknown scope and the one it nearly spells, the grant types accepted). A description may hold only
printable ASCII without ``"`` and ``\\`` (RFC 6749 section 5.2), so what a client sent is quoted safely.
"""

from __future__ import annotations

from collections.abc import Iterable

from fulcrum_sdk._in_words import did_you_mean

__all__ = ["grant_type_refusal", "response_type_refusal", "sent", "unknown_scope_refusal"]

_ECHO = 40
"""Characters of a value sent quoted back: enough to recognise it."""


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
