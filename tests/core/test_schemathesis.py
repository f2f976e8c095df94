"""Property-based API check: every operation of the OpenAPI schema, fed generated input with real tokens.

Schemathesis generates a few requests per operation (Hypothesis, fixed seed) from the app's own
schema and sends them in-process. No response may be a server error, and every documented response
must match its schema. Customer routes get a customer token, operations routes a staff token holding
every staff scope, so the generated input reaches the handlers instead of stopping at 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.settings import RateLimit, Settings
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.scopes import APP_SCOPES, SCOPES
from fulcrum_sdk.testing import PERSONAS
from hypothesis import HealthCheck, given, settings
from litestar import Litestar

STAFF_SCOPES = sorted(n for n, s in SCOPES.items() if s.kind == "staff")
CUSTOMER = "synthetic-young-professional"


@pytest.fixture
def api_app(settings: Settings, migrated_sqlite: Path, tmp_path: Path) -> Iterator[Litestar]:
    """The real app with the demo personas, no plugins and no rate limit (it sends many requests)."""
    import shutil

    conf = msgspec.structs.replace(settings, rate_limit=RateLimit(enabled=False))
    shutil.copyfile(migrated_sqlite, tmp_path / "fulcrum.db")
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    runtime = build_runtime(conf, provider=provider, load_entry_points=False)
    yield create_app(conf, runtime=runtime)
    runtime.dispatcher.close()
    runtime.db.dispose()


def _token(app: Litestar, path: str) -> str:
    runtime = app.state.runtime
    if path.startswith("/v1/") and not path.startswith("/v1/plugins"):
        token: str = runtime.tokens.issue(CUSTOMER, sorted(APP_SCOPES), kind="customer")
    else:
        token = runtime.tokens.issue("ops", STAFF_SCOPES, kind="staff")
    return token


def test_no_server_errors_and_responses_match_the_schema(api_app: Litestar) -> None:
    """Generated requests never cause a 5xx, and every documented response matches its schema."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", api_app)
    checks = [schemathesis.checks.not_a_server_error, schemathesis.checks.response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10

    for operation in operations:
        headers = {"Authorization": f"Bearer {_token(api_app, operation.path)}"}
        _exercise(operation, headers, checks)


def _exercise(operation: Any, headers: dict[str, str], checks: list[Any]) -> None:
    """Send a few generated requests to ``operation`` (fixed seed) and run ``checks`` on each response."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=4, derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    exercise()
