"""Per-request plugin contexts: customer view, pairwise ids, consent for partners, storage, time.

The database is the shared ``db`` fixture: SQLite, and PostgreSQL when it is configured.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.storage_handle import StorageHandle
from fulcrum_core.dispatch.context import PAIRWISE_KEY_FILE, ContextFactory, partner_request_id
from fulcrum_core.errors import Forbidden
from fulcrum_core.plugins import PluginSet, get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk.context import DEFAULT_LOCALE
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.errors import DataUnavailable, ScopeDenied
from fulcrum_sdk.scopes import SCOPES
from fulcrum_sdk.testing import PERSONAS

CUSTOMER = "synthetic-affluent"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def plugins(settings: Settings, kit: Any) -> PluginSet:
    """One department plugin and one partner plugin asking for profile and holdings."""
    scopes = ["profile:basic", "holdings:read", "search:contribute"]
    return get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin("dept", scopes=scopes, search=lambda ctx, query: []),
            kit.plugin("partner", kind="partner", scopes=scopes, search=lambda ctx, query: []),
        ],
    )


def _factory(settings: Settings, db: Any, plugins: PluginSet) -> ContextFactory:
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    return ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)


def test_department_plugin_sees_the_bank_customer(settings: Settings, db: Any, plugins: PluginSet) -> None:
    """A department plugin's context carries the customer number, its grant, storage and request time."""
    contexts = _factory(settings, db, plugins).for_request(CUSTOMER, request_id="r-1", now=NOW)
    assert contexts.customer.id == CUSTOMER
    assert contexts.customer.segment == "affluent"
    ctx = contexts.for_plugin(plugins.loaded["dept"])
    assert ctx.customer == contexts.customer
    assert ctx.scopes == plugins.loaded["dept"].granted
    assert ctx.now == NOW
    assert ctx.request_id == "r-1"
    assert isinstance(ctx.storage, StorageHandle)  # the operations of its storage, not the storage
    assert ctx.storage.plugin_id == "dept"
    assert ctx.data.holdings() is not None
    with pytest.raises(ScopeDenied, match="pension:read"):
        ctx.data.pension()
    assert contexts.for_plugin(plugins.loaded["dept"]) is ctx  # built once per request


def test_partner_gets_a_pairwise_id_and_needs_consent(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """A partner sees an HMAC pairwise id, no segment/branch and no data without live consent."""
    contexts = _factory(settings, db, plugins).for_request(CUSTOMER, request_id="r-1", now=NOW)
    ctx = contexts.for_plugin(plugins.loaded["partner"])
    expected = hmac.new(b"test-pairwise-secret", f"partner:{CUSTOMER}".encode(), hashlib.sha256).hexdigest()
    assert ctx.customer.id == expected
    assert CUSTOMER not in ctx.customer.id
    assert (ctx.customer.segment, ctx.customer.branch) == ("", "")
    with pytest.raises(ScopeDenied, match="no live consent"):
        ctx.data.holdings()
    assert ctx.has_scope("search:contribute")  # placement scopes need no consent


def test_partner_with_live_consent_reads_consented_scopes_only(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """A live consent unlocks exactly the consented scopes and the customer's segment and branch."""
    ConsentStore(db).grant(
        CUSTOMER, "partner", ["profile:basic"], "个性化推荐", NOW + timedelta(days=30), now=NOW
    )
    contexts = _factory(settings, db, plugins).for_request(CUSTOMER, request_id="r-1", now=NOW)
    ctx = contexts.for_plugin(plugins.loaded["partner"])
    assert ctx.customer.segment == "affluent"
    assert ctx.customer.branch == "0755"
    assert ctx.data.profile() is not None
    with pytest.raises(ScopeDenied, match="holdings:read"):
        ctx.data.holdings()


def test_the_customers_locale_is_profile_basic_data(settings: Settings, db: Any, kit: Any) -> None:
    """The customer's language is shown, as segment and branch are, only to a plugin that may read
    profile:basic; the others see the platform's default locale."""
    english = {
        r.id: msgspec.structs.replace(r, profile=msgspec.structs.replace(r.profile, locale="en"))
        for r in PERSONAS.values()
    }
    plugins = get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin(pid, kind=kind, scopes=scopes, search=lambda ctx, query: [])
            for pid, kind, scopes in (
                ("dept", "department", ["profile:basic", "search:contribute"]),
                ("dept-blind", "department", ["search:contribute"]),
                ("partner", "partner", ["profile:basic", "search:contribute"]),
                ("partner-unasked", "partner", ["profile:basic", "search:contribute"]),
            )
        ],
    )
    factory = ContextFactory(
        settings=settings, db=db, provider=StaticDataProvider(english), plugins=plugins
    )
    ConsentStore(db).grant(
        CUSTOMER, "partner", ["profile:basic"], "个性化推荐", NOW + timedelta(days=30), now=NOW
    )
    contexts = factory.for_request(CUSTOMER, request_id="r-1", now=NOW)
    contexts.consents()
    seen = {pid: contexts.for_plugin(plugins.loaded[pid]).customer.locale for pid in plugins.loaded}
    assert seen == {
        "dept": "en", "dept-blind": DEFAULT_LOCALE, "partner": "en", "partner-unasked": DEFAULT_LOCALE
    }
    again = factory.for_request(CUSTOMER, request_id="r-2", now=NOW)
    again.consents()
    assert {pid: again.customer_seen_by(pid).locale for pid in plugins.loaded} == seen  # targeting's view
    assert again.customer_seen_by("not-loaded").locale == DEFAULT_LOCALE


