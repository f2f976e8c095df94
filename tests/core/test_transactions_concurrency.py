"""Idempotency under real concurrency: 20 simultaneous duplicates → one journal row, one execution."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import msgspec
import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.models import TransactionRow
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.errors import Conflict
from fulcrum_core.oauth.server import APP_CLIENT_ID
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_core.transactions.models import TransactionOutcome
from fulcrum_core.transactions.service import TransactionService
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.testing import PERSONAS
from sqlalchemy import func, select

APP = APP_CLIENT_ID  # the mobile app's client
DUPLICATES = 20
CUSTOMER = PERSONAS["young_professional"].id


class PayParams(msgspec.Struct, frozen=True):
    """Parameters of ``race.pay``."""

    amount_fen: Annotated[int, msgspec.Meta(gt=0)]


@pytest.fixture
def race_service(
    db: Database, settings: Settings, kit: Any
) -> Iterator[tuple[TransactionService, list[TransactionRequest]]]:
    """A service whose plugin records every ``execute_transaction`` call."""
    calls: list[TransactionRequest] = []
    lock = threading.Lock()

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="race.pay", name=LocalizedText(zh_CN="付款"), params=PayParams,
                                 risk_level="R1", amount_field="amount_fen"))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        with lock:
            calls.append(request)
        return TransactionResult(status="succeeded", reference=request.id)

    plugin = kit.plugin("race", transaction_types=["race.pay"],
                        register_transaction_types=register_transaction_types,
                        execute_transaction=execute_transaction)
    plugins = get_plugin_manager(settings, extra_plugins=[plugin], load_entry_points=False)
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    dispatcher = Dispatcher(settings)
    contexts = ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)
    service = TransactionService(settings=settings, db=db, plugins=plugins, dispatcher=dispatcher,
                                 contexts=contexts, provider=provider)
    yield service, calls
    dispatcher.close()



def _insert_together(service: TransactionService) -> None:
    """Hold every one of ``DUPLICATES`` submissions at the journal insert until all have arrived, so
    each has passed the "key unused?" read before any inserts: the unique constraint alone decides."""
    barrier = threading.Barrier(DUPLICATES)
    insert = service.journal.insert_pending

    def insert_together(row: TransactionRow) -> bool:
        barrier.wait(timeout=30)
        return insert(row)

    service.journal.insert_pending = insert_together  # type: ignore[method-assign]


def _submit_together(
    service: Any, body: bytes, clients: tuple[str, ...] = (APP,)
) -> list[TransactionOutcome | BaseException]:
    """``DUPLICATES`` submissions of ``body`` under one key, each in its own thread and event loop,
    the i-th from client ``clients[i % len(clients)]``; what each got, or raised."""
    outcomes: list[TransactionOutcome | BaseException] = [Conflict("unset")] * DUPLICATES

    def submit(i: int) -> None:
        client = clients[i % len(clients)]
        try:
            outcomes[i] = asyncio.run(service.submit(CUSTOMER, "same-key", body, client_id=client))
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(DUPLICATES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes

def test_twenty_concurrent_duplicates_execute_once(
    race_service: tuple[TransactionService, list[TransactionRequest]], db: Database
) -> None:
    """20 threads, each on its own event loop, submit the same key at the same instant.

    Every one of them passes the "key unused?" read before any inserts (a barrier holds them at the
    insert), so the database's unique constraint alone decides: exactly one row, one plugin call;
    the others get 409 while it runs or a replay of its 201.
    """
    service, calls = race_service
    _insert_together(service)
    body = b'{"type": "race.pay", "params": {"amount_fen": 5000}}'
    outcomes = _submit_together(service, body)

    assert len(calls) == 1
    with db.read_session() as session:
        assert session.scalar(select(func.count()).select_from(TransactionRow)) == 1
    fresh = [o for o in outcomes if isinstance(o, TransactionOutcome) and not o.replayed]
    replays = [o for o in outcomes if isinstance(o, TransactionOutcome) and o.replayed]
    in_flight = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(fresh) == 1
    assert fresh[0].status_code == 201
    assert len(replays) + len(in_flight) == DUPLICATES - 1, outcomes
    assert all(r.status_code == 201 and r.transaction_id == fresh[0].transaction_id for r in replays)
    assert all(c.code == "idempotency.in_flight" for c in in_flight)
    # After the dust settles every retry is a replay of the one outcome.
    again = asyncio.run(service.submit(CUSTOMER, "same-key", body, client_id=APP))
    assert again.replayed
    assert again.transaction_id == fresh[0].transaction_id
    assert len(calls) == 1


def test_concurrent_duplicates_from_two_clients_make_one_transaction_each(
    race_service: tuple[TransactionService, list[TransactionRequest]], db: Database
) -> None:
    """The app and the race plugin's backend each send the same key 10 times at the same instant (a
    barrier holds all 20 at the insert): one row and one plugin call per client, and every request
    gets its own client's transaction (fresh, replayed or 409), never the other's."""
    service, calls = race_service
    _insert_together(service)
    clients = (APP, "plugin-race")
    outcomes = _submit_together(service, b'{"type": "race.pay", "params": {"amount_fen": 5000}}', clients)

    assert len(calls) == 2
    assert len({c.idempotency_key for c in calls}) == 2  # the plugin keeps the two apart too
    with db.read_session() as session:
        by_client = {r.client_id: r.id for r in session.scalars(select(TransactionRow))}
    assert set(by_client) == set(clients)
    for i, outcome in enumerate(outcomes):
        own = by_client[clients[i % 2]]
        if isinstance(outcome, Conflict):
            assert (outcome.code, outcome.extra.get("transaction_id")) == ("idempotency.in_flight", own)
        else:
            assert isinstance(outcome, TransactionOutcome), outcome
            assert (outcome.status_code, outcome.transaction_id) == (201, own)
    fresh = [o for o in outcomes if isinstance(o, TransactionOutcome) and not o.replayed]
    assert sorted(o.transaction_id for o in fresh) == sorted(by_client.values())


def test_twenty_concurrent_distinct_keys_all_execute(
    race_service: tuple[TransactionService, list[TransactionRequest]], db: Database
) -> None:
    """The unique constraint is per key: 20 different keys at once make 20 rows and 20 calls."""
    service, calls = race_service

    async def all_at_once() -> list[TransactionOutcome]:
        body = b'{"type": "race.pay", "params": {"amount_fen": 100}}'
        submits = (service.submit(CUSTOMER, f"key-{i}", body, client_id=APP) for i in range(20))
        return list(await asyncio.gather(*submits))

    outcomes = asyncio.run(all_at_once())
    assert [o.status_code for o in outcomes] == [201] * 20
    assert len(calls) == 20
    assert len({o.transaction_id for o in outcomes}) == 20


def test_twenty_concurrent_retries_of_a_transaction_never_run_execute_it_once(
    race_service: tuple[TransactionService, list[TransactionRequest]], db: Database
) -> None:
    """The first attempt is refused unrun (breaker open, 503); then 20 threads retry it with the same
    key at the same instant, all having read the refused row. Exactly one of them runs it again (the
    same transaction id, one plugin call, one more attempt on the row); the others get 409 while it
    runs or a replay of its 201."""
    from fulcrum_core.data.models import TransactionAttemptRow

    service, calls = race_service
    body = b'{"type": "race.pay", "params": {"amount_fen": 5000}}'
    breaker = service._dispatcher.resilience.get("race", "execute_transaction").breaker  # type: ignore[attr-defined]
    breaker.trip()
    refused = asyncio.run(service.submit(CUSTOMER, "same-key", body, client_id=APP))
    assert refused.status_code == 503
    breaker.reset()
    assert calls == []

    barrier = threading.Barrier(DUPLICATES)
    find = service.journal.find
    reads = iter(range(DUPLICATES))  # none gets past its first read before all 20 made theirs
    lock = threading.Lock()

    def find_together(customer_ref: str, client_id: str, key: str) -> TransactionRow | None:
        row = find(customer_ref, client_id, key)
        with lock:
            first = next(reads, None) is not None
        if first:
            barrier.wait(timeout=30)
        return row

    service.journal.find = find_together  # type: ignore[method-assign]
    outcomes = _submit_together(service, body)

    assert len(calls) == 1
    assert calls[0].id == refused.transaction_id
    fresh = [o for o in outcomes if isinstance(o, TransactionOutcome) and not o.replayed]
    replays = [o for o in outcomes if isinstance(o, TransactionOutcome) and o.replayed]
    in_flight = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(fresh) == 1, outcomes
    assert (fresh[0].status_code, fresh[0].transaction_id) == (201, refused.transaction_id)
    assert len(replays) + len(in_flight) == DUPLICATES - 1, outcomes
    assert all(r.status_code == 201 and r.transaction_id == refused.transaction_id for r in replays)
    assert all(c.code == "idempotency.in_flight" for c in in_flight)
    with db.read_session() as session:
        [row] = session.scalars(select(TransactionRow))
        history = list(session.scalars(select(TransactionAttemptRow)))
    assert (row.id, row.status, row.attempts) == (refused.transaction_id, "succeeded", 2)
    assert [(a.attempt, a.response_status) for a in history] == [(1, 503)]
