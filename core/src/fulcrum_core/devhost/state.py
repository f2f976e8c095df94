"""The development host's throwaway state: a migrated SQLite database, the demo customer's consent and
the plugin's OAuth client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES

from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.oauth.plugin_clients import PluginClientChange, PluginClientPolicy, sync_plugin_clients
from fulcrum_core.settings import Settings

__all__ = ["prepare_client", "prepare_state"]


def prepare_state(settings: Settings, manifest: Manifest, customer: str) -> frozenset[str]:
    """Migrate the database and, for a partner plugin, record ``customer``'s consent to its data scopes.

    Returns the scopes consented to (empty for a bank plugin, which needs no consent).
    """
    db = Database(settings.resolved_database_url())
    try:
        db.upgrade()
        scopes = manifest.scopes.all & CUSTOMER_DATA_SCOPES
        if manifest.kind != "partner" or not scopes:
            return frozenset()
        now = datetime.now(UTC)
        ConsentStore(db).grant(
            customer,
            manifest.id,
            scopes,
            purpose="本地开发 / local development",
            expires_at=now + timedelta(days=1),
        )
        return scopes
    finally:
        db.dispose()


def prepare_client(settings: Settings, manifest: Manifest) -> PluginClientChange:
    """The plugin's OAuth client ``plugin-<id>``, as the real host keeps it for an approved release: the
    requested scopes (the dev host grants them all), and the ``[oauth]`` keys and redirect URIs of the
    working copy's manifest. A partner without keys gets a client that cannot authenticate; an internal
    plugin's generated secret is in the returned change."""
    oauth = manifest.oauth
    policy = PluginClientPolicy(
        kind=manifest.kind,
        scopes=manifest.scopes.all,
        active=True,
        jwks=oauth.jwks.as_dict() if oauth is not None and oauth.jwks is not None else None,
        redirect_uris=oauth.redirect_uris if oauth is not None else (),
        name=(manifest.name.zh_CN, manifest.name.en),
    )
    db = Database(settings.resolved_database_url())
    try:
        (change,) = sync_plugin_clients(db, {manifest.id: policy}, isolate=True)
        return change
    finally:
        db.dispose()
