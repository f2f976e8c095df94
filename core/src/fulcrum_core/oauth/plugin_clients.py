"""One confidential OAuth client per approved plugin, kept in step with the registry's decisions.

The registry host calls :func:`sync_plugin_clients` after approvals, suspensions and retirements.
Partners authenticate with ``private_key_jwt`` (their public JWK Set); internal plugins (department,
branch) get a generated secret, returned once. A client's scopes are exactly the granted ones; an
inactive plugin's client is disabled and its refresh tokens revoked, so nothing it holds outlives
the suspension by more than an access token's lifetime (five minutes at most).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import msgspec
from fulcrum_sdk.scopes import PLUGIN_GRANTABLE_KINDS, SCOPES
from sqlalchemy import select, update

from fulcrum_core.data.db import Database
from fulcrum_core.data.models.oauth_client import OAuthClientRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.errors import BadRequest
from fulcrum_core.oauth.clients import PLUGIN_CLIENT_PREFIX, ClientStore, check_redirect_uris
from fulcrum_core.oauth.refresh import RefreshTokenStore

__all__ = ["PluginClientChange", "PluginClientPolicy", "plugin_client_id", "sync_plugin_clients"]

PluginKind = Literal["department", "branch", "partner"]


class PluginClientPolicy(NamedTuple):
    """What the registry decided for one plugin: its kind, granted scopes and whether it may run."""

    kind: PluginKind
    scopes: frozenset[str]
    active: bool
    # Partners only: the public JWK Set their backend signs client assertions with.
    jwks: Mapping[str, Any] | None = None
    # Where a partner's customer-facing authorization flow may return (exact strings).
    redirect_uris: tuple[str, ...] = ()
    # The approved manifest's name (zh-CN, en), which the consent page and the consent's purpose show;
    # None leaves the client's name as it is (插件 <id> when new).
    name: tuple[str, str | None] | None = None


class PluginClientChange(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`sync_plugin_clients` did to one plugin's client."""

    plugin_id: str
    client_id: str
    action: Literal["created", "updated", "disabled", "unchanged", "refused"]
    # A new client's secret (internal plugins only), shown once.
    secret: str | None = None
    # ``refused``: why the plugin's policy could not be applied (its client is disabled meanwhile).
    problem: str | None = None


def plugin_client_id(plugin_id: str) -> str:
    """The client id of a plugin's backend (no colon: it must survive HTTP Basic authentication)."""
    return PLUGIN_CLIENT_PREFIX + plugin_id


def _grant_types(policy: PluginClientPolicy) -> list[str]:
    grants = ["client_credentials"]
    if policy.redirect_uris:
        grants += ["authorization_code", "refresh_token"]
    return grants


def _check(plugin_id: str, policy: PluginClientPolicy) -> None:
    for scope in policy.scopes:
        known = SCOPES.get(scope)
        if known is None or known.kind not in PLUGIN_GRANTABLE_KINDS:
            raise BadRequest(f"{plugin_id}: scope {scope!r} cannot be granted to a plugin", field="scopes")
    if policy.kind not in ("department", "branch", "partner"):
        raise BadRequest(f"{plugin_id}: unknown plugin kind {policy.kind!r}", field="kind")
    check_redirect_uris(policy.redirect_uris)


def sync_plugin_clients(
    db: Database, policy: Mapping[str, PluginClientPolicy], *, complete: bool = False, isolate: bool = False
) -> list[PluginClientChange]:
    """Create, narrow, widen or disable each plugin's client to match ``policy`` (plugin id → policy).

    With ``complete=True`` the mapping is every approved plugin: clients of plugins missing from it
    are disabled too. Disabling or narrowing a client, or taking its redirect URIs (and with them the
refresh grant), revokes its refresh tokens. A partner without
    a JWK Set gets a disabled client until its keys are registered. A policy that cannot be applied
    (a scope no plugin may hold, a malformed redirect URI) raises ``BadRequest`` before anything is
    written; with ``isolate=True`` (the registry watcher) it is reported as ``refused`` instead, that
    plugin's client is disabled, and every other plugin is still brought in step.
    """
    if not isolate:
        for plugin_id, item in policy.items():
            _check(plugin_id, item)
    store = ClientStore(db)
    changes: list[PluginClientChange] = []
    if complete:
        changes += _disable_absent(db, set(policy))
    for plugin_id, item in sorted(policy.items()):
        try:
            _check(plugin_id, item)
        except BadRequest as exc:
            client_id = plugin_client_id(plugin_id)
            _set_active(db, client_id, active=False, revoke=True)
            refused = PluginClientChange(
                plugin_id=plugin_id, client_id=client_id, action="refused", problem=exc.detail
            )
            changes.append(refused)
            continue
        changes.append(_sync_one(db, store, plugin_id, item))
    return changes