def test_consents_are_read_once_and_only_for_partners(
    settings: Settings, db: Any, plugins: PluginSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consent table is read lazily: not for department plugins, once for any number of partners."""
    reads: list[str] = []
    monkeypatch.setattr(ConsentStore, "live_scopes", lambda self, ref, now=None: reads.append(ref) or {})
    contexts = _factory(settings, db, plugins).for_request(CUSTOMER, request_id="r-1", now=NOW)
    assert not contexts.needs_io([plugins.loaded["dept"]])
    contexts.for_plugin(plugins.loaded["dept"])
    assert reads == []
    assert contexts.needs_io([plugins.loaded["dept"], plugins.loaded["partner"]])
    contexts.for_plugin(plugins.loaded["partner"])
    contexts.consents()
    assert reads == [CUSTOMER]
    assert not contexts.needs_io([plugins.loaded["partner"]])


def test_failed_consent_read_fails_closed(
    settings: Settings, db: Any, plugins: PluginSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When consents cannot be read, a partner gets no customer data (and the request goes on)."""

    def down(self: Any, ref: str, now: Any = None) -> Any:
        raise ConnectionError("database away")

    monkeypatch.setattr(ConsentStore, "live_scopes", down)
    ctx = (
        _factory(settings, db, plugins)
        .for_request(CUSTOMER, request_id="r")
        .for_plugin(plugins.loaded["partner"])
    )
    with pytest.raises(DataUnavailable):  # unknown, not "no": the customer may have consented
        ctx.data.allows("profile:basic")
    assert ctx.customer.segment == ""  # nothing of the profile is shown while consent is unknown


def test_unknown_customer_is_forbidden(settings: Settings, db: Any, plugins: PluginSet) -> None:
    """A subject the bank has no profile for cannot get contexts."""
    with pytest.raises(Forbidden):
        _factory(settings, db, plugins).for_request("nobody", request_id="r")


def test_pairwise_secret_is_generated_once_with_private_permissions(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """Without a configured secret one is created in state_dir (0600) and reused by later factories."""
    conf = msgspec.structs.replace(settings, pairwise_secret=None)
    first = _factory(conf, db, plugins).pairwise_id("partner", CUSTOMER)
    key = Path(conf.state_dir) / PAIRWISE_KEY_FILE
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert _factory(conf, db, plugins).pairwise_id("partner", CUSTOMER) == first
    assert _factory(conf, db, plugins).pairwise_id("other", CUSTOMER) != first
    assert [p.name for p in key.parent.iterdir()] == [PAIRWISE_KEY_FILE]  # no temporary file left


def test_empty_pairwise_key_file_is_refused(settings: Settings, db: Any, plugins: PluginSet) -> None:
    """An empty key file is an operator error named with its path, never a silent empty secret."""
    conf = msgspec.structs.replace(settings, pairwise_secret=None)
    Path(conf.state_dir).mkdir(parents=True)
    (Path(conf.state_dir) / PAIRWISE_KEY_FILE).write_text("")
    with pytest.raises(RuntimeError, match=PAIRWISE_KEY_FILE):
        _factory(conf, db, plugins).pairwise_id("partner", CUSTOMER)


def test_partners_in_one_request_see_request_ids_of_their_own(settings: Settings, db: Any, kit: Any) -> None:
    """The request id is no join key between partners: each partner sees its own (stable, derivable by
    the host from its log's id), internal plugins see the host's, and no partner sees the host's."""
    scopes = ["search:contribute"]
    plugins = get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin("dept", scopes=scopes, search=lambda ctx, query: []),
            kit.plugin("partner-a", kind="partner", scopes=scopes, search=lambda ctx, query: []),
            kit.plugin("partner-b", kind="partner", scopes=scopes, search=lambda ctx, query: []),
        ],
    )
    factory = _factory(settings, db, plugins)
    seen = {}
    for request_id in ("req-1", "req-2"):
        contexts = factory.for_request(CUSTOMER, request_id=request_id, now=NOW)
        for pid in ("dept", "partner-a", "partner-b"):
            seen[pid, request_id] = contexts.for_plugin(plugins.loaded[pid]).request_id
    assert seen["dept", "req-1"] == "req-1"
    partners = [seen[pid, rid] for pid in ("partner-a", "partner-b") for rid in ("req-1", "req-2")]
    assert len(set(partners)) == 4
    assert not {"req-1", "req-2"} & set(partners)
    assert seen["partner-a", "req-1"] == factory.partner_request_id("partner-a", "req-1")
    again = factory.for_request(CUSTOMER, request_id="req-1", now=NOW).for_plugin(plugins.loaded["partner-a"])
    assert again.request_id == seen["partner-a", "req-1"]
    assert factory.partner_request_id("partner-a", "") == ""


