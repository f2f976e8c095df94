"""The transaction API end to end through the real app: HTTP → pipeline → database → HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Annotated, Any, Literal

import msgspec
import pytest
from fulcrum_core.dispatch.daemon_threads import DaemonThreadPool
from fulcrum_core.settings import Deadlines
from fulcrum_sdk.errors import TransactionRefused
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.testing import PERSONAS

C3 = PERSONAS["young_professional"].id
OTHER = PERSONAS["affluent"].id


class OrderParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of ``fund.order``."""

    fund: str
    amount_fen: Annotated[int, msgspec.Meta(gt=0)]
    plan_id: Literal["starter", "plus"] = "starter"


FUNDS = {"SAFE": "R2", "GONE": "R2", "HOT": "R5"}
"""Each fund the test plugin sells, with its declared product risk level."""


def _fund_plugin(kit: Any) -> Any:
    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(
            key="fund.order", name=LocalizedText(zh_CN="基金申购", en="Fund order"),
            description=LocalizedText(zh_CN="申购一只基金"), params=OrderParams,
            product_field="fund", product_risks=FUNDS, risk_of=lambda p: "R5" if p.fund == "HOT" else "R2",
            amount_field="amount_fen",
        ))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        if request.params.fund == "GONE":
            raise TransactionRefused("fund.closed", LocalizedText(zh_CN="基金已暂停申购", en="Fund closed"),
                                     field="fund")
        return TransactionResult(status="succeeded", reference=f"ORD-{request.id[:6]}")

    return kit.plugin("funds", transaction_types=["fund.order"],
                      register_transaction_types=register_transaction_types,
                      execute_transaction=execute_transaction)


@pytest.fixture
def app(make_app: Callable[..., Any], kit: Any) -> Any:
    """The real app with one fund-ordering plugin."""
    return make_app(_fund_plugin(kit))


def _post(app: Any, payload: Any, *, key: str | None = "k-1", token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token or app.token(C3)}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    content = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    return app.client.post("/v1/transactions", content=content,
                           headers={**headers, "Content-Type": "application/json"})


ORDER = {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100_000}}


def test_keys_are_per_client_of_the_customer(app: Any) -> None:
    """The app's token and the fund plugin's backend's token, for one customer, both send ``k-1``:
    two transactions; each client's retry replays its own (``Idempotent-Replayed``), and the
    customer reads both back."""
    app_token = app.token(C3, client_id="fulcrum-app")
    partner_token = app.token(C3, client_id="plugin-funds")
    other_order = {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 200_000}}
    first = _post(app, ORDER, token=app_token)
    second = _post(app, other_order, token=partner_token)
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert first.json()["id"] != second.json()["id"]
    for token, payload, sent in ((app_token, ORDER, first), (partner_token, other_order, second)):
        again = _post(app, payload, token=token)
        assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
        assert again.json() == sent.json()
        assert app.get(sent.headers["location"], token=token).json()["id"] == sent.json()["id"]
    mismatch = _post(app, other_order, token=app_token)  # the app's k-1 is still the app's order
    assert (mismatch.status_code, mismatch.json()["code"]) == (422, "idempotency.mismatch")
    assert mismatch.json()["transaction_id"] == first.json()["id"]


def test_submit_then_read_back(app: Any) -> None:
    """201 with the view and a Location; GET of that location shows the same transaction."""
    created = _post(app, ORDER)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["status"] == "succeeded"
    assert view["plugin"] == "funds"
    assert view["amount_fen"] == 100_000
    assert created.headers["location"] == f"/v1/transactions/{view['id']}"
    assert "idempotent-replayed" not in created.headers
    read = app.get(created.headers["location"], token=app.token(C3))
    assert read.status_code == 200
    assert read.json() == view


def test_retry_replays_byte_for_byte(app: Any) -> None:
    """The same key and body: the same status and body, with ``Idempotent-Replayed: true``."""
    first = _post(app, ORDER)
    again = _post(app, ORDER)
    assert again.status_code == first.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"


