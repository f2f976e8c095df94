"""CSRF protection for the consent form: a signed double-submit token, checked before any decision.

Opening the consent page gives the user agent a random browser secret in an ``HttpOnly``,
``SameSite=Lax`` cookie (``__Host-`` prefixed and ``Secure`` when the issuer is https) and puts in
the form ``HMAC-SHA256(secret, authorization request)``. The decision is accepted only when the
form's token matches the cookie's secret *and* the very authorization request being answered, so a
third-party page, which can neither read the cookie nor set a ``__Host-`` one, cannot forge a
decision, and a token taken from one request cannot answer another. A customer signed in through
``/oauth/login`` is bound into the token too: the form decides for the customer its page named, not
for another the browser signed in as since. It needs no server-side state and no shared key, so it
works across worker processes.

litestar's own ``CSRFConfig`` is application-wide: it would guard every bearer-token API ``POST``
unless each were excluded, so the consent form carries its own token instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Final

import msgspec

__all__ = ["FIELD", "cookie_name", "form_token", "new_secret", "usable_secret", "verify"]

FIELD: Final = "csrf_token"
"""The consent form's hidden field carrying the token."""

_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
_CONTEXT: Final = b"fulcrum consent form v1\x00"


def cookie_name(issuer: str) -> str:
    """The cookie holding the browser secret: ``__Host-`` (unsettable by sibling hosts) over https."""
    return "__Host-fulcrum-consent" if issuer.lower().startswith("https://") else "fulcrum-consent"


def new_secret() -> str:
    """A fresh browser secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def usable_secret(value: str | None) -> str | None:
    """``value`` when it has the shape of a secret this module issued, else ``None`` (issue a new one)."""
    return value if value is not None and _SECRET.fullmatch(value) else None


def form_token(secret: str, params: Mapping[str, str], *, customer: str | None = None) -> str:
    """The token for the form answering the authorization request ``params`` in the browser ``secret``;
    with ``customer`` (the signed-in customer the page names), for that customer's decision alone."""
    message = _CONTEXT + msgspec.json.encode(sorted(params.items()))
    if customer is not None:
        message += b"\x00customer\x00" + customer.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(
    secret: str | None, token: str | None, params: Mapping[str, str], *, customer: str | None = None
) -> bool:
    """Whether ``token`` was issued for ``params`` (and ``customer``) under ``secret``; a missing part
    never verifies."""
    secret = usable_secret(secret)
    if secret is None or not token:
        return False
    return hmac.compare_digest(form_token(secret, params, customer=customer).encode(), token.encode())
