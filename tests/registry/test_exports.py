"""The registry's public surface: what ``fulcrum_registry`` exports is deliberate."""

from __future__ import annotations

import importlib
import pkgutil

import fulcrum_registry

EXPECTED = {
    "CHECKS",
    "REVIEW_CHECKLIST",
    "ActiveRelease",
    "AlreadyExists",
    "AuditEntry",
    "BrokenLink",
    "CatalogueQuery",
    "CheckContext",
    "CheckResult",
    "Conflict",
    "FourEyesViolation",
    "IllegalTransition",
    "InvalidInput",
    "LeftOut",
    "NewPublisher",
    "NotFound",
    "Page",
    "PermissionDenied",
    "PluginSummary",
    "PublisherRead",
    "PublisherSuspended",
    "RegistryError",
    "RegistryService",
    "RegistryUnavailable",
    "ReleaseDiff",
    "ReleaseQuery",
    "ReleaseRead",
    "ReleaseState",
    "Submission",
    "check_wheel",
    "project_name",
    "run_checks",
}


def test_package_exports_exactly_the_public_names() -> None:
    """``__all__`` lists the public API, sorted, and every name resolves."""
    assert set(fulcrum_registry.__all__) == EXPECTED
    assert fulcrum_registry.__all__ == sorted(fulcrum_registry.__all__, key=lambda n: (not n.isupper(), n))
    for name in EXPECTED:
        assert getattr(fulcrum_registry, name) is not None


def test_every_module_declares_all() -> None:
    """Each module of the package states its public names, and they exist."""
    for info in pkgutil.walk_packages(fulcrum_registry.__path__, "fulcrum_registry."):
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), info.name
        for name in module.__all__:
            assert hasattr(module, name), f"{info.name}.{name}"


def test_errors_form_one_tree() -> None:
    """Every registry error derives from RegistryError, as errors.py draws it."""
    from fulcrum_registry import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RegistryError)
