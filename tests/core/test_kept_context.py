"""A context is good for its own request only: one a plugin keeps reads no customer data afterwards.

Otherwise a plugin could stash ``ctx`` from one customer's request and, serving another customer later,
read the first customer's records through the public accessors, after that customer revoked their
consent, and even records it was never given in the first request (they would be fetched afresh).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_sdk.errors import REQUEST_ENDED, ScopeDenied
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.testing import PERSONAS

FIRST = PERSONAS["young_professional"].id
SECOND = PERSONAS["affluent"].id
DATA = ["holdings:read", "accounts:read"]


def _later_reads(kept: list[Any]) -> list[str]:
    """What a kept context gives when asked again: each accessor's answer, or the ScopeDenied reason."""
    answers = []
    for read in (kept[0].data.holdings, kept[0].data.accounts):
        try:
            answers.append(f"data: {read()!r}")
        except ScopeDenied as exc:
            answers.append(exc.reason)
    return answers


def _spy(kit: Any, kind: str, kept: list[Any], later: list[list[str]], **hooks: Any) -> Any:
    """A plugin that keeps the first context it gets and, in later calls, reads through it."""

    def remember(ctx: Any) -> None:
        if kept:
            later.append(_later_reads(kept))
        else:
            kept.append(ctx)

    def offers(ctx: Any) -> list[Any]:
        remember(ctx)
        return [kit.offer("home.banner", "k")]

    def hits(ctx: Any, query: str) -> list[Any]:
        remember(ctx)
        return []

    def items(ctx: Any, column: str) -> list[Any]:
        remember(ctx)
        return []

    def page(ctx: Any, path: str, query: Any) -> None:
        remember(ctx)

    scopes = [*DATA, "slot:home.banner", "search:contribute", "feed:contribute"]
    return kit.plugin(
        "spy",
        kind=kind,
        scopes=scopes,
        home_slot_offers=offers,
        search=hits,
        feed_items=items,
        page=page,
        **hooks,
    )


@pytest.mark.parametrize("path", ["/v1/home", "/v1/search?q=abc", "/v1/feeds/wealth", "/v1/pages/spy/x"])
def test_a_partner_keeping_a_context_reads_nothing_after_consent_is_revoked(
    make_app: Callable[..., Any], kit: Any, path: str
) -> None:
    """Kept from a consented customer's request, used while serving another customer after the first
    revoked: every accessor refuses, the never-read record included."""
    kept: list[Any] = []
    later: list[list[str]] = []
    app = make_app(_spy(kit, "partner", kept, later))
    store = ConsentStore(app.runtime.db)
    consent = store.grant(FIRST, "spy", DATA, "测试", datetime.now(UTC) + timedelta(days=1))
    assert app.get(path, token=app.token(FIRST)).status_code in (200, 404)
    assert kept
    assert kept[0].data.allows("holdings:read") is False  # the request is over
    store.revoke(consent, FIRST)
    assert app.get(path, token=app.token(SECOND)).status_code in (200, 404)
    assert later == [[REQUEST_ENDED, REQUEST_ENDED]]


def test_an_internal_plugin_keeping_a_context_reads_nothing_in_a_later_request(
    make_app: Callable[..., Any], kit: Any
) -> None:
    """No consent involved: a department plugin's kept context cannot read the first customer while
    the plugin serves the second (it gets the second customer's own context for that)."""
    kept: list[Any] = []
    later: list[list[str]] = []
    app = make_app(_spy(kit, "department", kept, later))
    assert app.get("/v1/home", token=app.token(FIRST)).status_code == 200
    assert app.get("/v1/home", token=app.token(SECOND)).status_code == 200
    assert later == [[REQUEST_ENDED, REQUEST_ENDED]]
    with pytest.raises(ScopeDenied, match="has ended; use the context the current hook call received"):
        kept[0].data.holdings()


class _Params(msgspec.Struct, frozen=True):
    amount_fen: int


def test_a_context_kept_from_a_transaction_reads_nothing_afterwards(
    make_app: Callable[..., Any], kit: Any
) -> None:
    """The transaction path ends its context too, once the plugin has answered."""
    kept: list[Any] = []
    later: list[list[str]] = []

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="spy.pay", name=LocalizedText(zh_CN="支付"), params=_Params,
                                 risk_level="R1", amount_field="amount_fen"))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        if kept:
            later.append(_later_reads(kept))
        else:
            assert ctx.data.holdings() is not None  # usable during its own request
            kept.append(ctx)
        return TransactionResult(status="succeeded")

    plugin = kit.plugin(
        "spy",
        scopes=DATA,
        transaction_types=["spy.pay"],
        register_transaction_types=register_transaction_types,
        execute_transaction=execute_transaction,
    )
    app = make_app(plugin)
    for n, customer in enumerate((FIRST, SECOND)):
        sent = app.client.post(
            "/v1/transactions",
            json={"type": "spy.pay", "params": {"amount_fen": 100}},
            headers={"Authorization": f"Bearer {app.token(customer)}", "Idempotency-Key": f"k-{n}"},
        )
        assert sent.status_code == 201, sent.text
    assert later == [[REQUEST_ENDED, REQUEST_ENDED]]
