"""The ``oauth_clients`` table: every OAuth client the authorization server knows.

The mobile app (public), staff tools (confidential, secret) and one confidential client per approved
plugin (``private_key_jwt`` for partners, a secret for internal plugins), with exactly its scopes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["CLIENT_AUTH_METHODS", "CLIENT_KINDS", "OAuthClientRow"]

CLIENT_KINDS = ("app", "staff", "plugin")
"""``app``: acts for customers; ``staff``: acts for staff members; ``plugin``: a plugin backend."""

CLIENT_AUTH_METHODS = ("none", "client_secret_basic", "private_key_jwt")


class OAuthClientRow(CoreBase):
    """One registered client with its redirect URIs, grant types, allowed scopes and credentials."""

    __tablename__ = "oauth_clients"
    __table_args__ = (
        CheckConstraint("kind IN ('app', 'staff', 'plugin')", name="kind"),
        CheckConstraint(
            "auth_method IN ('none', 'client_secret_basic', 'private_key_jwt')", name="auth_method"
        ),
        Index("ix_oauth_clients_plugin_id", "plugin_id"),
    )

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The plugin this client belongs to (kind ``plugin`` only).
    plugin_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_method: Mapped[str] = mapped_column(String(32))
    # SHA-256 of a generated high-entropy secret (``client_secret_basic`` only).
    secret_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The client's public JWK Set as JSON (``private_key_jwt`` only).
    jwks: Mapped[str | None] = mapped_column(Text, nullable=True)
    # One URI per line, compared by exact string.
    redirect_uris: Mapped[str] = mapped_column(Text, default="")
    # Space-separated, as in OAuth parameters.
    grant_types: Mapped[str] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