def test_missing_key_is_a_problem_naming_the_header(app: Any) -> None:
    """No Idempotency-Key: 400 problem details whose ``field`` is the header."""
    response = _post(app, ORDER, key=None)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["field"] == "Idempotency-Key"
    assert problem["code"] == "idempotency.key_missing"


def test_reused_key_with_another_body_is_422(app: Any) -> None:
    """A key reused for a different request is refused."""
    _post(app, ORDER)
    response = _post(app, {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 1}})
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency.mismatch"


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"{not json", 400),
        (b"", 400),
        ({"type": "fund.order", "params": {}, "extra": 1}, 400),
        ({"params": {}}, 400),
        ({"type": "fund.nothing", "params": {}}, 422),
        ({"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": -5}}, 422),
    ],
)
def test_bad_requests_are_4xx_problems_never_500(app: Any, payload: Any, status: int) -> None:
    """Malformed JSON, a missing type, an unknown type and bad params: 4xx problem details."""
    response = _post(app, payload)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_body_errors_name_the_field(app: Any) -> None:
    """A body missing ``type`` or with a stray member names that member, like every other problem."""
    missing = _post(app, {"params": {}})
    assert (missing.status_code, missing.json()["field"]) == (400, "type")
    stray = _post(app, {"type": "fund.order", "params": {}, "colour": "red"})
    assert (stray.status_code, stray.json()["field"]) == (400, "colour")


def test_params_error_names_the_field(app: Any) -> None:
    """A parameter failing the type's schema is named as ``params.<field>``."""
    response = _post(app, {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": "lots"}})
    assert response.status_code == 422
    assert response.json()["field"] == "params.amount_fen"


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" + b"0" * 5000])
def test_a_number_too_large_to_read_names_its_field(app: Any, number: bytes) -> None:
    """``1e400`` (no float holds it) was refused naming ``body`` as JSON that is not valid: it is a 400
    naming ``params.amount_fen`` and the number; nothing is journaled."""
    raw = b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": ' + number + b"}}"
    response = _post(app, raw)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("body.invalid", "params.amount_fen")
    assert problem["detail"].startswith(f"params.amount_fen: the number {number[:40].decode()}")
    assert "too large to read" in problem["detail"]
    assert _journal(app) == []


@pytest.mark.parametrize("number", [b"1e20", b"1.5", b"100.0"])
def test_a_float_for_an_integer_fen_field_names_the_field(app: Any, number: bytes) -> None:
    """A number with a fraction or an exponent where the type takes whole fen: a 422 naming the field."""
    raw = b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": ' + number + b"}}"
    response = _post(app, raw)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "params.amount_fen"


@pytest.mark.parametrize(
    ("payload", "status", "field", "detail"),
    [
        ({"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": "100"}}, 422, "params.amount_fen",
         "params.amount_fen: must be a whole number of fen"),
        (b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 1.5}}', 422, "params.amount_fen",
         "params.amount_fen: must be a whole number of fen"),
        (b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 1e20}}', 422, "params.amount_fen",
         "params.amount_fen: must be a whole number of fen"),
        ({"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 1, "plan_id": "starer"}}, 422,
         "params.plan_id", "params.plan_id: 'starer' is not one of: starter, plus; did you mean starter?"),
        ({"type": "fund.order", "params": {"fund": 7, "amount_fen": 1}}, 422, "params.fund",
         "params.fund: must be text"),
        ({"typ": "fund.order", "params": {}}, 400, "typ",
         "typ: is not a field here (the fields are: type, params); did you mean type?"),
        ({"type": "fund.order", "params": []}, 400, "params", "params: must be a JSON object"),
    ],
    ids=["fen-as-text", "fen-fraction", "fen-exponent", "enum", "text", "unknown-member", "params-list"],
)
def test_a_refused_body_says_in_words_what_would_do(
    app: Any, payload: Any, status: int, field: str, detail: str
) -> None:
    """msgspec's ``Expected `int`, got `str` ``, ``Object contains unknown field `typ` `` and ``Invalid
    enum value 'starer'`` named Python types and no valid value: the problem says what the field takes."""
    response = _post(app, payload)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["field"] == field
    assert problem["detail"].endswith(detail)
    assert "Expected" not in problem["detail"]
    assert _journal(app) == []


