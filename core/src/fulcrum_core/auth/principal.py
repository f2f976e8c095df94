"""Who is calling: the verified identity a handler reads from ``request.user``."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Principal", "PrincipalKind"]

PrincipalKind = Literal["customer", "staff", "client"]
"""``customer``: a bank customer through the app; ``staff``: a platform or branch tool user;
``client``: a plugin or partner backend acting for itself (client credentials)."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The caller behind a verified access token; built only by ``TokenService.verify``."""

    # The subject: a customer number, a staff login, or (kind ``client``) the client id itself.
    sub: str
    # The OAuth client that obtained the token (the mobile app, a staff tool, a plugin's client).
    client_id: str
    scopes: frozenset[str]
    kind: PrincipalKind
    # The token's ``jti``: what audit lines and (later) revocation refer to.
    token_id: str
    # The token's ``exp`` in Unix seconds.
    expires_at: int

    def has_scopes(self, *required: str) -> bool:
        """True when every scope in ``required`` was granted to this token."""
        return self.scopes.issuperset(required)

    def missing_scopes(self, required: frozenset[str] | set[str] | list[str] | tuple[str, ...]) -> list[str]:
        """The scopes of ``required`` this token lacks, sorted (empty when all are granted)."""
        return sorted(set(required) - self.scopes)
