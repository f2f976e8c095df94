"""The SDK's public surface: ``__all__`` is exactly what plugin authors may rely on."""

from __future__ import annotations

import importlib

import fulcrum_sdk
import pytest

PUBLIC_MODULES = [
    "conformance",
    "context",
    "data",
    "display",
    "errors",
    "hookspecs",
    "idempotency",
    "localtime",
    "manifest",
    "matching",
    "models",
    "money",
    "oauth_client",
    "pytest_plugin",
    "scopes",
    "storage",
    "testing",
]


def test_public_modules_list_is_complete() -> None:
    """Every module of the SDK without a leading underscore is in ``PUBLIC_MODULES`` (and so tested)."""
    import pkgutil

    found = sorted(m.name for m in pkgutil.iter_modules(fulcrum_sdk.__path__) if not m.name.startswith("_"))
    assert found == sorted(PUBLIC_MODULES)


def test_top_level_all_is_exactly_the_public_api() -> None:
    """``fulcrum_sdk.__all__`` lists exactly these names; adding or removing one is a deliberate act."""
    assert sorted(fulcrum_sdk.__all__) == sorted(
        [
            "Action",
            "AudienceContext",
            "Customer",
            "FeedItem",
            "FulcrumError",
            "LimitExceeded",
            "LocalizedText",
            "ManifestError",
            "Page",
            "PageLine",
            "PageSection",
            "PluginContext",
            "QuotaExceeded",
            "ScopeDenied",
            "ScopedData",
            "SearchHit",
            "SlotOffer",
            "StorageError",
            "StorageOutcomeUnknown",
            "StorageUnavailable",
            "Targeting",
            "TransactionRefused",
            "TransactionRequest",
            "TransactionResult",
            "TransactionType",
            "__version__",
            "hookimpl",
            "nonblocking",
        ]
    )
    assert len(set(fulcrum_sdk.__all__)) == len(fulcrum_sdk.__all__)


def test_top_level_names_exist_and_come_from_the_sdk() -> None:
    """Every exported name resolves, and every class is defined inside fulcrum_sdk."""
    for name in fulcrum_sdk.__all__:
        value = getattr(fulcrum_sdk, name)
        if isinstance(value, type):
            assert value.__module__.startswith("fulcrum_sdk."), name


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_each_module_declares_all_and_it_resolves(module: str) -> None:
    """Every public SDK module has an ``__all__`` without duplicates whose names all exist."""
    mod = importlib.import_module(f"fulcrum_sdk.{module}")
    assert mod.__all__, module
    assert len(set(mod.__all__)) == len(mod.__all__)
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert missing == []


def test_hook_names_match_the_specs() -> None:
    """HOOK_NAMES lists exactly the functions marked as hook specs."""
    from fulcrum_sdk import hookspecs

    marked = {name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "fulcrum_spec")}
    assert marked == set(hookspecs.HOOK_NAMES)
    assert set(hookspecs.REQUEST_HOOKS) < set(hookspecs.HOOK_NAMES)
