"""ScopedData: every accessor checks the grant, and for partners the customer's live consent."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
from fulcrum_sdk.context import CustomerRecords, ScopedData
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.errors import REQUEST_ENDED, DataUnavailable, ScopeDenied
from fulcrum_sdk.testing import PERSONAS

RECORD = PERSONAS["affluent"]
ACCESSORS = {
    "profile": "profile:basic",
    "risk": "profile:risk",
    "accounts": "accounts:read",
    "holdings": "holdings:read",
    "pension": "pension:read",
    "city": "location:city",
}


class _CountingProvider(StaticDataProvider):
    """Counts calls per method, to prove each accessor fetches at most once."""

    def __init__(self) -> None:
        super().__init__({RECORD.id: RECORD})
        self.calls: list[str] = []

    def holdings(self, customer_id: str) -> Any:
        self.calls.append("holdings")
        return super().holdings(customer_id)


def _data(
    granted: set[str],
    *,
    partner: bool = False,
    consented: set[str] | frozenset[str] = frozenset(),
    provider: Any = None,
) -> ScopedData:
    return ScopedData(
        plugin_id="demo",
        provider=provider or StaticDataProvider({RECORD.id: RECORD}),
        customer_ref=RECORD.id,
        granted=frozenset(granted),
        consent_required=partner,
        consented=frozenset(consented),
    )


@pytest.mark.parametrize(("accessor", "scope"), list(ACCESSORS.items()))
def test_each_accessor_needs_its_scope(accessor: str, scope: str) -> None:
    """Without the scope the accessor raises ScopeDenied naming it; with it, the data comes back."""
    with pytest.raises(ScopeDenied) as info:
        getattr(_data(set(ACCESSORS.values()) - {scope}), accessor)()
    assert info.value.scope == scope
    assert info.value.plugin_id == "demo"
    assert scope in str(info.value)
    assert getattr(_data({scope}), accessor)() == getattr(RECORD, accessor)


def test_partner_needs_consent_for_customer_data() -> None:
    """A partner granted a customer-data scope still needs the customer's consent to use it."""
    data = _data({"holdings:read", "slot:home.banner"}, partner=True)
    with pytest.raises(ScopeDenied) as info:
        data.holdings()
    assert info.value.reason == "no live consent"
    assert "consented to by the customer" in str(info.value)
    assert not data.allows("holdings:read")
    assert data.allows("slot:home.banner")  # placement scopes are not customer data


def test_partner_with_consent_reads_only_consented_scopes() -> None:
    """Consent unlocks exactly the consented scopes, never an ungranted one."""
    data = _data(
        {"holdings:read", "profile:basic"}, partner=True, consented={"holdings:read", "pension:read"}
    )
    assert data.holdings() == RECORD.holdings
    with pytest.raises(ScopeDenied, match="profile:basic"):
        data.profile()
    with pytest.raises(ScopeDenied, match="not granted"):
        data.pension()


def test_department_plugins_need_no_consent() -> None:
    """Consent applies only when consent_required is set (partner plugins)."""
    assert _data({"holdings:read"}).holdings() == RECORD.holdings


def test_accessors_fetch_at_most_once_per_context() -> None:
    """Repeated calls reuse the first answer instead of asking the bank's systems again."""
    provider = _CountingProvider()
    data = _data({"holdings:read"}, provider=provider)
    assert data.holdings() is data.holdings()
    assert provider.calls == ["holdings"]


def test_plugins_in_one_request_share_fetches_but_not_grants() -> None:
    """Views over one request's records fetch each record once for all plugins, and each view still
    checks its own plugin's grant and consent: a record another plugin fetched is no loophole."""
    provider = _CountingProvider()
    records = CustomerRecords(provider, RECORD.id)
    reader = ScopedData.over(records, "reader", frozenset({"holdings:read"}), None)
    other = ScopedData.over(records, "other", frozenset({"holdings:read"}), None)
    stranger = ScopedData.over(records, "stranger", frozenset({"profile:basic"}), None)
    partner = ScopedData.over(records, "partner", frozenset({"holdings:read"}), frozenset())
    assert reader.holdings() is other.holdings() is RECORD.holdings
    assert provider.calls == ["holdings"]
    with pytest.raises(ScopeDenied) as denied:
        stranger.holdings()
    assert denied.value.plugin_id == "stranger"
    with pytest.raises(ScopeDenied, match="no live consent"):
        partner.holdings()


def test_unknown_customer_yields_none() -> None:
    """A customer the provider does not know gives None, not an error."""
    data = ScopedData(
        plugin_id="demo",
        provider=StaticDataProvider({}),
        customer_ref="ghost",
        granted=frozenset({"profile:basic"}),
    )
    assert data.profile() is None


def test_require_and_allows_agree() -> None:
    """allows() is True exactly when require() does not raise."""
    data = _data({"profile:basic", "holdings:read"}, partner=True, consented={"profile:basic"})
    for scope in [*ACCESSORS.values(), "slot:home.popup"]:
        try:
            data.require(scope)
            raised = False
        except ScopeDenied:
            raised = True
        assert data.allows(scope) is not raised, scope


