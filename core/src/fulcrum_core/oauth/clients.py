"""OAuth clients: authlib's client model over the ``oauth_clients`` table, and the store that keeps it.

Secrets are generated (256 bits) and stored as SHA-256 digests, compared in constant time. Redirect
URIs are compared by exact string: no prefix, no trailing-slash or case folding.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, Literal, cast

import msgspec
from fulcrum_sdk.display import display_text_problem
from fulcrum_sdk.scopes import is_known
from sqlalchemy import Table, select

from fulcrum_core.data._upsert import insert_for
from fulcrum_core.data.db import Database
from fulcrum_core.data.models.oauth_client import OAuthClientRow
from fulcrum_core.data.reconnect import idempotent_read
from fulcrum_core.data.types import utcnow
from fulcrum_core.errors import BadRequest, NotFound

__all__ = [
    "PLUGIN_CLIENT_PREFIX", "AuthMethod", "ClientKind", "ClientStore", "OAuthClient", "check_redirect_uris",
    "hash_secret",
]

PLUGIN_CLIENT_PREFIX = "plugin-"
"""Every plugin's client id is this and the plugin id; no other client's id starts so."""

ClientKind = Literal["app", "staff", "plugin"]
AuthMethod = Literal["none", "client_secret_basic", "private_key_jwt"]


def hash_secret(secret: str) -> str:
    """The stored digest of a client secret or a token (all are high-entropy random strings)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class OAuthClient(msgspec.Struct, frozen=True, kw_only=True):
    """A registered client as authlib sees it (the methods of ``authlib``'s ``ClientMixin``)."""

    client_id: str
    kind: ClientKind
    name_zh: str
    name_en: str | None
    plugin_id: str | None
    auth_method: AuthMethod
    secret_hash: str | None
    jwks: dict[str, Any] | None
    redirect_uris: tuple[str, ...]
    grant_types: frozenset[str]
    scopes: frozenset[str]
    active: bool

    @property
    def is_partner(self) -> bool:
        """True for a partner plugin's client (authenticates with ``private_key_jwt``)."""
        return self.kind == "plugin" and self.auth_method == "private_key_jwt"

    # -- authlib ClientMixin ------------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Never a default: the request must name one of the registered URIs exactly.
        return None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        """All the client's scopes when none are asked; ``None`` (→ invalid_scope) when asking beyond."""
        if not scope:
            return " ".join(sorted(self.scopes))
        wanted = set(scope.split())
        if not wanted <= self.scopes:
            return None
        return " ".join(sorted(wanted))

    def shown_names(self) -> tuple[str, str]:
        """The client's name as a customer is shown it (zh-CN, en): the consent page without a manifest,
        the consent's purpose. A plugin's client took its name from its newest approved release, which may
        have been approved before display text was checked; a name display text refuses (a bidi override
        would make it read otherwise) is not shown, the plugin's id stands in as for a client without one."""
        zh, en = self.name_zh, self.name_en or self.client_id
        if display_text_problem(zh) is not None:
            zh = f"插件 {self.plugin_id}" if self.plugin_id else self.client_id
        if display_text_problem(en) is not None:
            en = self.client_id
        return zh, en

    def beyond_grant(self, scope: str) -> str:
        """What an ``invalid_scope`` for asking ``scope`` beyond the client's grant says: the scopes not
        granted and the ones the client holds."""
        missing = ", ".join(sorted(set(scope.split()) - self.scopes))
        held = ", ".join(sorted(self.scopes)) or "none"
        return f"client {self.client_id!r} was not granted {missing}; its scopes are: {held}"

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(self.secret_hash, hash_secret(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return self.active and method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return self.active and grant_type in self.grant_types


def _from_row(row: OAuthClientRow) -> OAuthClient:
    return OAuthClient(
        client_id=row.client_id,
        kind=row.kind,  # type: ignore[arg-type]
        name_zh=row.name_zh,
        name_en=row.name_en,
        plugin_id=row.plugin_id,
        auth_method=row.auth_method,  # type: ignore[arg-type]
        secret_hash=row.secret_hash,
        jwks=msgspec.json.decode(row.jwks) if row.jwks else None,
        redirect_uris=tuple(u for u in row.redirect_uris.splitlines() if u),
        grant_types=frozenset(row.grant_types.split()),
        scopes=frozenset(row.scopes.split()),
        active=row.active,
    )


def _check_scopes(scopes: Iterable[str]) -> str:
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if not is_known(s)]
    if unknown:
        raise BadRequest(f"unknown scope(s): {', '.join(unknown)}", field="scopes")
    return " ".join(wanted)


def check_redirect_uris(uris: Iterable[str]) -> str:
    """The URIs as stored (one per line, duplicates dropped); 400 naming one that is not absolute or
    has a fragment or spaces."""
    checked = list(dict.fromkeys(uris))
    for uri in checked:
        if not uri or any(c.isspace() for c in uri) or "#" in uri or ":" not in uri:
            raise BadRequest(
                f"redirect URI {uri!r} must be absolute, without fragment or spaces", field="redirect_uris"
            )
    return "\n".join(checked)


class ClientStore:
    """Reads and writes the ``oauth_clients`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @idempotent_read
    def get(self, client_id: str) -> OAuthClient | None:
        """The client ``client_id`` (active or not), or ``None``."""
        if not client_id or len(client_id) > 64:
            return None
        with self._db.read_session() as session:
            row = session.get(OAuthClientRow, client_id)
            return _from_row(row) if row is not None else None

    @idempotent_read
    def for_plugin(self, plugin_id: str) -> OAuthClient | None:
        """The client of plugin ``plugin_id``, if one was created."""
        with self._db.read_session() as session:
            row = session.scalars(select(OAuthClientRow).where(OAuthClientRow.plugin_id == plugin_id)).first()
            return _from_row(row) if row is not None else None

    def register(
        self,
        client_id: str,
        *,
        kind: ClientKind,
        name_zh: str,
        name_en: str | None = None,
        auth_method: AuthMethod,
        grant_types: Iterable[str],
        scopes: Iterable[str],
        redirect_uris: Iterable[str] = (),
        plugin_id: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> str | None:
        """Create (or with ``replace`` overwrite) a client; returns its new secret for secret clients.

        The secret is shown once: only its digest is stored.
        """
        if not client_id or len(client_id) > 64:
            raise BadRequest("client_id must be 1–64 characters", field="client_id")
        # A token's client id tells the API which plugin acts (see the transaction route): the prefix
        # belongs to plugins' clients alone, each under its own plugin's id.
        if kind == "plugin":
            misnamed = client_id != PLUGIN_CLIENT_PREFIX + (plugin_id or "")
        else:
            misnamed = client_id.startswith(PLUGIN_CLIENT_PREFIX)
        if misnamed:
            raise BadRequest("a plugin's client, and only it, is named plugin-<plugin id>", field="client_id")
        if auth_method == "private_key_jwt" and jwks is None:
            raise BadRequest("a private_key_jwt client needs its public JWK Set", field="jwks")
        grants = sorted(set(grant_types))
        if not set(grants) <= {"authorization_code", "refresh_token", "client_credentials"}:
            raise BadRequest(f"unsupported grant types in {grants}", field="grant_types")
        if auth_method == "none" and "client_credentials" in grants:
            raise BadRequest("a public client cannot use client_credentials", field="grant_types")
        secret = secrets.token_urlsafe(32) if auth_method == "client_secret_basic" else None
        now = utcnow()
        row = OAuthClientRow(
            client_id=client_id,
            kind=kind,
            name_zh=name_zh,
            name_en=name_en,
            plugin_id=plugin_id,
            auth_method=auth_method,
            secret_hash=hash_secret(secret) if secret else None,
            jwks=msgspec.json.encode(dict(jwks)).decode() if jwks else None,
            redirect_uris=check_redirect_uris(redirect_uris),
            grant_types=" ".join(grants),
            scopes=_check_scopes(scopes),
            active=True,
            created_at=now,
            updated_at=now,
        )
        table = cast(Table, OAuthClientRow.__table__)
        values = {c.key: getattr(row, c.key) for c in OAuthClientRow.__mapper__.column_attrs}
        # Workers starting together each register the app's client on first use: one INSERT wins, the
        # others find the client there (a plain INSERT would fail them with a duplicate key).
        created = (
            insert_for(self._db.dialect, table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[table.c.client_id])
            .returning(table.c.client_id)
        )
        with self._db.session() as session:
            if session.execute(created).scalar_one_or_none() is None:
                if not replace:
                    return None
                existing = session.get(OAuthClientRow, client_id, with_for_update=True)
                row.created_at = existing.created_at if existing is not None else now
                session.merge(row)
        return secret

    def add_scopes(self, client_id: str, scopes: Iterable[str]) -> list[str]:
        """Add ``scopes`` to an existing client's allowed scopes; returns the ones that were missing."""
        with self._db.session() as session:
            row = session.get(OAuthClientRow, client_id)
            if row is None:
                raise NotFound(f"no client {client_id!r}", field="client_id")
            have = set(row.scopes.split())
            missing = sorted(set(scopes) - have)
            if missing:
                _check_scopes(missing)  # only what is added: a stored scope is left as it is
                row.scopes = " ".join(sorted(have | set(missing)))
                row.updated_at = utcnow()
        return missing

    def set_redirect_uris(self, client_id: str, uris: Iterable[str]) -> tuple[list[str], list[str]]:
        """Make ``uris`` the client's redirect URIs exactly; returns the ones added and the ones dropped."""
        stored = check_redirect_uris(uris)
        with self._db.session() as session:
            row = session.get(OAuthClientRow, client_id)
            if row is None:
                raise NotFound(f"no client {client_id!r}", field="client_id")
            have = [u for u in row.redirect_uris.splitlines() if u]
            wanted = [u for u in stored.splitlines() if u]
            if have != wanted:
                row.redirect_uris = stored
                row.updated_at = utcnow()
        return [u for u in wanted if u not in have], [u for u in have if u not in wanted]

    def rotate_secret(self, client_id: str) -> str:
        """A new secret for a secret-based client (the old one stops working at once)."""
        secret = secrets.token_urlsafe(32)
        with self._db.session() as session:
            row = session.get(OAuthClientRow, client_id)
            if row is None or row.auth_method != "client_secret_basic":
                raise NotFound(f"no secret-based client {client_id!r}", field="client_id")
            row.secret_hash = hash_secret(secret)
            row.updated_at = utcnow()
        return secret
