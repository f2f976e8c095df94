"""``MemoryStorage``: batched counters and the async twins of every operation, same semantics."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
from fulcrum_sdk.errors import LimitExceeded
from fulcrum_sdk.storage import MAX_VALUE_BYTES, MemoryStorage, PluginStorage


def finished(coro: Coroutine[Any, Any, Any]) -> Any:
    """The result of ``coro``, which must complete on its first send (MemoryStorage never waits)."""
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    return stop.value.value


def test_counters_reads_many_keys_with_zero_for_missing() -> None:
    """``counters`` returns every asked key once, in order, 0 for a counter never touched."""
    s = MemoryStorage()
    s.add("a", 2)
    s.add("c", -1)
    got = s.counters(["c", "b", "a", "c"])
    assert got == {"c": -1, "b": 0, "a": 2}
    assert list(got) == ["c", "b", "a"]
    assert s.counters([]) == {}


def test_async_methods_match_the_plain_ones() -> None:
    """aget/aput/adelete/acounter/acounters/aadd read and write the same data, without suspending."""
    s: PluginStorage = MemoryStorage()
    assert finished(s.aget("doc")) is None
    assert finished(s.aput("doc", {"score": 71})) is None
    assert s.get("doc") == {"score": 71}
    assert finished(s.aget("doc")) == {"score": 71}
    assert finished(s.aadd("stock", 3, upper=5)) == 3
    assert s.counter("stock") == 3
    assert finished(s.acounter("stock")) == 3
    assert finished(s.acounters(["stock", "none"])) == {"stock": 3, "none": 0}
    finished(s.adelete("doc"))
    assert s.get("doc") is None
    finished(s.adelete("doc"))  # absent: no error


def test_aadd_enforces_bounds_and_changes_nothing_when_refused() -> None:
    """A bounded ``aadd`` past its bound raises LimitExceeded naming the current value; the counter stays."""
    s = MemoryStorage()
    s.add("cap", 4)
    with pytest.raises(LimitExceeded) as refused:
        finished(s.aadd("cap", 2, upper=5))
    assert refused.value.current == 4
    with pytest.raises(LimitExceeded):
        finished(s.aadd("cap", -5, lower=0))
    assert s.counter("cap") == 4


def test_aget_returns_a_copy() -> None:
    """Mutating what ``aget`` returned leaves the stored value alone."""
    s = MemoryStorage()
    s.put("doc", {"tags": ["a"]})
    got = finished(s.aget("doc"))
    got["tags"].append("b")
    assert s.get("doc") == {"tags": ["a"]}


def test_a_document_larger_than_the_cap_is_refused_and_the_old_one_kept() -> None:
    """A document of more than 64 KiB of JSON is refused, naming the key and the size, by ``put`` and
    ``aput`` alike, and leaves the stored one as it was; one of exactly 64 KiB is taken (as the host)."""
    s = MemoryStorage()
    s.put("doc", {"v": 1})
    at_cap = "x" * (MAX_VALUE_BYTES - 2)  # a JSON string: the text and its two quotes
    too_big = at_cap + "x"
    refused = rf"'doc' is {MAX_VALUE_BYTES + 1} bytes as JSON; at most {MAX_VALUE_BYTES}"
    with pytest.raises(ValueError, match=refused):
        s.put("doc", too_big)
    with pytest.raises(ValueError, match="'doc'"):
        finished(s.aput("doc", too_big))
    assert s.get("doc") == {"v": 1}
    s.put("doc", at_cap)
    assert s.get("doc") == at_cap
