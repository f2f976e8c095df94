"""``SqlPluginStorage``: the SDK's storage contract on SQLite and PostgreSQL, atomic under concurrency."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_sdk.errors import LimitExceeded, OutcomeUnknown, StorageOutcomeUnknown, StorageUnavailable
from fulcrum_sdk.storage import MAX_VALUE_BYTES, PluginStorage
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection


def _race(workers: int, fn: Callable[[int], object]) -> list[object]:
    """Run ``fn`` in ``workers`` threads released together; return results or raised exceptions."""
    barrier = threading.Barrier(workers)

    def run(i: int) -> object:
        barrier.wait()
        try:
            return fn(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, range(workers)))


def test_satisfies_the_sdk_protocol(db: Database) -> None:
    """The SQL storage is a ``PluginStorage`` as plugins type it."""
    storage: PluginStorage = SqlPluginStorage(db, "p")
    assert storage.counter("nothing") == 0


def test_documents_round_trip_and_replace(db: Database) -> None:
    """put/get stores JSON values; a second put replaces; delete removes; absent keys are None."""
    s = SqlPluginStorage(db, "p")
    assert s.get("doc") is None
    s.put("doc", {"score": 71, "tags": ["a", "b"], "name": "体检"})
    assert s.get("doc") == {"score": 71, "tags": ["a", "b"], "name": "体检"}
    s.put("doc", [1, 2])
    assert s.get("doc") == [1, 2]
    s.delete("doc")
    assert s.get("doc") is None
    s.delete("doc")  # absent: no error


def test_keys_are_private_to_each_plugin(db: Database) -> None:
    """Two plugins using the same key never see each other's values or counters."""
    a, b = SqlPluginStorage(db, "plugin-a"), SqlPluginStorage(db, "plugin-b")
    a.put("k", "from a")
    a.add("stock", 5)
    assert b.get("k") is None
    assert b.counter("stock") == 0
    b.put("k", "from b")
    assert a.get("k") == "from a"


def test_documents_and_counters_are_separate_namespaces(db: Database) -> None:
    """A document and a counter may share a key without clobbering each other."""
    s = SqlPluginStorage(db, "p")
    s.put("k", {"v": 1})
    s.add("k", 3)
    assert s.get("k") == {"v": 1}
    assert s.counter("k") == 3


def test_add_creates_increments_and_decrements(db: Database) -> None:
    """A counter starts at 0; add returns the new value in both directions."""
    s = SqlPluginStorage(db, "p")
    assert s.add("c", 10) == 10
    assert s.add("c", -3) == 7
    assert s.counter("c") == 7


def test_add_refuses_to_cross_a_bound_and_changes_nothing(db: Database) -> None:
    """Crossing ``lower`` or ``upper`` raises ``LimitExceeded`` with the current value, value unchanged."""
    s = SqlPluginStorage(db, "p")
    s.add("stock", 2)
    with pytest.raises(LimitExceeded) as info:
        s.add("stock", -3, lower=0)
    assert (info.value.key, info.value.current, info.value.delta, info.value.lower) == ("stock", 2, -3, 0)
    assert s.counter("stock") == 2
    with pytest.raises(LimitExceeded):
        s.add("stock", 9, upper=10)
    assert s.counter("stock") == 2
    assert s.add("stock", 8, upper=10) == 10


def test_add_on_a_missing_counter_respects_bounds(db: Database) -> None:
    """A never-touched counter is 0: a first add below ``lower`` is refused and creates nothing."""
    s = SqlPluginStorage(db, "p")
    with pytest.raises(LimitExceeded) as info:
        s.add("fresh", -1, lower=0)
    assert info.value.current == 0
    assert s.counter("fresh") == 0
    with pytest.raises(LimitExceeded):
        s.add("fresh", 6, upper=5)
    assert s.add("fresh", 5, lower=0, upper=5) == 5


@pytest.mark.parametrize("key", ["", "x" * 201])
def test_bad_keys_are_refused(db: Database, key: str) -> None:
    """Empty keys and keys over 200 characters are a plugin bug, refused before any SQL."""
    s = SqlPluginStorage(db, "p")
    with pytest.raises(ValueError, match="key"):
        s.put(key, 1)
    with pytest.raises(ValueError, match="key"):
        s.add(key, 1)


def test_values_must_be_json(db: Database) -> None:
    """A value that is not JSON-encodable is refused with a TypeError naming the key."""
    with pytest.raises(TypeError, match="'doc'"):
        SqlPluginStorage(db, "p").put("doc", {"when": object()})