def test_a_truncated_body_says_it_ends_before_the_json_does(app: Any) -> None:
    """msgspec's "Input data was truncated": the body stops before its closing brace."""
    response = _post(app, b'{"type": "fund.order", "params": {"fund": "SAFE"')
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == (
        "the body is not valid JSON: the body ends before the JSON does (a closing quote, bracket or brace "
        "is missing)"
    )


def test_suitability_refusal_over_http(app: Any) -> None:
    """An R5 fund for a C3 customer: 422 ``suitability.risk_too_high`` with a zh-CN message."""
    response = _post(app, {"type": "fund.order", "params": {"fund": "HOT", "amount_fen": 100}})
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "suitability.risk_too_high"
    assert problem["message"]["zh-CN"]


def test_plugin_refusal_over_http(app: Any) -> None:
    """The plugin's refusal: 422 problem with its code, field, message and the failed transaction."""
    response = _post(app, {"type": "fund.order", "params": {"fund": "GONE", "amount_fen": 100}})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("fund.closed", "params.fund")
    assert problem["message"] == {"zh-CN": "基金已暂停申购", "en": "Fund closed"}
    assert problem["transaction"]["status"] == "failed"


def test_another_customers_transaction_is_404(app: Any) -> None:
    """Reading someone else's transaction looks exactly like reading a missing one."""
    tx_id = _post(app, ORDER).json()["id"]
    theirs = app.get(f"/v1/transactions/{tx_id}", token=app.token(OTHER))
    missing = app.get("/v1/transactions/does-not-exist", token=app.token(OTHER))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["code"] == missing.json()["code"]
    # ``field`` names the path parameter, as the OpenAPI document calls it (it said ``id``).
    assert theirs.json()["field"] == missing.json()["field"] == "tx_id"


def test_scopes_are_enforced(app: Any) -> None:
    """Submitting needs ``transactions:write``; reading needs ``transactions:read``."""
    read_only = app.token(C3, ["transactions:read"])
    assert _post(app, ORDER, token=read_only).status_code == 403
    write_only = app.token(C3, ["transactions:write"])
    assert app.get("/v1/transaction-types", token=write_only).status_code == 403
    assert app.client.post("/v1/transactions", content=b"{}").status_code == 401


def test_transaction_types_listing(app: Any) -> None:
    """``GET /v1/transaction-types`` lists each type with owner, suitability and params schema."""
    response = app.get("/v1/transaction-types", token=app.token(C3))
    assert response.status_code == 200
    [item] = response.json()["items"]
    assert item["key"] == "fund.order"
    assert item["plugin"] == "funds"
    assert item["name"]["zh-CN"] == "基金申购"
    assert item["suitability"] == "depends_on_params"
    assert "amount_fen" in msgspec.json.encode(item["params_schema"]).decode()


def test_openapi_documents_the_transaction_routes(app: Any) -> None:
    """The schema at /schema describes the body, the header and the problem responses."""
    schema = app.client.get("/schema/openapi.json").json()
    post = schema["paths"]["/v1/transactions"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])
    assert {"201", "202", "422"} <= set(post["responses"])
    assert "/v1/transactions/{tx_id}" in schema["paths"]


def test_a_plugins_token_may_submit_only_its_own_types(app: Any) -> None:
    """A token a plugin's client obtained for the customer is refused for another plugin's type (before
    journaling, even with the key of a journaled one); the owner's token and the app's go through."""
    runtime = app.runtime
    mine = runtime.tokens.issue(C3, ["transactions:write"], client_id="plugin-funds")
    theirs = runtime.tokens.issue(C3, ["transactions:write"], client_id="plugin-coupons")
    assert _post(app, ORDER, key="app-1").status_code == 201
    refused = _post(app, ORDER, key="app-1", token=theirs)
    assert refused.status_code == 403
    assert refused.json()["code"] == "transaction.not_owner"
    assert refused.json()["field"] == "type"
    assert "'funds'" in refused.json()["detail"]
    assert _post(app, ORDER, key="other-1", token=theirs).status_code == 403
    assert _post(app, ORDER, key="own-1", token=mine).status_code == 201


