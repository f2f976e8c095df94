"""What a plugin reaches from the context it is handed by plain attribute access, and what it can change.

Introspection (``__closure__``, ``__self__``, ``__globals__``, the garbage collector) is out of reach
of any in-process check; the attributes of the objects a plugin is handed are not: following them must
lead to no other customer's data, no record its grant and the customer's consent do not open, and, for
a partner, not the bank's customer number. Setting them must open nothing either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.plugins import PluginSet, get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk.context import CustomerRecords, ScopedData
from fulcrum_sdk.data import DataProvider, Holdings, StaticDataProvider
from fulcrum_sdk.errors import ScopeDenied
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES
from fulcrum_sdk.testing import PERSONAS

CUSTOMER = "synthetic-affluent"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_LEAVES = (str, bytes, int, float, bool, type(None), datetime)


@pytest.fixture
def plugins(settings: Settings, kit: Any) -> PluginSet:
    """A department plugin granted holdings, and a partner granted holdings without the customer's consent."""
    scopes = ["profile:basic", "holdings:read", "search:contribute"]
    return get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin("dept", scopes=scopes, search=lambda ctx, query: []),
            kit.plugin("partner", kind="partner", scopes=scopes, search=lambda ctx, query: []),
        ],
    )


def _contexts(settings: Settings, db: Any, plugins: PluginSet) -> tuple[Any, DataProvider]:
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    factory = ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)
    return factory.for_request(CUSTOMER, request_id="r-1", now=NOW), provider


def _attributes(obj: object) -> Iterator[tuple[str, object]]:
    """``obj``'s instance attributes (slots and ``__dict__``), the dunder ones left out."""
    names = {n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ()) if not n.startswith("__")}
    names |= {n for n in getattr(obj, "__dict__", {}) if not n.startswith("__")}
    for name in sorted(names):
        try:
            value = getattr(obj, name)
        except Exception:  # noqa: S112 - an unset slot, or a library's lazy attribute that fails
            continue
        yield name, value


def _reachable(root: object, depth: int = 6, name: str = "ctx.data") -> list[tuple[str, object]]:
    """Every object reachable from ``root`` by plain attribute access and container items."""
    seen: set[int] = set()
    found: list[tuple[str, object]] = []
    frontier: list[tuple[str, object]] = [(name, root)]
    for _ in range(depth):
        step: list[tuple[str, object]] = []
        for path, obj in frontier:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            found.append((path, obj))
            if isinstance(obj, _LEAVES):
                continue
            if isinstance(obj, dict):
                step += [(f"{path}[{k!r}]", v) for k, v in obj.items()]
                step += [(f"{path} key", k) for k in obj]
            elif isinstance(obj, list | tuple | set | frozenset):
                step += [(f"{path}[]", v) for v in obj]
            else:
                step += [(f"{path}.{name}", value) for name, value in _attributes(obj)]
        frontier = step
    return found