def test_a_partners_request_id_is_what_the_support_tools_compute(
    settings: Settings, db: Any, plugins: PluginSet
) -> None:
    """The host's id for a partner, however it is computed per request, is the documented HMAC the
    support tools compute from the secret alone, for every plugin and request, asked again or not."""
    made = _factory(settings, db, plugins)
    # The secret a host makes itself (64 bytes, one SHA-256 block), and ones set in the settings: shorter,
    # one byte short of a block, longer than a block (hashed first), not ASCII.
    given = ["k", "k" * 63, "k" * 64, "k" * 65, "k" * 200, "密钥-🔑"]
    factories = [made] + [
        _factory(msgspec.structs.replace(settings, pairwise_secret=secret), db, plugins) for secret in given
    ]
    for factory in factories:
        secret = factory._pairwise_secret()
        for _ in range(2):
            for pid in ("partner", "dept", "partner-with-a-longer-id", "p" * 80):
                for request_id in ("req-1", "req-2", "r" * 64, "r" * 65, "请求-1"):
                    expected = partner_request_id(secret, pid, request_id)
                    assert factory.partner_request_id(pid, request_id) == expected, (secret, pid, request_id)


def _view(ctx: Any) -> tuple[Any, ...]:
    """Everything a context gives its plugin, its data view by what each scope allows."""
    fields = [getattr(ctx, f) for f in ctx.__struct_fields__ if f != "data"]
    return (*fields, tuple(ctx.data.access(scope) for scope in sorted(SCOPES)))


