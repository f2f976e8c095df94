"""The OpenAPI document of ``POST /v1/transactions`` describes every error it actually answers.

Each error of the route (409, 422, 502, 503) is one ``TransactionProblem`` schema whose ``transaction``
is optional: refusals before journaling carry none, the plugin's own refusals carry the journal entry.
Real responses of both kinds are validated against the served schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema_rs  # schemathesis' own validator
import msgspec
import pytest
from fulcrum_sdk.errors import TransactionRefused
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.testing import PERSONAS

C3 = PERSONAS["young_professional"].id
PROBLEM = "application/problem+json"


class OrderParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of ``fund.order``."""

    fund: str
    amount_fen: int


def _fund_plugin(kit: Any) -> Any:
    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(
            TransactionType(
                key="fund.order",
                name=LocalizedText(zh_CN="基金申购", en="Fund order"),
                params=OrderParams,
                risk_level="R1",
                amount_field="amount_fen",
            )
        )

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        if request.params.fund == "GONE":
            raise TransactionRefused(
                "fund.closed", LocalizedText(zh_CN="基金已暂停申购", en="Fund closed"), field="fund"
            )
        return TransactionResult(status="succeeded", reference="ORD-1")

    return kit.plugin(
        "funds",
        transaction_types=["fund.order"],
        register_transaction_types=register_transaction_types,
        execute_transaction=execute_transaction,
    )


@pytest.fixture
def app(make_app: Callable[..., Any], kit: Any) -> Any:
    """The real app with one fund-ordering plugin."""
    return make_app(_fund_plugin(kit))


def _validate(spec: dict[str, Any], status: int, body: Any) -> None:
    """Validate ``body`` against the documented problem schema of ``status`` (refs resolved in ``spec``)."""
    content = spec["paths"]["/v1/transactions"]["post"]["responses"][str(status)]["content"]
    schema = {**content[PROBLEM]["schema"], "components": spec["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(body)


def _post(app: Any, payload: Any, key: str) -> Any:
    headers = {
        "Authorization": f"Bearer {app.token(C3)}",
        "Idempotency-Key": key,
        "Content-Type": "application/json",
    }
    return app.client.post("/v1/transactions", content=msgspec.json.encode(payload), headers=headers)


def test_every_error_status_is_one_problem_schema_with_an_optional_transaction(spec: dict[str, Any]) -> None:
    """400/409/422/502/503 all point at TransactionProblem, which does not require ``transaction``."""
    responses = spec["paths"]["/v1/transactions"]["post"]["responses"]
    for status in ("400", "409", "422", "502", "503"):
        assert responses[status]["content"][PROBLEM]["schema"] == {
            "$ref": "#/components/schemas/TransactionProblem"
        }, status
    problem = spec["components"]["schemas"]["TransactionProblem"]
    assert "transaction" in problem["properties"]
    assert "transaction" not in problem["required"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["required"])


def test_the_idempotency_key_header_says_its_scope(spec: dict[str, Any]) -> None:
    """A client reading the schema learns that its keys are scoped to the customer and to itself."""
    post = spec["paths"]["/v1/transactions"]["post"]
    [header] = [p for p in post["parameters"] if p["in"] == "header" and p["name"] == "Idempotency-Key"]
    assert "Scoped to the customer and the OAuth client" in header["description"]
    assert "per customer, OAuth client and Idempotency-Key" in post["summary"]


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"type": "no.such.type", "params": {}}, "transaction.unknown_type", "type"),
        (
            {"type": "fund.order", "params": {"fund": "SAFE"}},
            "transaction.invalid_params",
            "params.amount_fen",
        ),
        (
            {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": -1}},
            "limits.negative_amount",
            "params.amount_fen",
        ),
    ],
)
def test_refusals_before_journaling_match_the_schema(
    app: Any, spec: dict[str, Any], payload: Any, code: str, field: str
) -> None:
    """Unknown type, params failing the schema, limits: 422 without ``transaction``, as documented."""
    r = _post(app, payload, key=f"k-{code}")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert (body["code"], body["field"]) == (code, field)
    assert "transaction" not in body
    _validate(spec, 422, body)


def test_a_reused_key_names_its_transaction_and_matches_the_schema(app: Any, spec: dict[str, Any]) -> None:
    """idempotency.mismatch: 422 with ``transaction_id`` of the first request, valid against the schema."""
    first = _post(app, {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100}}, key="k-reuse")
    assert first.status_code == 201, first.text
    r = _post(app, {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 200}}, key="k-reuse")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "idempotency.mismatch"
    assert body["transaction_id"] == first.json()["id"]
    _validate(spec, 422, body)


def test_the_plugins_refusal_carries_the_journal_entry_and_matches_the_schema(
    app: Any, spec: dict[str, Any]
) -> None:
    """A refusal by the plugin at execution is journaled: the 422 carries ``transaction`` (failed)."""
    r = _post(app, {"type": "fund.order", "params": {"fund": "GONE", "amount_fen": 100}}, key="k-gone")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "fund.closed"
    assert body["transaction"]["status"] == "failed"
    assert body["message"] == {"zh-CN": "基金已暂停申购", "en": "Fund closed"}
    _validate(spec, 422, body)


def test_the_schema_still_rejects_a_problem_missing_its_core_members(spec: dict[str, Any]) -> None:
    """Optional ``transaction`` does not make the schema vacuous: a body without ``code`` fails it."""
    with pytest.raises(jsonschema_rs.ValidationError, match="code"):
        _validate(spec, 422, {"type": "x", "title": "t", "status": 422, "detail": "d"})


@pytest.mark.parametrize(
    ("content", "field"), [(b"{not json", "body"), (b'{"params": {}}', "type")]
)
def test_an_unreadable_body_is_a_documented_400(
    app: Any, spec: dict[str, Any], content: bytes, field: str
) -> None:
    """Malformed JSON or a body missing ``type``: 400 problem details naming the field, as documented."""
    headers = {
        "Authorization": f"Bearer {app.token(C3)}",
        "Idempotency-Key": f"k-400-{field}",
        "Content-Type": "application/json",
    }
    r = app.client.post("/v1/transactions", content=content, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["field"] == field
    _validate(spec, 400, body)


def test_a_retry_past_its_window_is_a_documented_422(
    make_app: Callable[..., Any], kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 the plugin never saw, retried after the retry window: 422 ``idempotency.expired`` with
    its transaction and ``first_seen_at``, valid against the served schema, and the 422's description
    says so."""
    from datetime import timedelta

    import fulcrum_core.transactions.service as service_module
    from fulcrum_core.data.types import utcnow

    app = make_app(_fund_plugin(kit), transaction_retry_window_seconds=60)
    spec = app.client.get("/schema/openapi.json").json()
    breaker = app.runtime.dispatcher.resilience.get("funds", "execute_transaction").breaker
    breaker.trip()
    order = {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100}}
    refused = _post(app, order, key="k-window")
    assert refused.status_code == 503, refused.text
    breaker.reset()
    later = utcnow() + timedelta(seconds=61)
    monkeypatch.setattr(service_module, "utcnow", lambda: later)
    r = _post(app, order, key="k-window")
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert "retry-after" not in r.headers
    body = r.json()
    assert (body["code"], body["field"]) == ("idempotency.expired", "Idempotency-Key")
    assert body["transaction"]["status"] == "failed"
    assert body["first_seen_at"] == refused.json()["transaction"]["created_at"]
    _validate(spec, 422, body)
    described = spec["paths"]["/v1/transactions"]["post"]["responses"]["422"]["description"]
    assert "idempotency.expired" in described