def test_a_plugins_token_reads_only_its_own_plugins_transactions(app: Any) -> None:
    """A plugin's client reads its plugin's transactions, whichever client submitted them (the app's
    included), and gets 404 for another plugin's, as for an unknown id; the app's token reads all."""
    runtime = app.runtime
    created = _post(app, ORDER, key="app-read-1")
    assert created.status_code == 201, created.text
    where = created.headers["location"]
    owner = runtime.tokens.issue(C3, ["transactions:read"], client_id="plugin-funds")
    other = runtime.tokens.issue(C3, ["transactions:read"], client_id="plugin-coupons")
    assert app.get(where, token=owner).json()["id"] == created.json()["id"]
    refused = app.get(where, token=other)
    assert (refused.status_code, refused.json()["code"]) == (404, "transaction.not_found")
    unknown = app.get("/v1/transactions/" + "0" * 32, token=other)
    assert refused.json()["detail"].replace(created.json()["id"], "0" * 32) == unknown.json()["detail"]
    assert app.get(where, token=app.token(C3)).status_code == 200

def test_only_a_plugins_client_is_named_plugin_dash(db: Any) -> None:
    """The prefix that marks a plugin's token is reserved: no other client, and no plugin's client
    under another plugin's name, can be registered with it."""
    from fulcrum_core.errors import BadRequest
    from fulcrum_core.oauth.clients import ClientStore

    store = ClientStore(db)
    with pytest.raises(BadRequest) as info:
        store.register("plugin-funds", kind="staff", name_zh="冒名", auth_method="client_secret_basic",
                       grant_types=["client_credentials"], scopes=["platform:read"])
    assert info.value.field == "client_id"
    with pytest.raises(BadRequest):
        store.register("plugin-funds", kind="plugin", plugin_id="coupons", name_zh="冒名",
                       auth_method="client_secret_basic", grant_types=["client_credentials"], scopes=[])
    assert store.get("plugin-funds") is None


def test_a_503_the_plugin_never_saw_says_when_to_retry_and_the_same_key_then_runs_it(app: Any) -> None:
    """The plugin's breaker is open: 503 with Retry-After, and the app's retry with the same key and
    body, once the breaker lets calls through, runs the transaction (201, the same id), where before it
    replayed the 503 forever; the OpenAPI document says so."""
    breaker = app.runtime.dispatcher.resilience.get("funds", "execute_transaction").breaker
    breaker.trip()
    refused = _post(app, ORDER, key="k-503")
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "transaction.plugin_unavailable"
    assert int(refused.headers["retry-after"]) >= 1
    breaker.reset()
    retried = _post(app, ORDER, key="k-503")
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert retried.json()["id"] == refused.json()["transaction"]["id"]
    assert retried.headers["location"] == refused.headers["location"]
    spec = app.client.get("/schema/openapi.json").json()
    described = spec["paths"]["/v1/transactions"]["post"]["responses"]["503"]
    assert "same Idempotency-Key" in described["description"]
    assert "`Retry-After`" in described["description"]