def test_a_pages_contexts_are_the_ones_each_plugin_gets_alone(settings: Settings, db: Any, kit: Any) -> None:
    """``for_plugins`` (a whole page at once) gives every plugin the context ``for_plugin`` gives it: an
    internal plugin with and without ``profile:basic``, and a partner (pairwise id, consent, its own
    request id and time), each built once per request."""
    scopes = ["search:contribute", "holdings:read"]
    plugins = get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin("dept", scopes=[*scopes, "profile:basic"], search=lambda ctx, query: []),
            kit.plugin("dept-plain", scopes=scopes, search=lambda ctx, query: []),
            kit.plugin(
                "partner", kind="partner", scopes=[*scopes, "profile:basic"], search=lambda ctx, query: []
            ),
        ],
    )
    factory = _factory(settings, db, plugins)
    ConsentStore(db).grant(CUSTOMER, "partner", ["profile:basic"], "推荐", NOW + timedelta(days=30), now=NOW)
    exact = NOW.replace(microsecond=123_456)
    page = factory.for_request(CUSTOMER, request_id="r-1", now=exact)
    together = page.for_plugins(list(plugins.loaded.values()))
    alone = factory.for_request(CUSTOMER, request_id="r-1", now=exact)
    assert [p.id for p, _ in together] == ["dept", "dept-plain", "partner"]
    for plugin, ctx in together:
        assert _view(ctx) == _view(alone.for_plugin(plugin)), plugin.id
        assert page.for_plugin(plugin) is ctx  # built once per request
    assert [c for _, c in page.for_plugins(list(plugins.loaded.values()))] == [c for _, c in together]


def test_partners_see_the_request_time_to_the_second(settings: Settings, db: Any, kit: Any) -> None:
    """The exact instant of a request is shared by every plugin it calls: partners get it to the second,
    so it is no join key between them; internal plugins, and the transaction path, keep it exact."""
    scopes = ["search:contribute"]
    plugins = get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin("dept", scopes=scopes, search=lambda ctx, query: []),
            kit.plugin("partner", kind="partner", scopes=scopes, search=lambda ctx, query: []),
        ],
    )
    factory = _factory(settings, db, plugins)
    exact = NOW.replace(microsecond=123_456)
    contexts = factory.for_request(CUSTOMER, request_id="r", now=exact)
    assert contexts.for_plugin(plugins.loaded["dept"]).now == exact
    assert contexts.for_plugin(plugins.loaded["partner"]).now == exact.replace(microsecond=0)
    fresh = factory.for_request(CUSTOMER, request_id="r", now=exact, fresh=True)
    assert fresh.for_plugin(plugins.loaded["partner"]).now == exact


def test_an_internal_plugin_without_profile_basic_sees_no_segment_or_branch(
    settings: Settings, db: Any, kit: Any
) -> None:
    """``profile:basic`` is the segment, branch and locale: a department plugin the registry did not
    grant it sees the customer number and locale only, like a partner without it, and the host reads
    its targeting against that view; one granted it sees all."""
    plugins = get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin("plain", scopes=["search:contribute"], search=lambda ctx, query: []),
            kit.plugin("basic", scopes=["profile:basic", "search:contribute"], search=lambda ctx, query: []),
        ],
    )
    contexts = _factory(settings, db, plugins).for_request(CUSTOMER, request_id="r-1", now=NOW)
    plain = contexts.for_plugin(plugins.loaded["plain"]).customer
    assert (plain.id, plain.segment, plain.branch, plain.locale) == (CUSTOMER, "", "", "zh-CN")
    assert contexts.customer_seen_by("plain") == plain
    basic = contexts.for_plugin(plugins.loaded["basic"]).customer
    assert basic == contexts.customer
    assert (basic.segment, basic.branch) == ("affluent", "0755")


def test_the_customer_seen_by_a_plugin_without_a_context_here(settings: Settings, db: Any, kit: Any) -> None:
    """A plugin given no context in the request (its campaigns) is judged by the customer its context
    would show: no segment or branch without ``profile:basic``, and none for a plugin not loaded."""
    plugins = get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin("plain", scopes=["slot:home.banner"], home_slot_campaigns=lambda ctx: []),
            kit.plugin(
                "basic", scopes=["profile:basic", "slot:home.banner"], home_slot_campaigns=lambda ctx: []
            ),
        ],
    )
    contexts = _factory(settings, db, plugins).for_request(CUSTOMER, request_id="r-1", now=NOW)
    plain = contexts.customer_seen_by("plain")
    assert (plain.id, plain.segment, plain.branch, plain.locale) == (CUSTOMER, "", "", "zh-CN")
    assert contexts.customer_seen_by("basic") == contexts.customer
    assert contexts.customer_seen_by("not-loaded").segment == ""
