"""The development host's throwaway state: a migrated SQLite database and the demo customer's consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fulcrum_sdk.manifest import Manifest
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES

from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.settings import Settings

__all__ = ["prepare_state"]


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
