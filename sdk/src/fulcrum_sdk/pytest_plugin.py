"""A pytest plugin giving plugin projects the conformance kit as the ``fulcrum_conformance`` fixture.

Installed with the SDK (the ``pytest11`` entry point), so a plugin project's tests need only::

    import my_plugin

    def test_conformance(fulcrum_conformance: ConformanceRunner) -> None:
        fulcrum_conformance(my_plugin)

The fixture runs :func:`fulcrum_sdk.conformance.run_conformance` and fails the test with every failed
check, its details and its fix. The wheel checks of ``fulcrum plugin check`` are not run here.
Importing this module imports pytest; nothing else in the SDK does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import pytest

from fulcrum_sdk.conformance import ConformanceResult, format_results, run_conformance
from fulcrum_sdk.manifest import Manifest

__all__ = ["ConformanceRunner", "fulcrum_conformance"]


class ConformanceRunner(Protocol):
    """What the ``fulcrum_conformance`` fixture is: call it with the plugin module."""

    def __call__(
        self,
        plugin: object,
        *,
        manifest: Manifest | None = None,
        deadlines: Mapping[str, int] | None = None,
        transactions: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> tuple[ConformanceResult, ...]:
        """Run the kit's hook checks; fail the test when any check fails, else return the results."""
        ...


def _run(
    plugin: object,
    *,
    manifest: Manifest | None = None,
    deadlines: Mapping[str, int] | None = None,
    transactions: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[ConformanceResult, ...]:
    results = run_conformance(plugin, manifest=manifest, deadlines=deadlines, transactions=transactions)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        pytest.fail("the plugin fails the conformance kit:\n" + format_results(failed), pytrace=False)
    return results


@pytest.fixture
def fulcrum_conformance() -> ConformanceRunner:
    """Run the Fulcrum conformance kit's hook checks on a plugin; the test fails on any failed check."""
    return _run
