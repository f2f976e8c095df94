"""The per-worker consent cache: freshness by a virtual clock, expiry inside an entry, invalidation, bounds.

The database is the shared ``db`` fixture (SQLite, and PostgreSQL when configured); the HTTP test runs the
real app with a partner plugin and a cache lifetime long enough that only invalidation can explain a change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.data.consent_cache import ConsentCache, LiveConsent, attach, invalidate
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.plugins import PluginSet, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.errors import ScopeDenied
from fulcrum_sdk.testing import PERSONAS

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)
CUSTOMER = "synthetic-young-professional"
PARTNER = "fund-partner"
PROFILE = frozenset({"profile:basic"})


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _cache(ttl_ms: int = 1000, **kwargs: Any) -> tuple[ConsentCache, Clock]:
    clock = Clock()
    return ConsentCache(ttl_ms, clock=clock, **kwargs), clock


def _put(cache: ConsentCache, customer: str, *consents: LiveConsent, at: datetime = NOW) -> None:
    cache.put(customer, consents, at, cache.token())


# --- the cache on its own ----------------------------------------------------------------------------


def test_miss_then_hit_until_the_entry_is_stale() -> None:
    """Nothing cached is a miss; a stored read is served for ttl_ms on the cache's clock, then dropped."""
    cache, clock = _cache(1000)
    assert cache.get("c-1", NOW) is None
    _put(cache, "c-1", LiveConsent("p", PROFILE, LATER))
    assert cache.get("c-1", NOW) == {"p": PROFILE}
    clock.t += 0.999
    assert cache.get("c-1", NOW + timedelta(seconds=1)) == {"p": PROFILE}
    clock.t += 0.001
    assert cache.get("c-1", NOW + timedelta(seconds=1)) is None
    assert len(cache) == 0  # the stale entry is gone, not kept around


def test_a_consent_that_expires_while_cached_is_not_served() -> None:
    """Each consent's own expiry is applied at lookup: the entry is fresh, the consent is not."""
    cache, _ = _cache(60_000)
    soon = NOW + timedelta(milliseconds=500)
    _put(
        cache,
        "c-1",
        LiveConsent("p", PROFILE, soon),
        LiveConsent("p", frozenset({"holdings:read"}), LATER),
        LiveConsent("q", PROFILE, soon),
    )
    assert cache.get("c-1", NOW) == {"p": PROFILE | {"holdings:read"}, "q": PROFILE}
    assert cache.get("c-1", soon) == {"p": frozenset({"holdings:read"})}


def test_an_entry_says_nothing_about_instants_before_its_read() -> None:
    """A request whose ``now`` precedes the read misses (the consent may have been granted in between)."""
    cache, _ = _cache()
    _put(cache, "c-1", at=NOW)
    assert cache.get("c-1", NOW) == {}
    assert cache.get("c-1", NOW - timedelta(milliseconds=1)) is None


def test_invalidate_drops_one_customer_and_discards_a_read_it_raced() -> None:
    """An invalidation forgets that customer only, and a read begun before it is not stored after it."""
    cache, _ = _cache()
    _put(cache, "c-1", LiveConsent("p", PROFILE, LATER))
    _put(cache, "c-2", LiveConsent("p", PROFILE, LATER))
    token = cache.token()  # a read of c-1 starts...
    cache.invalidate("c-1")  # ...a revocation commits and invalidates...
    cache.put("c-1", [LiveConsent("p", PROFILE, LATER)], NOW, token)  # ...the read finishes late
    assert cache.get("c-1", NOW) is None
    assert cache.get("c-2", NOW) == {"p": PROFILE}
    cache.clear()
    assert cache.get("c-2", NOW) is None


def test_entries_are_bounded_least_recently_used_first() -> None:
    """Past max_entries the customer looked up longest ago is evicted."""
    cache, _ = _cache(max_entries=2)
    _put(cache, "c-1")
    _put(cache, "c-2")
    assert cache.get("c-1", NOW) == {}  # c-1 is now the most recently used
    _put(cache, "c-3")
    assert len(cache) == 2
    assert cache.get("c-2", NOW) is None
    assert cache.get("c-1", NOW) == {}
    assert cache.get("c-3", NOW) == {}


def test_zero_disables_the_cache() -> None:
    """consent_cache_ms = 0 stores nothing and every lookup misses."""
    cache, _ = _cache(0)
    assert not cache.enabled
    _put(cache, "c-1", LiveConsent("p", PROFILE, LATER))
    assert cache.get("c-1", NOW) is None
    assert len(cache) == 0


@pytest.mark.parametrize("kwargs", [{"ttl_ms": -1}, {"ttl_ms": 1, "max_entries": 0}])
def test_nonsense_bounds_are_refused(kwargs: dict[str, int]) -> None:
    """A negative lifetime or an empty bound is a programming error, not a silent default."""
    with pytest.raises(ValueError):
        ConsentCache(**kwargs)