def test_a_partner_reaches_neither_the_customer_number_nor_the_bank(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """From a partner's ``ctx.data``: not the customer number, not the bank's provider (every customer's
    records), not the request's records, not the holdings the department plugin read in the same request."""
    contexts, provider = _contexts(settings, db, plugins)
    dept = contexts.for_plugin(plugins.loaded["dept"])
    assert dept.data.holdings() is not None  # now in the request's records, shared by every plugin
    partner = contexts.for_plugin(plugins.loaded["partner"])
    leaks = [
        path for path, obj in _reachable(partner.data)
        if obj == CUSTOMER or obj is provider or isinstance(obj, CustomerRecords | Holdings)
    ]
    assert leaks == []


def test_a_department_plugin_reaches_no_other_customer(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """An internal plugin's ``ctx.data`` leads to no provider it could ask for another customer's records."""
    contexts, provider = _contexts(settings, db, plugins)
    dept = contexts.for_plugin(plugins.loaded["dept"])
    dept.data.holdings()
    assert [path for path, obj in _reachable(dept.data) if obj is provider] == []


@pytest.mark.parametrize("name", ["_granted", "_consented", "_consent_unknown"])
def test_setting_attributes_opens_nothing(settings: Settings, db: Any, plugins: PluginSet, name: str) -> None:
    """A plugin that sets its data's attributes (its grant, the customer's consents) still reads only what
    the host allowed it: the partner no holdings, the department plugin no pension."""
    contexts, _ = _contexts(settings, db, plugins)
    partner = contexts.for_plugin(plugins.loaded["partner"]).data
    dept = contexts.for_plugin(plugins.loaded["dept"]).data
    value = {"_granted": frozenset(CUSTOMER_DATA_SCOPES), "_consented": None, "_consent_unknown": False}[name]
    for data in (partner, dept):
        with contextlib.suppress(AttributeError):
            setattr(data, name, value)
    with pytest.raises(ScopeDenied, match="holdings:read"):
        partner.holdings()
    with pytest.raises(ScopeDenied, match="pension:read"):
        dept.pension()


def test_calling_what_the_data_holds_opens_nothing_more(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """Whatever a plugin passes the callables its ``ctx.data`` holds, they hand out no record beyond its
    grant, and none under a scope that does not open it (a granted scope for another record)."""
    contexts, _ = _contexts(settings, db, plugins)
    contexts.for_plugin(plugins.loaded["dept"]).data.holdings()
    dept = contexts.for_plugin(plugins.loaded["dept"]).data
    held = [obj for _path, obj in _attributes(dept) if callable(obj)]
    assert held  # the check the accessors call
    for call in held:
        asks = [("holdings", "profile:basic"), ("pension", "profile:basic"), ("pension", "pension:read")]
        for name, scope in asks:
            with pytest.raises(ScopeDenied):
                call(name, scope)


def test_a_plugins_storage_leads_to_no_database(settings: Settings, db: Any, plugins: PluginSet) -> None:
    """``ctx.storage`` (either view) leads to neither the database nor its engine: through them a plugin
    would read every table (consents name the bank's customers) and every other plugin's storage."""
    contexts, _ = _contexts(settings, db, plugins)
    ctx = contexts.for_plugin(plugins.loaded["partner"])
    views = [("ctx.storage", ctx.storage), ("fresh", contexts._factory.plugin_storage("partner", fresh=True))]
    for name, storage in views:
        reached = _reachable(storage, name=name)
        assert [path for path, obj in reached if isinstance(obj, Database) or obj is db.engine] == []


def test_setting_storage_attributes_reaches_no_other_plugin(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """A plugin that renames its storage (every ``plugin_id`` it can reach) still writes its own keys."""
    contexts, _ = _contexts(settings, db, plugins)
    storage = contexts.for_plugin(plugins.loaded["partner"]).storage
    for _path, obj in _reachable(storage, name="ctx.storage"):
        if isinstance(getattr(obj, "plugin_id", None), str):
            with contextlib.suppress(AttributeError):
                obj.plugin_id = "dept"  # type: ignore[attr-defined]
    storage.put("planted", {"by": "partner"})
    assert SqlPluginStorage(db, "dept").get("planted") is None
    assert SqlPluginStorage(db, "partner").get("planted") == {"by": "partner"}


class _Shifty(str):
    """A scope or record name of a plugin's: equal to anything, hashing as the next of ``hashes`` each
    time it is hashed (so a set says one scope is there and a dict then finds another's entry)."""

    def __new__(cls, text: str, *hashes: str) -> _Shifty:
        made = super().__new__(cls, text)
        made.hashes = [hash(h) for h in hashes]  # type: ignore[attr-defined]
        return made

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        hashes: list[int] = self.hashes  # type: ignore[attr-defined]
        return hashes.pop(0) if len(hashes) > 1 else hashes[0]


def test_a_str_of_the_plugins_own_opens_no_other_record(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """A ``str`` subclass of the plugin's whose ``__eq__`` and ``__hash__`` it controls, as the scope or the
    record name: the check must compare the text, so the department plugin (granted profile and holdings)
    still reads no pension, whichever it passes and whichever granted scope it passes it as."""
    contexts, _ = _contexts(settings, db, plugins)
    dept = contexts.for_plugin(plugins.loaded["dept"]).data
    held = [obj for _path, obj in _attributes(dept) if callable(obj)]
    assert held
    asks = [
        ("pension", _Shifty("pension:read", "profile:basic", "pension:read")),
        ("pension", _Shifty("pension:read", "holdings:read", "pension:read")),
        (_Shifty("pension", "pension", "pension"), "holdings:read"),
        (_Shifty("pension", "holdings"), "holdings:read"),
    ]
    for call in held:
        for name, scope in asks:
            with pytest.raises(ScopeDenied):
                call(name, scope)
    assert dept.allows(_Shifty("profile:basic", "profile:basic"))  # a str subclass is read as its text


class _Posing(frozenset):  # type: ignore[type-arg]
    """A grant of a plugin's own making: holds every customer-data scope, yet hashes as ``posing_as``
    and is equal to anything, so a memo keyed by grants takes it for the grant the host gave."""

    posing_as: frozenset[str]

    def __hash__(self) -> int:
        return hash(self.posing_as)

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False


def test_a_grant_of_the_plugins_own_making_opens_nothing_in_its_next_request(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """A plugin that builds a ``ScopedData`` of its own (the SDK's public constructor, over a provider of its
    own) with a grant posing as the one the host gave it changes what no request of the host opens: the
    department plugin still reads no pension, the partner no holdings without consent. Views of many
    plugin ids of its own come first, so that any memo of grants with a bound has started over."""
    contexts, _ = _contexts(settings, db, plugins)
    handed = [contexts.for_plugin(plugins.loaded[pid]) for pid in ("dept", "partner")]
    mine = StaticDataProvider({})
    for n in range(10_000):
        ScopedData(plugin_id=f"filler-{n}", provider=mine, customer_ref="anyone", granted=frozenset())
    for ctx in handed:
        posing = _Posing(CUSTOMER_DATA_SCOPES)
        posing.posing_as = frozenset(ctx.scopes)
        for consent_required in (False, True):
            ScopedData(
                plugin_id=ctx.plugin_id, provider=mine, customer_ref="anyone",
                granted=posing, consent_required=consent_required,
            )
    later, _ = _contexts(settings, db, plugins)
    with pytest.raises(ScopeDenied, match="pension:read"):
        later.for_plugin(plugins.loaded["dept"]).data.pension()
    with pytest.raises(ScopeDenied, match="holdings:read"):
        later.for_plugin(plugins.loaded["partner"]).data.holdings()