def _sync_one(
    db: Database, store: ClientStore, plugin_id: str, item: PluginClientPolicy
) -> PluginClientChange:
    client_id = plugin_client_id(plugin_id)
    partner = item.kind == "partner"
    active = item.active and (not partner or bool(item.jwks))
    existing = store.get(client_id)
    if existing is None:
        # A partner approved before registering its keys gets an empty key set: it cannot authenticate.
        name_zh, name_en = item.name or (f"插件 {plugin_id}", f"Plugin {plugin_id}")
        secret = store.register(
            client_id,
            kind="plugin",
            name_zh=name_zh,
            name_en=name_en,
            plugin_id=plugin_id,
            auth_method="private_key_jwt" if partner else "client_secret_basic",
            jwks=(item.jwks or {"keys": []}) if partner else None,
            grant_types=_grant_types(item),
            scopes=item.scopes,
            redirect_uris=item.redirect_uris,
        )
        if not active:
            _set_active(db, client_id, active=False, revoke=False)
        return PluginClientChange(plugin_id=plugin_id, client_id=client_id, action="created", secret=secret)
    narrowed = not existing.scopes <= item.scopes
    # A release without redirect URIs runs no customer authorization: its refresh tokens end with the
    # grant, or a later release listing them again would bring them back.
    lost_refresh = "refresh_token" in existing.grant_types and "refresh_token" not in _grant_types(item)
    same = (
        existing.scopes == item.scopes and existing.active == active
        and tuple(existing.redirect_uris) == tuple(item.redirect_uris)
        and (not partner or existing.jwks == dict(item.jwks or {"keys": []}))
        and (item.name is None or (existing.name_zh, existing.name_en) == item.name)
    )
    with db.session() as session:
        row = session.get(OAuthClientRow, client_id)
        assert row is not None  # noqa: S101 - read just above, clients are never deleted
        row.scopes = " ".join(sorted(item.scopes))
        row.active = active
        row.grant_types = " ".join(sorted(_grant_types(item)))
        # Exactly the release's: a redirect URI or a key dropped from the manifest stops working.
        row.redirect_uris = check_redirect_uris(item.redirect_uris)
        if partner:
            row.jwks = msgspec.json.encode(dict(item.jwks or {"keys": []})).decode()
        if item.name is not None:
            row.name_zh, row.name_en = item.name
        row.updated_at = utcnow()
    if narrowed or lost_refresh or not active:
        _revoke_refresh_tokens(db, client_id)
    action: Literal["updated", "disabled", "unchanged"] = (
        "unchanged" if same else "disabled" if not active else "updated"
    )
    return PluginClientChange(plugin_id=plugin_id, client_id=client_id, action=action)


def _set_active(db: Database, client_id: str, *, active: bool, revoke: bool) -> None:
    with db.session() as session:
        session.execute(
            update(OAuthClientRow)
            .where(OAuthClientRow.client_id == client_id)
            .values(active=active, updated_at=utcnow())
        )
    if revoke:
        _revoke_refresh_tokens(db, client_id)


def _disable_absent(db: Database, present: set[str]) -> list[PluginClientChange]:
    with db.read_session() as session:
        rows = session.execute(
            select(OAuthClientRow.plugin_id, OAuthClientRow.client_id).where(
                OAuthClientRow.kind == "plugin", OAuthClientRow.active.is_(True)
            )
        ).all()
    changes = []
    for plugin_id, client_id in rows:
        if plugin_id is not None and plugin_id not in present:
            _set_active(db, client_id, active=False, revoke=True)
            changes.append(PluginClientChange(plugin_id=plugin_id, client_id=client_id, action="disabled"))
    return changes


def _revoke_refresh_tokens(db: Database, client_id: str) -> None:
    RefreshTokenStore(db).revoke_client(client_id)
