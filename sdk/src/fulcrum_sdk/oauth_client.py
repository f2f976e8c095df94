"""The ``[oauth]`` table of ``fulcrum-plugin.toml``: how the plugin's backend meets the authorization server.

Each approved plugin gets one confidential OAuth client. A partner's backend authenticates with
``private_key_jwt``: the public keys it signs client assertions with are published here (RFC 7517
JWK Set, public members only), reviewed with the release and rotated by releasing new keys alongside
the old. ``redirect_uris`` are where the plugin's customer-facing authorization flow (the customer's
consent) may return, compared by exact string: ``https`` URLs, or ``http`` on the loopback interface
for development (RFC 8252).

    [oauth]
    redirect_uris = ["https://coupons.example.com/fulcrum/callback"]
    [[oauth.jwks.keys]]
    kty = "EC"
    crv = "P-256"
    kid = "2026-11"
    x = "..."
    y = "..."
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec

__all__ = ["Jwks", "OAuthClient", "oauth_problems"]

# Members only a private (or symmetric) key has: a manifest must never carry them.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_PUBLIC_MEMBERS = {"EC": ("crv", "x", "y"), "RSA": ("n", "e"), "OKP": ("crv", "x")}
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class Jwks(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A JWK Set (RFC 7517): the public keys the plugin's backend signs client assertions with."""

    keys: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        """The set as JSON-ready builtins (what the authorization server stores)."""
        return {"keys": [dict(key) for key in self.keys]}


class OAuthClient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The plugin backend's OAuth client registration (see the module)."""

    redirect_uris: tuple[str, ...] = ()
    jwks: Jwks | None = None


def _key_problems(i: int, key: dict[str, Any], kids: set[str]) -> list[tuple[str, str]]:
    at = f"oauth.jwks.keys.{i}"
    kty = key.get("kty")
    if kty not in _PUBLIC_MEMBERS:
        return [(f"{at}.kty", f"must be one of {', '.join(_PUBLIC_MEMBERS)} (got {kty!r})")]
    problems = []
    private = sorted(_PRIVATE_MEMBERS & set(key))
    if private:
        members = ", ".join(private)
        problems.append((at, f"holds private key members ({members}): publish only the public key"))
    missing = [m for m in _PUBLIC_MEMBERS[kty] if not isinstance(key.get(m), str) or not key[m]]
    if missing:
        problems.append((at, f"a {kty} key needs {', '.join(missing)}"))
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        problems.append((f"{at}.kid", "every key needs a kid (clients name the key they signed with)"))
    elif kid in kids:
        problems.append((f"{at}.kid", f"kid {kid!r} is used by another key"))
    else:
        kids.add(kid)
    if key.get("use", "sig") != "sig":
        problems.append((f"{at}.use", "keys here sign client assertions: use must be 'sig' or absent"))
    return problems


def _redirect_problem(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "must not have a fragment"
    if "*" in uri:
        return "must be exact: no wildcards"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return None
    return "must be an https URL (or http on 127.0.0.1, ::1 or localhost for development)"


def oauth_problems(oauth: OAuthClient | None, *, kind: str) -> list[tuple[str, str]]:
    """(key, problem) pairs for the ``[oauth]`` table of a plugin of ``kind``; empty when it is fine."""
    if oauth is None:
        return []
    problems: list[tuple[str, str]] = []
    if oauth.jwks is not None:
        if kind != "partner":
            internal = "only partner plugins sign with keys; internal plugins get a secret"
            problems.append(("oauth.jwks", internal))
        elif not oauth.jwks.keys:
            problems.append(("oauth.jwks.keys", "lists no key"))
        kids: set[str] = set()
        for i, key in enumerate(oauth.jwks.keys):
            problems += _key_problems(i, key, kids)
    seen: set[str] = set()
    for i, uri in enumerate(oauth.redirect_uris):
        problem = _redirect_problem(uri)
        if problem is None and uri in seen:
            problem = "is listed twice"
        seen.add(uri)
        if problem is not None:
            problems.append((f"oauth.redirect_uris.{i}", f"{uri!r} {problem}"))
    return problems