def test_a_transaction_read_back_says_how_many_attempts_it_took(app: Any) -> None:
    """Refused unasked (503, failed) and then run by a retry (201, succeeded): GET shows ``attempts``
    2, so the app can tell the failed it saw from the success that followed; a transaction done at
    once shows 1, and the OpenAPI document describes the field."""
    breaker = app.runtime.dispatcher.resilience.get("funds", "execute_transaction").breaker
    breaker.trip()
    refused = _post(app, ORDER, key="k-attempts")
    assert refused.status_code == 503, refused.text
    assert refused.json()["transaction"]["attempts"] == 1
    breaker.reset()
    retried = _post(app, ORDER, key="k-attempts")
    assert retried.status_code == 201, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("succeeded", 2)
    read = app.get(retried.headers["location"], token=app.token(C3))
    assert (read.json()["status"], read.json()["attempts"]) == ("succeeded", 2)
    replayed = _post(app, ORDER, key="k-attempts")
    assert replayed.json()["attempts"] == 2
    once = _post(app, ORDER, key="k-once")
    assert once.json()["attempts"] == 1
    spec = app.client.get("/schema/openapi.json").json()
    attempts = spec["components"]["schemas"]["TransactionView"]["properties"]["attempts"]
    assert attempts["type"] == "integer"
    assert "Idempotency-Key" in attempts["description"]


def test_sync_call_still_queued_at_its_deadline_is_a_retryable_503(
    make_app: Callable[..., Any], kit: Any, release: threading.Event
) -> None:
    """A sync ``execute_transaction`` still queued for the one plugin thread (held by another call) when
    its deadline passes is withdrawn, never run: the plugin never saw it, so it is the retryable 503
    ``transaction.plugin_unavailable`` with Retry-After, not a 202 unknown; the same key runs it later."""
    held: list[Future[Any]] = []
    executed: list[str] = []

    def risk_of(params: Any) -> Any:
        if not held:  # checked in the one plugin thread: queue another call that holds it next
            held.append(app.runtime.dispatcher._executor.submit(release.wait))
        return "R2"

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(
            key="fund.order", name=LocalizedText(zh_CN="基金申购"), description=LocalizedText(zh_CN="申购"),
            params=OrderParams, product_field="fund", product_risks=FUNDS, risk_of=risk_of,
            amount_field="amount_fen",
        ))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        executed.append(request.id)
        return TransactionResult(status="succeeded", reference="ORD-1")

    app = make_app(
        kit.plugin(
            "funds",
            transaction_types=["fund.order"],
            register_transaction_types=register_transaction_types,
            execute_transaction=execute_transaction,
        ),
        deadlines=Deadlines(execute_transaction=200),
    )
    app.runtime.dispatcher._executor.shutdown()
    app.runtime.dispatcher._executor = DaemonThreadPool(1)
    refused = _post(app, ORDER)
    assert refused.status_code == 503, refused.text
    problem = refused.json()
    assert problem["code"] == "transaction.plugin_unavailable"
    assert refused.headers["retry-after"] == "1"
    assert executed == []
    row = app.runtime.transactions.journal.find(C3, "fulcrum-dev", "k-1")
    assert row is not None
    assert row.retryable
    assert row.status == "failed"
    release.set()
    held[0].result(timeout=5)
    time.sleep(0.1)  # room for the withdrawn call to run, were it still queued
    assert executed == []
    done = _post(app, ORDER)
    assert done.status_code == 201, done.text
    assert done.json()["id"] == problem["transaction"]["id"] == row.id
    assert executed == [row.id]


def _journal(app: Any) -> list[Any]:
    from fulcrum_core.data.models import TransactionRow
    from sqlalchemy import select

    with app.runtime.db.session() as session:
        return list(session.scalars(select(TransactionRow)))


@pytest.mark.parametrize(
    ("body", "field", "key"),
    [
        (b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100, "amount_fen": 900000}}',
         "params.amount_fen", "amount_fen"),
        (b'{"type": "fund.gone", "type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100}}',
         "type", "type"),
        (b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100}, "params": {}}',
         "params", "params"),
        (b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100, "type": 1, "type": 2}}',
         "params.type", "type"),
        (b'{"type": "fund.order", "params": {"x": {"a": 2}, "y": {"a": 1, "a": 2}}}', "params.y.a", "a"),
    ],
    ids=["amount", "type", "params", "nested-type", "equal-sibling"],
)
def test_a_member_named_twice_is_refused_and_nothing_is_journaled(
    app: Any, body: bytes, field: str, key: str
) -> None:
    """A body naming a member twice is ``body.invalid`` naming it: the last of two amounts was
    journaled and carried out, while a proxy or a log reading the first saw another amount."""
    response = _post(app, body)
    assert response.status_code == 400, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("body.invalid", field)
    assert f"names {key!r} twice" in problem["detail"]
    assert _journal(app) == []