def test_a_document_larger_than_the_cap_is_refused_before_any_sql(db: Database) -> None:
    """A document of more than 64 KiB of JSON is refused with a ValueError naming the key, before any
    SQL: the stored one is kept, and this worker's cache still answers it. One of exactly 64 KiB is
    stored and read back whole."""
    s = SqlPluginStorage(db, "p", cache_ms=60_000)
    s.put("doc", {"v": 1})
    at_cap = "x" * (MAX_VALUE_BYTES - 2)  # a JSON string: the text and its two quotes
    with pytest.raises(ValueError, match=f"'doc' is {MAX_VALUE_BYTES + 1} bytes"):
        s.put("doc", at_cap + "x")
    assert s.get("doc") == {"v": 1}
    assert SqlPluginStorage(db, "p").get("doc") == {"v": 1}  # the database too, past any cache
    s.put("doc", at_cap)
    assert SqlPluginStorage(db, "p").get("doc") == at_cap


def test_bad_deltas_and_bounds_are_refused(db: Database) -> None:
    """A non-integer delta or inverted bounds are refused and change nothing."""
    s = SqlPluginStorage(db, "p")
    with pytest.raises(TypeError):
        s.add("c", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        s.add("c", True)
    with pytest.raises(ValueError, match="lower bound"):
        s.add("c", 1, lower=5, upper=1)
    assert s.counter("c") == 0


def test_database_failure_is_storage_unavailable(sqlite_url: str) -> None:
    """When the store cannot answer (here: never migrated), every call raises ``StorageUnavailable``."""
    db = Database(sqlite_url)
    s = SqlPluginStorage(db, "p")
    try:
        for call in (lambda: s.get("k"), lambda: s.put("k", 1), lambda: s.delete("k"),
                     lambda: s.counter("k"), lambda: s.add("k", 1)):
            with pytest.raises(StorageUnavailable, match="'p'"):
                call()
    finally:
        db.dispose()


def test_a_write_whose_commit_goes_unacknowledged_may_have_been_applied(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database commits, then the answer is lost: the write raises ``StorageOutcomeUnknown`` (a
    ``StorageUnavailable`` and an ``OutcomeUnknown``), not a plain ``StorageUnavailable``, which says
    nothing was written; and it was applied. A failure before the commit is sent stays the plain one."""
    s = SqlPluginStorage(db, "p")
    s.put("gone", 1)
    commit = Connection._commit_impl  # under Connection.commit and Transaction.commit alike

    def commit_then_lose_the_answer(conn: Connection) -> None:
        commit(conn)
        raise sa_exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Connection, "_commit_impl", commit_then_lose_the_answer)
    for write in (lambda: s.put("doc", {"a": 1}), lambda: s.delete("gone"), lambda: s.add("n", 5, upper=10)):
        with pytest.raises(StorageOutcomeUnknown, match="may have been applied") as info:
            write()
        assert isinstance(info.value, StorageUnavailable)
        assert isinstance(info.value, OutcomeUnknown)
    monkeypatch.undo()
    seen = SqlPluginStorage(db, "p").fresh
    assert (seen.get("doc"), seen.get("gone"), seen.counter("n")) == ({"a": 1}, None, 5)

    def refuse_before_the_commit(conn: Connection, *args: object, **kwargs: object) -> None:
        raise sa_exc.OperationalError("UPDATE", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Connection, "execute", refuse_before_the_commit)
    with pytest.raises(StorageUnavailable) as before:
        s.add("n", 1)
    assert not isinstance(before.value, OutcomeUnknown)


def test_concurrent_decrements_never_oversell(db: Database) -> None:
    """20 buyers racing for 10 units: exactly 10 succeed and the stock ends at 0, never below."""
    s = SqlPluginStorage(db, "merchant")
    s.add("stock", 10)
    results = _race(20, lambda _: s.add("stock", -1, lower=0))
    sold = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(sold) == 10
    assert len(refused) == 10
    assert sorted(sold) == list(range(10))
    assert s.counter("stock") == 0


def test_concurrent_first_touches_respect_an_upper_bound(db: Database) -> None:
    """20 first-time increments of a missing counter capped at 5: exactly 5 pass, no duplicate rows."""
    s = SqlPluginStorage(db, "pension")
    results = _race(20, lambda _: s.add("2026:c-1", 1, upper=5))
    assert sum(isinstance(r, int) for r in results) == 5
    assert all(isinstance(r, int | LimitExceeded) for r in results), results
    assert s.counter("2026:c-1") == 5


def test_concurrent_puts_leave_one_whole_value(db: Database) -> None:
    """Racing writers to one document leave exactly one writer's complete value."""
    s = SqlPluginStorage(db, "p")
    results = _race(10, lambda i: s.put("doc", {"writer": i, "payload": [i] * 50}))
    assert all(r is None for r in results), results
    final = s.get("doc")
    assert final["payload"] == [final["writer"]] * 50
