"""The demo: migrate the database and seed what the seeded customers need to see the plugins work."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_core.oauth.authorize import CONSENT_TTL
from fulcrum_core.registry_host.demo import seed_registry
from fulcrum_core.registry_host.host import open_registry
from fulcrum_core.settings import Settings

__all__ = ["prepare_demo", "seed_demo_consents"]

MERCHANT_PROMO = "merchant-promo"
# Partner plugins need the customer's consent; in the demo, customers of 0755 and 021 gave it (except
# the last of each branch, so the difference is visible), customers of 028 did not.
_CONSENTING_BRANCHES = ("0755", "021")


def seed_demo_consents(consents: ConsentStore, provider: DemoDataProvider, now: datetime) -> int:
    """Give merchant-promo its demo consents; returns how many were recorded.

    A customer whose consent is live, awaiting, or was revoked is left alone: a run of the demo after
    the customer revoked it (``DELETE /v1/consents/{id}``) must not give it back. Only a customer with
    none, or with expired ones alone, gets a new one."""
    seeded = 0
    for branch in _CONSENTING_BRANCHES:
        members = [c for c in provider.customers() if c.profile.branch == branch]
        for record in members[:-1]:
            mine = [c for c in consents.list(record.id, now=now) if c.plugin_id == MERCHANT_PROMO]
            if any(c.status != "expired" for c in mine):
                continue
            consents.grant(
                record.id,
                MERCHANT_PROMO,
                frozenset({"location:city", "profile:basic"}),
                purpose="本地商户优惠推荐 / local merchant offers",
                expires_at=now + CONSENT_TTL,  # as long as a consent given on the consent page
                now=now,
            )
            seeded += 1
    return seeded


def prepare_demo(settings: Settings) -> str:
    """Upgrade the database, seed demo consents and approve the demo plugins through the registry;
    safe to run again. Returns a short report."""
    db = Database(settings.resolved_database_url())
    try:
        db.upgrade()
        provider = DemoDataProvider.from_seed()
        seeded = seed_demo_consents(ConsentStore(db), provider, datetime.now(UTC))
        registry = seed_registry(open_registry(settings, db), Path(settings.state_dir) / "demo-wheels")
        return (
            f"Database ready at {db.url.render_as_string(hide_password=True)}\n"
            f"{len(provider.customers())} demo customers; {seeded} new merchant-promo consents\n"
            "Registry: " + "; ".join(registry)
        )
    finally:
        db.dispose()