def test_consent_cache_ms_setting_is_validated() -> None:
    """The setting defaults to one second, allows 0 and refuses negative values."""
    import msgspec

    assert Settings().consent_cache_ms == 1000
    assert msgspec.convert({"consent_cache_ms": 0}, Settings).consent_cache_ms == 0
    with pytest.raises(msgspec.ValidationError, match="consent_cache_ms"):
        msgspec.convert({"consent_cache_ms": -1}, Settings)


# --- with ConsentStore and the database --------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every database read of live consents (the real read still happens)."""
    reads: list[str] = []
    real = ConsentStore._live

    def live(self: ConsentStore, customer_ref: str, at: datetime) -> list[LiveConsent]:
        reads.append(customer_ref)
        return real(self, customer_ref, at)

    monkeypatch.setattr(ConsentStore, "_live", live)
    return reads


def test_store_reads_through_the_cache(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store with a cache reads the table once while the entry is fresh, and again once it is stale."""
    cache, clock = _cache()
    ConsentStore(db).grant("c-cache-1", "p", PROFILE, "测试", LATER, now=NOW)
    reads = _counting(monkeypatch)
    store = ConsentStore(db, cache=cache)
    assert store.live_scopes("c-cache-1", now=NOW) == {"p": PROFILE}
    assert store.live_scopes("c-cache-1", now=NOW) == {"p": PROFILE}
    assert reads == ["c-cache-1"]
    clock.t += 1
    assert store.live_scopes("c-cache-1", now=NOW) == {"p": PROFILE}
    assert reads == ["c-cache-1", "c-cache-1"]


def test_every_store_write_invalidates_every_attached_cache(db: Database) -> None:
    """grant, request, authorise and revoke through any ConsentStore on the database drop the entry."""
    cache, _ = _cache(60_000)
    other, _ = _cache(60_000)
    attach(db, cache)
    attach(db, other)
    reader = ConsentStore(db, cache=cache)
    writer = ConsentStore(db)  # e.g. the OAuth flow's store: no cache of its own
    customer = "c-cache-2"

    assert reader.live_scopes(customer, now=NOW) == {}
    other.put(customer, [], NOW, other.token())
    consent_id = writer.grant(customer, "p", PROFILE, "测试", LATER, now=NOW)
    assert other.get(customer, NOW) is None
    assert reader.live_scopes(customer, now=NOW) == {"p": PROFILE}

    writer.revoke(consent_id, customer, now=NOW)
    assert reader.live_scopes(customer, now=NOW) == {}

    awaiting = writer.request(customer, "q", PROFILE, "测试", LATER, now=NOW)
    assert reader.live_scopes(customer, now=NOW) == {}  # awaiting is not live
    writer.authorise(awaiting, customer, now=NOW)
    assert reader.live_scopes(customer, now=NOW) == {"q": PROFILE}


def test_a_failed_write_still_invalidates(db: Database) -> None:
    """Invalidation sits in ``finally``: a refused transition cannot leave a stale entry behind."""
    cache, _ = _cache(60_000)
    attach(db, cache)
    _put(cache, "c-cache-3", LiveConsent("p", PROFILE, LATER))
    with pytest.raises(Exception, match="no consent"):
        ConsentStore(db).revoke("missing", "c-cache-3", now=NOW)
    assert cache.get("c-cache-3", NOW) is None


def test_invalidate_without_attached_caches_is_harmless(db: Database) -> None:
    """Writing consents on a database no host reads (demo seeding, a CLI) needs no cache."""
    invalidate(db, "nobody")


# --- the request path --------------------------------------------------------------------------------


@pytest.fixture
def plugins(settings: Settings, kit: Any) -> PluginSet:
    """One partner plugin asking for the customer's profile."""
    return get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[kit.plugin(PARTNER, kind="partner", scopes=["profile:basic"])],
    )


def _factory(settings: Settings, db: Database, plugins: PluginSet) -> ContextFactory:
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    return ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)


