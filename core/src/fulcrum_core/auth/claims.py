"""The claims of a Fulcrum access token (RFC 9068 JWT profile) and the names they travel under."""

from __future__ import annotations

from typing import Final

import msgspec

from fulcrum_core.auth.principal import PrincipalKind

__all__ = ["ACCESS_TOKEN_TYPES", "KIND_CLAIM", "PUBLISHER_CLAIM", "TOKEN_TYPE", "AccessTokenClaims"]

TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
"""The ``typ`` header we write (RFC 9068 §2.1)."""

ACCESS_TOKEN_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
"""``typ`` values a resource server accepts (RFC 9068 §4): any other JWT is not an access token."""

KIND_CLAIM: Final = "fulcrum_kind"
"""Our private claim naming the principal kind (customer, staff or client)."""

PUBLISHER_CLAIM: Final = "fulcrum_publisher"
"""Our private claim naming the registry publisher a ``registry:publish`` staff token acts for."""


class AccessTokenClaims(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    rename={"kind": KIND_CLAIM, "publisher": PUBLISHER_CLAIM},
):
    """The payload of an access token; ``request.auth`` on every authenticated request."""

    iss: str
    sub: str
    aud: str | list[str]
    exp: int
    iat: int
    jti: str
    client_id: str
    # Space-separated scope names (RFC 6749 §3.3), sorted.
    scope: str
    kind: PrincipalKind
    nbf: int | None = None
    # The registry publisher this staff token publishes for (``registry:publish`` acts for it only).
    publisher: str | None = None

    @property
    def scopes(self) -> frozenset[str]:
        """The granted scopes as a set."""
        return frozenset(self.scope.split())
