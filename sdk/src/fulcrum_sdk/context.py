"""The context a hook receives: who the customer is, and data guarded by the plugin's scopes.

Every :class:`ScopedData` accessor checks the scope first and raises
:class:`~fulcrum_sdk.errors.ScopeDenied` naming it; for partner plugins a customer-data scope also
needs the customer's live consent. The host builds one context per plugin per request.
:class:`AudienceContext` is the other kind: no customer at all, for
:func:`~fulcrum_sdk.hookspecs.home_slot_campaigns`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Final, Literal, TypeVar

import msgspec

from fulcrum_sdk.data import Accounts, City, DataProvider, Holdings, PensionAccounts, Profile, RiskProfile
from fulcrum_sdk.errors import NO_CONSENT, REQUEST_ENDED, ScopeDenied, _host_unavailable
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES
from fulcrum_sdk.storage import PluginStorage

__all__ = [
    "DEFAULT_LOCALE", "RECORD_OF_SCOPE", "AccountIds", "AudienceContext", "Customer", "CustomerRecords",
    "PluginContext", "ScopedData",
]

_T = TypeVar("_T")

_log = logging.getLogger("fulcrum.data")

AccountIds = Callable[[str, str, str], str]
"""``(plugin_id, customer_ref, account_id) -> id``: the id under which a plugin sees one of the bank's
accounts of a customer (a partner's pairwise account id; the host supplies it)."""


DEFAULT_LOCALE: Final = "zh-CN"
"""The locale a plugin sees when it may not read the customer's own (``profile:basic``)."""


class Customer(msgspec.Struct, frozen=True, kw_only=True):
    """The customer in front of the app. ``id`` is pairwise-pseudonymous for partner plugins;
    ``segment`` and ``branch`` are empty, and ``locale`` is :data:`DEFAULT_LOCALE`, unless the plugin
    may read ``profile:basic`` (granted, and for a partner consented to)."""

    id: str
    segment: str
    branch: str
    locale: str = DEFAULT_LOCALE


RECORD_OF_SCOPE: dict[str, str] = {
    "profile:basic": "profile",
    "profile:risk": "risk",
    "accounts:read": "accounts",
    "holdings:read": "holdings",
    "pension:read": "pension",
    "location:city": "city",
}
"""Each customer-data scope, and the record (``DataProvider`` method) it opens."""


class CustomerRecords:
    """One request's records of one customer, fetched from the bank at most once each.

    Shared by the :class:`ScopedData` of every plugin in the request: the scope checks stay per
    plugin, the fetching is not repeated (the records are frozen, so no plugin can change another's).
    For a provider that does I/O the host calls :meth:`prefetch` in a worker thread and then
    :meth:`seal`: from then on a record that did not arrive raises :class:`DataUnavailable` instead of
    being fetched on the caller's thread (the event loop). When the request ends the host calls
    :meth:`close`: a context a plugin kept then reads nothing more (the consents and grant it was
    checked against are no longer current).
    """

    __slots__ = ("_cache", "_sealed", "closed", "customer_ref", "provider")

    def __init__(self, provider: DataProvider, customer_ref: str) -> None:
        self.provider = provider
        self.customer_ref = customer_ref
        self._cache: dict[str, object] = {}
        self._sealed = False
        self.closed = False

    def get(self, name: str, fetch: Callable[[str], _T | None]) -> _T | None:
        """The record ``name``, fetched with ``fetch(customer_ref)`` on first use."""
        cache = self._cache
        if name not in cache:
            if self._sealed:
                raise _host_unavailable(name)
            cache[name] = fetch(self.customer_ref)
        return cache[name]  # type: ignore[return-value]

    def prefetch(self, names: Iterable[str]) -> None:
        """:meth:`fetch` each of ``names``, one after another (a worker thread's job)."""
        for name in names:
            self.fetch(name)

    def fetch(self, name: str) -> None:
        """Read record ``name`` (see :data:`RECORD_OF_SCOPE`) unless already read or sealed; one that
        fails is left out, and is unavailable once sealed. Blocks: call it from a worker thread."""
        if name in self._cache or self._sealed:
            return
        try:
            value = getattr(self.provider, name)(self.customer_ref)
        except Exception as exc:
            _log.warning("could not read the customer's %s from the bank: %r", name, exc)
            return
        if not self._sealed:  # a read that finished after the seal stays out: one answer per request
            self._cache.setdefault(name, value)

    def put(self, name: str, value: object) -> None:
        """Record ``name`` read by the host already (the profile that identified the customer)."""
        self._cache.setdefault(name, value)

    def has(self, name: str) -> bool:
        """True when record ``name`` was read for this request."""
        return name in self._cache

    def seal(self) -> None:
        """No more fetching: a record not fetched by now raises :class:`DataUnavailable`."""
        self._sealed = True

    def close(self) -> None:
        """The request is over: every accessor of every context over these records now raises
        :class:`ScopeDenied` (reason :data:`~fulcrum_sdk.errors.REQUEST_ENDED`), and the records
        read are dropped."""
        self.closed = True
        self._sealed = True
        self._cache = {}


class ScopedData:
    """Customer data for one plugin and one request, behind scope (and consent) checks.

    Each record is fetched at most once per request; a missing record is ``None``.

    The request's records, the bank's provider, the grant and the customer's consents are held by the
    one function the host binds (:meth:`over`), not as attributes: following or setting this object's
    attributes reaches no other customer, no record another plugin read, and for a partner not the
    bank's customer number, and opens nothing the grant and the consents do not.
    """

    __slots__ = ("_gate",)

    _gate: Callable[[str | None, str], object]

    def __init__(
        self,
        *,
        plugin_id: str,
        provider: DataProvider,
        customer_ref: str,
        granted: frozenset[str],
        consent_required: bool = False,
        consented: frozenset[str] = frozenset(),
        consent_unknown: bool = False,
    ) -> None:
        # consented None: no consent needed (an internal plugin); else the scopes the customer consented to.
        # Frozen here: a caller's own sets (a plugin's test) change nothing afterwards, and key the memo.
        self._gate = ScopedData.over(
            CustomerRecords(provider, customer_ref), plugin_id, frozenset(granted),
            frozenset(consented) if consent_required else None, consent_unknown=consent_unknown,
        )._gate

    @classmethod
    def over(
        cls,
        records: CustomerRecords,
        plugin_id: str,
        granted: frozenset[str],
        consented: frozenset[str] | None,
        *,
        consent_unknown: bool = False,
        account_ids: AccountIds | None = None,
    ) -> ScopedData:
        """A plugin's view of ``records`` (the host's per-request constructor); ``consented`` is
        ``None`` when the plugin needs no consent, else the scopes the customer consented to.

        ``account_ids``: how this plugin sees the bank's account ids (a partner: pairwise ids, so it
        never sees the bank's, which name the customer); ``None``: as they are (an internal plugin).

        ``consent_unknown``: the customer's consents could not be read for this request; customer
        data beyond ``consented`` is then not allowed, and reading it raises :class:`DataUnavailable`
        (the plugin is left out of this response, not blamed) instead of :class:`ScopeDenied`.
        """
        key = (plugin_id, granted, consented, consent_unknown)
        grant = _GRANTS.get(key)
        if grant is None:
            grant = _Grant.of(key)

        # The view's gate, closed over the request's records, what the grant and the consents allow
        # (worked out once per plugin, grant and consents, not per request) and the account-id mapping
        # (the host's, never kept in that memo): ``gate(name, scope)``
        # raises unless ``scope`` is usable now and returns record ``name`` (``None``: the check alone;
        # ``_ACCESS``: what :meth:`access` answers). Whatever a plugin passes it, it answers only for
        # this plugin's grant and consents and this request's customer, and hands out no record
        # ``scope`` does not open.
        def gate(name: str | None, scope: str) -> object:
            # The text, never a plugin's str subclass: its own __hash__ and __eq__ would answer the
            # lookups below (one scope allowed, another's record), and anything else is no scope or record.
            if type(scope) is not str:
                scope = _text(scope)
            if name is not None and type(name) is not str:
                name = _text(name)
            opened = grant.opens.get(scope)  # the record an allowed scope opens; None: not allowed
            if opened is None or records.closed:
                return grant.refuse(name, scope, records.closed)
            if name == opened:  # a plain str, the name of the record the scope opens
                cache = records._cache
                # A record read before (by any plugin of the request) is the common answer.
                found = cache[name] if name in cache else records.get(
                    name, getattr(records.provider, name)  # type: ignore[arg-type]
                )
                if name == "accounts" and account_ids is not None and isinstance(found, Accounts):
                    return grant.seen_accounts(records, found, account_ids)
                return found
            if name is None:
                return None
            if name == _ACCESS:
                return "allowed"
            raise ScopeDenied(scope, plugin_id=grant.plugin_id, reason=f"does not open the record {name!r}")

        data = _new(cls)
        data._gate = gate
        return data

    def access(self, scope: str) -> Literal["allowed", "denied", "unknown"]:
        """What an accessor guarded by ``scope`` would do now: succeed (``allowed``), raise
        :class:`ScopeDenied` (``denied``), or raise :class:`DataUnavailable` (``unknown``: it needs the
        customer's consent, and their consents could not be read for this request). For the host and
        tools; a plugin asks :meth:`allows`. Everything is ``denied`` once the request has ended."""
        return self._gate(_ACCESS, scope)  # type: ignore[return-value]

    def allows(self, scope: str) -> bool:
        """True when an accessor guarded by ``scope`` would succeed, False when it would raise
        :class:`ScopeDenied` (not granted, or the customer has not consented).

        Raises :class:`DataUnavailable`, as the accessor would, when the answer depends on the
        customer's consents and they could not be read for this request: the customer may well have
        consented, so neither answer is known. Let it propagate: the host leaves the plugin out of this
        response as degraded (a page answers 503 to retry) and does not count it against the plugin.
        """
        answer = self._gate(_ACCESS, scope)  # access(scope), one call less: asked on every page
        if answer == "unknown":
            raise _host_unavailable("consents")
        return answer == "allowed"

    def require(self, scope: str) -> None:
        """Raise :class:`ScopeDenied` unless ``scope`` is usable now (never after the request ended)."""
        self._gate(None, scope)

    def profile(self) -> Profile | None:
        """Segment, branch and locale. Scope ``profile:basic``."""
        return self._gate("profile", "profile:basic")  # type: ignore[return-value]

    def risk(self) -> RiskProfile | None:
        """Risk tolerance C1–C5 and its expiry. Scope ``profile:risk``."""
        return self._gate("risk", "profile:risk")  # type: ignore[return-value]

    def accounts(self) -> Accounts | None:
        """Balances and monthly cash flow. Scope ``accounts:read``. A partner plugin sees each account
        under an id of its own (stable for it and the customer), never the bank's account id."""
        return self._gate("accounts", "accounts:read")  # type: ignore[return-value]

    def holdings(self) -> Holdings | None:
        """Wealth, fund, insurance and deposit positions. Scope ``holdings:read``."""
        return self._gate("holdings", "holdings:read")  # type: ignore[return-value]

    def pension(self) -> PensionAccounts | None:
        """Social security, housing fund and personal pension. Scope ``pension:read``."""
        return self._gate("pension", "pension:read")  # type: ignore[return-value]

    def city(self) -> City | None:
        """The customer's city. Scope ``location:city``."""
        return self._gate("city", "location:city")  # type: ignore[return-value]


_ACCESS: Final = "?"
"""The ``name`` that asks the gate for :meth:`ScopedData.access`'s answer instead of a record."""

_NO_RECORD: Final = object()
"""What an allowed scope that opens no record (a placement, an action) opens: equal to no name."""

_new = object.__new__


def _text(value: object) -> str:
    """``value``'s text as a plain ``str`` (a subclass's own methods not called), or ``""``: no scope."""
    return str.__str__(value) if isinstance(value, str) else ""


_GrantKey = tuple[str, frozenset[str], "frozenset[str] | None", bool]

_GRANTS: dict[_GrantKey, _Grant] = {}
"""Each plugin's :class:`_Grant` per grant and consents: a customer's next request, and every customer
who consented alike, finds it worked out. Started over when it holds ``_GRANTS_KEPT``. It holds plain
values only (no host object, such as the account-id mapping, that would keep a host alive)."""
_GRANTS_KEPT: Final = 4096


class _Grant:
    """What one plugin's grant and a customer's consents allow, worked out once: the scopes allowed and
    the record each opens (``opens``), and why any other is refused. Held only by the gates of
    :meth:`ScopedData.over`, never by the views themselves."""

    __slots__ = ("consent_unknown", "granted", "opens", "plugin_id", "seen_key")

    def __init__(self, key: _GrantKey) -> None:
        plugin_id, granted, consented, consent_unknown = key
        self.plugin_id = plugin_id
        self.granted = granted
        self.consent_unknown = consent_unknown
        # Where the accounts as this plugin sees them are kept with the request's records.
        self.seen_key = f"accounts\0{plugin_id}"
        self.opens: dict[str, object] = {
            scope: RECORD_OF_SCOPE.get(scope, _NO_RECORD) for scope in granted
            if consented is None or scope not in CUSTOMER_DATA_SCOPES or scope in consented
        }

    @staticmethod
    def of(key: _GrantKey) -> _Grant:
        """The grant of ``key``, worked out now and kept in ``_GRANTS`` under plain copies of its values.

        Never under the caller's own objects: anyone may build a view (the SDK's constructor), and a
        ``frozenset`` or ``str`` subclass of a plugin's, equal to anything and hashing as the grant the
        host gave it, would be kept in the memo in its place, and the host's next lookup of that grant
        would find what the plugin's subclass holds (every scope)."""
        plugin_id, granted, consented, consent_unknown = key
        key = (
            _text(plugin_id), frozenset([_text(scope) for scope in granted]),
            None if consented is None else frozenset([_text(scope) for scope in consented]),
            bool(consent_unknown),
        )
        if len(_GRANTS) >= _GRANTS_KEPT:
            _GRANTS.clear()
        grant = _GRANTS[key] = _Grant(key)
        return grant

    def refuse(self, name: str | None, scope: str, closed: bool) -> object:
        """The gate's answer for ``scope`` when it is not allowed now (``closed``: the request ended):
        ``access``'s ``denied`` or ``unknown`` for ``_ACCESS``, else the accessor's exception."""
        if name == _ACCESS:
            return "unknown" if self.consent_unknown and not closed and scope in self.granted else "denied"
        if closed:
            raise ScopeDenied(scope, plugin_id=self.plugin_id, reason=REQUEST_ENDED)
        if scope not in self.granted:
            raise ScopeDenied(scope, plugin_id=self.plugin_id, reason="not granted")
        if self.consent_unknown:
            raise _host_unavailable("consents")
        raise ScopeDenied(scope, plugin_id=self.plugin_id, reason=NO_CONSENT)

    def seen_accounts(self, records: CustomerRecords, found: Accounts, see: AccountIds) -> Accounts:
        """``found`` with the ids this plugin sees (``see``: the view's ``account_ids``), mapped once per
        request and plugin and kept with the request's records (dropped when it ends)."""
        cache = records._cache
        seen = cache.get(self.seen_key)
        if not isinstance(seen, Accounts):
            pid, ref = self.plugin_id, records.customer_ref
            items = tuple(msgspec.structs.replace(a, id=see(pid, ref, a.id)) for a in found.items)
            seen = cache.setdefault(self.seen_key, msgspec.structs.replace(found, items=items))
        return seen  # type: ignore[return-value]


class PluginContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a hook may use for one customer request.

    ``scopes`` is what the platform granted this plugin (not what it asked for); ``settings`` are the
    plugin's settings from branch configuration, with secret references already resolved.
    ``request_id`` names the request for logs; a partner plugin gets an id of its own for it (like its
    pairwise customer id), so partners cannot link their customers through the requests they share.
    """

    plugin_id: str
    customer: Customer
    scopes: frozenset[str]
    data: ScopedData
    storage: PluginStorage
    now: datetime
    settings: Mapping[str, str] = {}
    request_id: str = ""

    @property
    def locale(self) -> str:
        """The customer's display locale (``zh-CN`` or ``en``); :data:`DEFAULT_LOCALE` to a plugin that may
        not read ``profile:basic``."""
        return self.customer.locale

    def has_scope(self, scope: str) -> bool:
        """True when the plugin was granted ``scope`` (placement scopes included)."""
        return scope in self.scopes


class AudienceContext(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`~fulcrum_sdk.hookspecs.home_slot_campaigns` receives: the plugin's grant, the time and
    its settings, and nothing about any customer.

    There is no ``customer``, ``data`` or ``storage``: campaign offers are computed once for everyone the
    plugin is on for and kept by the host, so they cannot be personalized (target them with
    :class:`~fulcrum_sdk.models.Targeting`; the host reads it per customer). ``scopes`` is what the
    platform granted; ``now`` the time of the call, to the second (the call is shared, so it is not any
    one page's instant); ``settings`` the plugin's effective settings (one branch's, when branches set
    some: the host asks once per distinct settings); ``request_id`` names this call for logs.
    """

    plugin_id: str
    scopes: frozenset[str]
    now: datetime
    settings: Mapping[str, str] = {}
    request_id: str = ""

    def has_scope(self, scope: str) -> bool:
        """True when the plugin was granted ``scope`` (placement scopes included)."""
        return scope in self.scopes