def test_allows_does_not_answer_for_consents_that_could_not_be_read() -> None:
    """When the customer's consents could not be read for this request, ``allows`` raises
    ``DataUnavailable`` for customer data it would need consent to (the customer may have consented:
    "no" would be a wrong answer), as the accessor does; what needs no consent is answered as ever."""
    records = CustomerRecords(StaticDataProvider({RECORD.id: RECORD}), RECORD.id)
    granted = frozenset({"profile:basic", "location:city", "slot:home.banner"})
    data = ScopedData.over(records, "demo", granted, frozenset(), consent_unknown=True)
    for scope in ("profile:basic", "location:city"):
        with pytest.raises(DataUnavailable):
            data.allows(scope)
        with pytest.raises(DataUnavailable):
            data.require(scope)
    assert data.allows("slot:home.banner")
    assert not data.allows("holdings:read")  # not granted: no consent could change that
    assert data.access("location:city") == "unknown"
    assert data.access("holdings:read") == "denied"
    assert data.access("slot:home.banner") == "allowed"
    known = ScopedData(plugin_id="demo", provider=StaticDataProvider({RECORD.id: RECORD}),
                       customer_ref=RECORD.id,
                       granted=granted, consent_required=True, consent_unknown=True)
    with pytest.raises(DataUnavailable):
        known.allows("location:city")


@pytest.mark.parametrize(("accessor", "scope"), ACCESSORS.items())
def test_closed_records_refuse_every_accessor_and_forget_what_was_read(accessor: str, scope: str) -> None:
    """After ``CustomerRecords.close`` (the host ends the request) nothing is read or answered from
    memory, granted or not, and ``access``/``allows`` say so."""
    provider = _CountingProvider()
    records = CustomerRecords(provider, RECORD.id)
    data = ScopedData.over(records, "p", frozenset(ACCESSORS.values()), None)
    data.holdings()
    records.close()
    with pytest.raises(ScopeDenied) as denied:
        getattr(data, accessor)()
    assert (denied.value.scope, denied.value.reason) == (scope, REQUEST_ENDED)
    assert data.access(scope) == "denied"
    assert data.allows(scope) is False
    assert provider.calls == ["holdings"]  # read once during the request, never again


def test_views_alike_but_for_one_consent_or_plugin_answer_each_for_their_own() -> None:
    """What a grant and consents allow is worked out once and reused: a view whose customer consented
    to fewer scopes, whose consents are unknown, or that belongs to another plugin granted the same
    scopes still answers for its own plugin and consents, in any order they are made and read."""
    granted = frozenset({"holdings:read", "profile:basic"})
    records = CustomerRecords(StaticDataProvider({RECORD.id: RECORD}), RECORD.id)
    wide = ScopedData.over(records, "partner", granted, frozenset({"holdings:read", "profile:basic"}))
    narrow = ScopedData.over(records, "partner", granted, frozenset({"profile:basic"}))
    unknown = ScopedData.over(records, "partner", granted, frozenset({"profile:basic"}), consent_unknown=True)
    other = ScopedData.over(records, "other", granted, frozenset({"profile:basic"}))
    internal = ScopedData.over(records, "partner", granted, None)
    for _ in range(2):  # made once; asked again, each view still answers for its own
        assert wide.holdings() is RECORD.holdings
        with pytest.raises(ScopeDenied) as denied:
            narrow.holdings()
        assert (denied.value.plugin_id, denied.value.reason) == ("partner", "no live consent")
        with pytest.raises(DataUnavailable):
            unknown.holdings()
        with pytest.raises(ScopeDenied) as denied:
            other.holdings()
        assert denied.value.plugin_id == "other"
        assert internal.holdings() is RECORD.holdings
        assert [v.access("holdings:read") for v in (wide, narrow, unknown, other, internal)] == [
            "allowed", "denied", "unknown", "denied", "allowed"
        ]


def test_what_a_view_was_handed_is_not_kept_once_the_view_is_gone() -> None:
    """What a grant allows is kept for the next view, but not the host's object a view was handed (its
    account-id mapping, a method of the host's): with the view gone it is freed, not held by the SDK
    for the life of the process (a stopped host, and its database, with it)."""

    class Mapping:
        def __call__(self, plugin_id: str, customer_ref: str, account_id: str) -> str:
            return f"{plugin_id}/{account_id}"

    mapping = Mapping()
    records = CustomerRecords(StaticDataProvider({RECORD.id: RECORD}), RECORD.id)
    view = ScopedData.over(
        records, "partner", frozenset({"accounts:read"}), frozenset({"accounts:read"}), account_ids=mapping
    )
    accounts = view.accounts()
    assert accounts is not None
    assert RECORD.accounts is not None
    assert [a.id for a in accounts.items] == [f"partner/{a.id}" for a in RECORD.accounts.items]
    held = weakref.ref(mapping)
    del view, mapping, accounts
    gc.collect()
    assert held() is None


def test_the_constructor_takes_the_grant_and_consents_as_any_set() -> None:
    """A plugin's own test may hand ``ScopedData(...)`` plain sets (its signature says frozensets): the
    view answers from them as from frozensets, and changing the sets afterwards opens nothing."""
    granted, consented = {"holdings:read", "profile:basic"}, {"holdings:read"}
    data = ScopedData(
        plugin_id="demo", provider=StaticDataProvider({RECORD.id: RECORD}), customer_ref=RECORD.id,
        granted=granted, consent_required=True, consented=consented,  # type: ignore[arg-type]
    )
    granted.add("pension:read")
    consented.update({"profile:basic", "pension:read"})
    assert data.holdings() == RECORD.holdings
    with pytest.raises(ScopeDenied, match="no live consent"):
        data.profile()
    with pytest.raises(ScopeDenied, match="not granted"):
        data.pension()