def test_an_idempotency_key_sent_twice_is_refused(app: Any) -> None:
    """Two ``Idempotency-Key`` header lines are ``idempotency.key_invalid``: the first was used,
    silently. (Sent through the ASGI app itself: the test client folds repeated headers into one.)"""
    token = app.token(C3).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/transactions", "raw_path": b"/v1/transactions", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5000), "server": ("testserver.local", 80), "state": {},
        "headers": [
            (b"host", b"testserver.local"), (b"authorization", b"Bearer " + token),
            (b"content-type", b"application/json"),
            (b"idempotency-key", b"dup-a"), (b"idempotency-key", b"dup-b"),
        ],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": msgspec.json.encode(ORDER), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app.client.blocking_portal.call(app.client.app, scope, receive, send)
    assert sent[0]["status"] == 400
    problem = msgspec.json.decode(b"".join(m.get("body", b"") for m in sent[1:]))
    assert (problem["code"], problem["field"]) == ("idempotency.key_invalid", "Idempotency-Key")
    assert "sent 2 times" in problem["detail"]
    assert _journal(app) == []


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x",
     None],
)
def test_a_body_not_declared_json_is_415_and_moves_no_money(app: Any, content_type: str | None) -> None:
    """The same JSON sent as another media type, or as none, is a 415 naming ``Content-Type``: each was
    carried out as though it were JSON, although the catalogue documents the 415."""
    headers = {"Authorization": f"Bearer {app.token(C3)}", "Idempotency-Key": "k-1"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = app.client.post("/v1/transactions", content=msgspec.json.encode(ORDER), headers=headers)
    assert response.status_code == 415, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("unsupported-media-type", "Content-Type")
    assert _journal(app) == []


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/json; charset=latin-1", "'latin-1'"),
        ('application/json; charset="ISO-8859-1"', "'ISO-8859-1'"),
        ("application/json; charset=utf-8; charset=utf-16", "'utf-16'"),
    ],
)
def test_a_json_body_in_another_charset_is_415_naming_it(app: Any, content_type: str, named: str) -> None:
    """JSON is UTF-8 (RFC 8259 section 8.1): a body of other than ASCII declared in another charset is a
    415 naming it and ``Content-Type``, where it was read as UTF-8 regardless and carried out."""
    headers = {"Authorization": f"Bearer {app.token(C3)}", "Idempotency-Key": "k-1"}
    headers["Content-Type"] = content_type
    body = msgspec.json.encode({**ORDER, "params": {**ORDER["params"], "fund": "SAFÉ"}})
    response = app.client.post("/v1/transactions", content=body, headers=headers)
    assert response.status_code == 415, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("unsupported-media-type", "Content-Type")
    assert f"charset {named}" in problem["detail"]
    assert _journal(app) == []


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "us-ascii", "windows-1252"])
def test_an_ascii_json_body_in_an_ascii_compatible_charset_is_carried_out(app: Any, charset: str) -> None:
    """An order whose bytes are all ASCII reads the same in those charsets as in UTF-8: it is carried out,
    as an OAuth form declared so is read, where it was a 415."""
    headers = {"Authorization": f"Bearer {app.token(C3)}", "Idempotency-Key": "k-1",
               "Content-Type": f"application/json; charset={charset}"}
    response = app.client.post("/v1/transactions", content=msgspec.json.encode(ORDER), headers=headers)
    assert response.status_code == 201, response.text
    assert len(_journal(app)) == 1


