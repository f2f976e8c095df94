{%- set c = cookiecutter -%}
"""The platform's conformance kit: every hook, every demo persona, within deadlines, only requested scopes.

``fulcrum_conformance`` comes with fulcrum-sdk (a pytest plugin). It runs the hook checks of
``fulcrum plugin check``; that command also builds the wheel and runs the registry's submission checks.
"""

from __future__ import annotations

from fulcrum_sdk.pytest_plugin import ConformanceRunner

import {{ c.__package }} as plugin
{%- if c.transactions %}
from {{ c.__package }}.orders import TRANSACTION_TYPE
from {{ c.__package }}.plans import PLANS
{%- endif %}


def test_the_plugin_passes_the_conformance_kit(fulcrum_conformance: ConformanceRunner) -> None:
    """No hook raises, returns invalid data, misses its deadline or touches a scope it did not request."""
{%- if c.transactions %}
    sample = {"plan_id": "starter", "amount_fen": PLANS["starter"].price_fen}
    results = fulcrum_conformance(plugin, transactions={TRANSACTION_TYPE: sample})
{%- else %}
    results = fulcrum_conformance(plugin)
{%- endif %}
    passed = {r.id for r in results if r.status == "passed"}
    assert {"hooks.match_manifest", "scopes.only_requested"} <= passed
