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

import base64
import binascii
import hashlib
import json
import re
from typing import Any
from urllib.parse import urlsplit

import msgspec

__all__ = ["Jwks", "OAuthClient", "key_fingerprint", "oauth_problems"]

# Per key type: the members a public key has (RFC 7638 order: what its thumbprint covers).
_PUBLIC_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
_ALLOWED_MEMBERS = frozenset({"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use", "key_ops"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# Per key type and curve: the algorithms a key may name in ``alg``. RFC 9864 names Ed25519's algorithm
# ``Ed25519``; ``EdDSA`` is its older name, which keys published before it still carry.
_ALGS: dict[str, dict[str, frozenset[str]]] = {
    "EC": {"P-256": frozenset({"ES256"}), "P-384": frozenset({"ES384"}), "P-521": frozenset({"ES512"})},
    "OKP": {"Ed25519": frozenset({"Ed25519", "EdDSA"})},
}
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_MIN_RSA_BITS = 2048
# Short Weierstrass curves y^2 = x^3 - 3x + b (mod p): (p, b, coordinate bytes).
_CURVES = {
    "P-256": (
        0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        32,
    ),
    "P-384": (
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        48,
    ),
    "P-521": (
        2**521 - 1,
        0x0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
        66,
    ),
}
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_URI_CHARS = re.compile(r"^[\x21-\x7e]+\Z")  # visible ASCII: no spaces, controls or look-alike letters


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


def _b64(value: object) -> bytes | None:
    """base64url without padding (RFC 7515) decoded, or ``None`` when it is not that."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def key_fingerprint(key: dict[str, Any]) -> str:
    """The key's ``kid`` and RFC 7638 thumbprint (its first 16 characters): what a reviewer compares,
    so new key material under an old ``kid`` shows as a different key."""
    members = _PUBLIC_MEMBERS.get(str(key.get("kty")), ())
    canonical = json.dumps({m: key.get(m) for m in members}, separators=(",", ":"), sort_keys=True)
    digest = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return f"{key.get('kid')} ({digest[:16]})"


def _material_problem(kty: str, key: dict[str, Any]) -> str | None:
    """Why the key's public material is not a usable signing key, or ``None``."""
    if kty == "RSA":
        n, e = _b64(key.get("n")), _b64(key.get("e"))
        if n is None or e is None:
            return "n and e must be base64url"
        bits, exponent = int.from_bytes(n, "big").bit_length(), int.from_bytes(e, "big")
        if bits < _MIN_RSA_BITS:
            return f"an RSA key of {bits} bits is too weak: use at least {_MIN_RSA_BITS}"
        if exponent < 3 or exponent % 2 == 0:
            return f"e = {exponent} is not a usable RSA exponent"
        return None
    crv = key.get("crv")
    if kty == "OKP":
        x = _b64(key.get("x"))
        if crv != "Ed25519":
            return f"crv {crv!r}: only Ed25519 signing keys are accepted"
        return None if x is not None and len(x) == 32 else "x must be a 32-byte base64url value"
    if crv not in _CURVES:
        return f"crv {crv!r}: use one of {', '.join(_CURVES)}"
    p, b, size = _CURVES[str(crv)]
    x, y = _b64(key.get("x")), _b64(key.get("y"))
    if x is None or y is None or len(x) != size or len(y) != size:
        return f"x and y must be {size}-byte base64url values for {crv}"
    xi, yi = int.from_bytes(x, "big"), int.from_bytes(y, "big")
    if xi >= p or yi >= p or (yi * yi - (xi * xi * xi - 3 * xi + b)) % p != 0:
        return f"the point is not on {crv}"
    return None


def _key_problems(i: int, key: dict[str, Any], kids: set[str]) -> list[tuple[str, str]]:
    at = f"oauth.jwks.keys.{i}"
    kty = key.get("kty")
    if not isinstance(kty, str) or kty not in _PUBLIC_MEMBERS:
        return [(f"{at}.kty", f"must be one of {', '.join(_PUBLIC_MEMBERS)} (got {kty!r})")]
    private = sorted(_PRIVATE_MEMBERS & set(key))
    if private:
        members = ", ".join(private)
        return [(at, f"holds private key members ({members}): publish only the public key")]
    problems = []
    unknown = sorted(set(key) - _ALLOWED_MEMBERS)
    if unknown:
        allowed = ", ".join(sorted(_ALLOWED_MEMBERS))
        problems.append((at, f"unknown members {', '.join(unknown)}: list only {allowed}"))
    missing = [m for m in _PUBLIC_MEMBERS[kty] if m not in key]
    if missing:
        problems.append((at, f"a {kty} key needs {', '.join(missing)}"))
    elif (material := _material_problem(kty, key)) is not None:
        problems.append((at, material))
    kid = key.get("kid")
    if not isinstance(kid, str) or not kid:
        problems.append((f"{at}.kid", "every key needs a kid (clients name the key they signed with)"))
    elif kid in kids:
        problems.append((f"{at}.kid", f"kid {kid!r} is used by another key"))
    else:
        kids.add(kid)
    if key.get("use", "sig") != "sig":
        problems.append((f"{at}.use", "keys here sign client assertions: use must be 'sig' or absent"))
    alg = key.get("alg")
    expected = _RSA_ALGS if kty == "RSA" else _ALGS[kty].get(str(key.get("crv")), frozenset())
    if alg is not None and expected and alg not in expected:  # an unknown curve is named above
        use = " or ".join(sorted(expected))
        problems.append((f"{at}.alg", f"{alg!r} does not sign with this key; use {use}"))
    return problems


def _redirect_problem(uri: str) -> str | None:
    if not _URI_CHARS.match(uri):
        return "must be visible ASCII only: no spaces, control characters or look-alike letters"
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "must not have a fragment"
    if "*" in uri:
        return "must be exact: no wildcards"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return "must not carry user information (user@host)"
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        return "has a port out of range"
    if parts.scheme == "https" and parts.hostname and uri.startswith("https://"):
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK and uri.startswith("http://"):
        return None
    return "must be an https URL (or http on 127.0.0.1, ::1 or localhost for development), in lowercase"


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