def test_a_content_type_sent_twice_is_400(app: Any) -> None:
    """Two ``Content-Type`` headers (JSON and text) are a 400 naming the header: which one a proxy read
    is anyone's guess."""
    headers = [("Authorization", f"Bearer {app.token(C3)}"), ("Idempotency-Key", "k-1"),
               ("Content-Type", "application/json"), ("Content-Type", "text/plain")]
    response = app.client.post("/v1/transactions", content=msgspec.json.encode(ORDER), headers=headers)
    assert response.status_code == 400, response.text
    assert (response.json()["field"], response.json()["code"]) == ("Content-Type", "invalid-input")
    assert _journal(app) == []


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", 'application/json; charset="UTF-8"', "application/vnd.bank+json"],
)
def test_json_media_types_with_parameters_or_a_suffix_are_read(app: Any, content_type: str) -> None:
    """``application/json`` with parameters and ``application/*+json`` are JSON."""
    headers = {"Authorization": f"Bearer {app.token(C3)}", "Idempotency-Key": "k-1"}
    headers["Content-Type"] = content_type
    response = app.client.post("/v1/transactions", content=msgspec.json.encode(ORDER), headers=headers)
    assert response.status_code == 201, response.text


def test_a_transaction_body_past_its_limit_is_413_unread(app: Any) -> None:
    """A body over 64 KiB is a 413 before it is parsed (on the event loop, several times: 8 MB of valid
    JSON held the loop for over a second), and nothing is journaled; one just under is read."""
    from fulcrum_core.api.transactions import MAX_BODY

    def padded(size: int) -> bytes:
        head = b'{"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": 100}, "note": "'
        return head + b"x" * (size - len(head) - 2) + b'"}'

    response = _post(app, padded(MAX_BODY + 1))
    assert response.status_code == 413, response.text
    assert _journal(app) == []
    fits = _post(app, padded(MAX_BODY), key="k-2")
    assert fits.status_code == 400, fits.text  # read, and refused for its stray member, not its size
    assert fits.json()["field"] == "note"


@pytest.mark.parametrize("coding", ["gzip", "br", "identity, gzip"])
def test_a_body_with_a_content_coding_is_415_and_moves_no_money(app: Any, coding: str) -> None:
    """A body declared compressed is a 415 naming ``Content-Encoding``: the host does not undo a content
    coding, so a plain body labelled ``br`` was carried out and a compressed one refused as not JSON."""
    headers = {"Authorization": f"Bearer {app.token(C3)}", "Idempotency-Key": "k-1"}
    headers |= {"Content-Type": "application/json", "Content-Encoding": coding}
    response = app.client.post("/v1/transactions", content=msgspec.json.encode(ORDER), headers=headers)
    assert response.status_code == 415, response.text
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("unsupported-media-type", "Content-Encoding")
    assert _journal(app) == []


def test_an_identity_content_coding_is_read(app: Any) -> None:
    """``Content-Encoding: identity`` says the body is as sent: it is read."""
    headers = {"Authorization": f"Bearer {app.token(C3)}", "Idempotency-Key": "k-1"}
    headers |= {"Content-Type": "application/json", "Content-Encoding": "identity"}
    response = app.client.post("/v1/transactions", content=msgspec.json.encode(ORDER), headers=headers)
    assert response.status_code == 201, response.text


def test_the_transaction_limit_cannot_be_set_past_what_the_journal_holds(
    make_app: Callable[..., Any], kit: Any
) -> None:
    """``max_transaction_fen`` is at most 2**63 - 1, the journal's 64-bit amount: a larger limit let an
    amount the journal cannot hold past the check, and its insert was a 500. At the largest limit, one
    fen more is the 422 naming the field, and nothing is journaled."""
    from fulcrum_core.settings import SettingsError, load_settings

    largest = 2**63 - 1
    with pytest.raises(SettingsError, match=r"^FULCRUM_MAX_TRANSACTION_FEN \(max_transaction_fen\)"):
        load_settings(environ={"FULCRUM_MAX_TRANSACTION_FEN": str(largest + 1)})
    app = make_app(_fund_plugin(kit), max_transaction_fen=largest)
    response = _post(app, {"type": "fund.order", "params": {"fund": "SAFE", "amount_fen": largest + 1}})
    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["field"]) == ("limits.max_amount", "params.amount_fen")
    assert _journal(app) == []
