"""Fixtures for the merchant promotions tests: a fixed clock, shared storage and a harness factory."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import fulcrum_merchant_promo
import pytest
from fulcrum_sdk.data import CustomerRecord
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness, load_manifest_beside

MakeHarness = Callable[..., PluginHarness]


@pytest.fixture
def now() -> datetime:
    """The clock every harness runs at: a late-November afternoon in China."""
    return datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


@pytest.fixture
def storage() -> MemoryStorage:
    """Plugin storage shared by every harness of one test, as the platform database would be."""
    return MemoryStorage()


@pytest.fixture
def all_scopes() -> frozenset[str]:
    """Every scope the manifest asks for, required and optional."""
    return load_manifest_beside(fulcrum_merchant_promo).scopes.all


@pytest.fixture
def make_harness(storage: MemoryStorage, now: datetime, all_scopes: frozenset[str]) -> MakeHarness:
    """Build a harness for a persona: every requested scope, the fixed clock, shared storage by default."""

    def make(
        persona: str | CustomerRecord = "young_professional",
        *,
        scopes: Iterable[str] | None = None,
        **kw: Any,
    ) -> PluginHarness:
        kw.setdefault("now", now)
        kw.setdefault("storage", storage)
        return PluginHarness(
            fulcrum_merchant_promo, persona=persona, scopes=all_scopes if scopes is None else scopes, **kw
        )

    return make