def test_needs_io_is_false_while_the_cache_is_fresh(
    settings: Settings, db: Database, plugins: PluginSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request reads consents (in a thread); the next one takes them from the cache, no read."""
    ConsentStore(db).grant(CUSTOMER, PARTNER, PROFILE, "测试", LATER, now=NOW)
    factory = _factory(settings, db, plugins)
    partner = [plugins.loaded[PARTNER]]
    reads = _counting(monkeypatch)

    first = factory.for_request(CUSTOMER, request_id="r-1", now=NOW)
    assert first.needs_io(partner)
    assert first.for_plugin(partner[0]).data.allows("profile:basic")

    second = factory.for_request(CUSTOMER, request_id="r-2", now=NOW)
    assert not second.needs_io(partner)
    assert second.for_plugin(partner[0]).data.allows("profile:basic")
    assert reads == [CUSTOMER]


def test_needs_io_stays_true_when_the_cache_is_disabled(
    settings: Settings, db: Database, plugins: PluginSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """consent_cache_ms = 0: every request reads consents, as before the cache."""
    import msgspec

    factory = _factory(msgspec.structs.replace(settings, consent_cache_ms=0), db, plugins)
    reads = _counting(monkeypatch)
    for n in range(2):
        contexts = factory.for_request(CUSTOMER, request_id=f"r-{n}", now=NOW)
        assert contexts.needs_io([plugins.loaded[PARTNER]])
        contexts.consents()
    assert reads == [CUSTOMER, CUSTOMER]


def test_a_failed_read_is_not_cached(
    settings: Settings, db: Database, plugins: PluginSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read failure means no consents for that request only; the next request reads again."""
    ConsentStore(db).grant(CUSTOMER, PARTNER, PROFILE, "测试", LATER, now=NOW)
    factory = _factory(settings, db, plugins)
    real = ConsentStore._live

    def down(self: ConsentStore, customer_ref: str, at: datetime) -> list[LiveConsent]:
        raise ConnectionError("database away")

    monkeypatch.setattr(ConsentStore, "_live", down)
    failed = factory.for_request(CUSTOMER, request_id="r-1", now=NOW)
    assert failed.consents() == {}
    assert len(factory.consent_cache) == 0

    monkeypatch.setattr(ConsentStore, "_live", real)
    again = factory.for_request(CUSTOMER, request_id="r-2", now=NOW)
    assert again.needs_io([plugins.loaded[PARTNER]])
    assert again.consents() == {PARTNER: PROFILE}


# --- over HTTP -----------------------------------------------------------------------------------------


def test_revoking_over_http_takes_effect_on_the_next_home_request(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a cache lifetime of ten minutes, DELETE /v1/consents/{id} still hides the partner's content
    from the very next /v1/home: the revocation drops the worker's entry; repeat requests read nothing."""

    def home_slot_offers(ctx: Any) -> list[Any]:
        try:
            ctx.data.profile()
        except ScopeDenied:
            return [kit.offer("home.notice", "denied")]
        return [kit.offer("home.notice", "allowed")]

    app = make_app(
        kit.plugin(
            PARTNER,
            kind="partner",
            scopes=["profile:basic", "slot:home.notice"],
            home_slot_offers=home_slot_offers,
        ),
        consent_cache_ms=600_000,
        # A plain function, run in a worker thread: a deadline a loaded machine cannot make it miss.
        deadlines=Deadlines(home_slot_offers=5_000), home_budget_ms=10_000,
    )

    def notice() -> list[str]:
        r = app.get("/v1/home")
        assert r.status_code == 200, r.text
        return [i["key"] for i in r.json()["slots"]["home.notice/v1"] if i["plugin"] == PARTNER]

    consent_id = ConsentStore(app.runtime.db).grant(
        CUSTOMER, PARTNER, PROFILE, "测试", datetime.now(UTC) + timedelta(days=1)
    )
    reads = _counting(monkeypatch)
    assert notice() == ["allowed"]
    assert notice() == ["allowed"]
    assert reads == [CUSTOMER]  # the second home page came from the cache

    r = app.client.delete(f"/v1/consents/{consent_id}", headers={"Authorization": f"Bearer {app.token()}"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked"
    assert notice() == ["denied"]
    assert reads == [CUSTOMER, CUSTOMER]


def test_a_transaction_reads_consents_fresh_even_while_a_revoked_one_is_cached(
    make_app: Any, kit: Any
) -> None:
    """Transactions always read fresh: a consent revoked by another worker (whose write cannot drop this
    worker's entry) no longer reaches a partner's execute_transaction, however long the cache lives."""
    import msgspec
    from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType

    class Params(msgspec.Struct, frozen=True):
        note: str

    def register_transaction_types(register: Any) -> None:
        register(TransactionType(
            key="partner.order", name=LocalizedText(zh_CN="下单"), description=LocalizedText(zh_CN="下单"),
            params=Params, amount_field=None, risk_level="R1",
        ))

    def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
        return TransactionResult(status="succeeded", data={"profile": ctx.data.allows("profile:basic")})

    app = make_app(
        kit.plugin(
            PARTNER, kind="partner", scopes=["profile:basic"], transaction_types=["partner.order"],
            register_transaction_types=register_transaction_types, execute_transaction=execute_transaction,
        ),
        consent_cache_ms=600_000,
    )

    def order(key: str) -> bool:
        r = app.client.post(
            "/v1/transactions", json={"type": "partner.order", "params": {"note": key}},
            headers={"Authorization": f"Bearer {app.token()}", "Idempotency-Key": key},
        )
        assert r.status_code == 201, r.text
        return bool(r.json()["result"]["data"]["profile"])

    consent_id = ConsentStore(app.runtime.db).grant(
        CUSTOMER, PARTNER, PROFILE, "测试", datetime.now(UTC) + timedelta(days=1)
    )
    # A display request fills this worker's cache with the live consent.
    contexts = app.runtime.contexts.for_request(CUSTOMER, request_id="warm")
    assert contexts.consents() == {PARTNER: PROFILE}
    assert order("k-1") is True

    other_worker = Database(app.runtime.db.url)  # its writes cannot reach this worker's cache
    ConsentStore(other_worker).revoke(consent_id, CUSTOMER)
    other_worker.dispose()
    assert app.runtime.contexts.consent_cache.get(CUSTOMER, datetime.now(UTC)) == {PARTNER: PROFILE}
    assert order("k-2") is False
