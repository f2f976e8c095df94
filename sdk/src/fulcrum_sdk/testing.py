"""A public harness for plugin authors: run one plugin's hooks with a synthetic customer and a chosen
scope grant — no server, no database.

    from fulcrum_sdk.testing import PluginHarness
    import my_plugin

    h = PluginHarness(my_plugin, persona="affluent")
    offers = h.home_slot_offers()
    campaigns = h.home_slot_campaigns()  # the audience-level hook, with an AudienceContext
    shown = h.shown_offers()  # both, as the host would show them to this customer

Results are validated exactly as the host validates them (an invalid result raises
:class:`~fulcrum_sdk._validate.ResultError`), and offers for slots the plugin holds no scope for, or
the platform does not have, are dropped, as the host drops them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.metadata
import inspect
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import msgspec
import pluggy

from fulcrum_sdk import hookspecs
from fulcrum_sdk._declared import type_problem
from fulcrum_sdk._personas import PERSONAS
from fulcrum_sdk._validate import (
    MAX_TRANSACTION_FEN,
    ResultError,
    UnratedProductError,
    account_fields_problem,
    check_list,
    check_page,
    check_transaction_result,
    page_path_problem,
    page_query_problem,
    rated_risk,
    received_page_path,
    received_search_query,
    suitability_problem,
    targeting_admits,
    whole_fen,
    wire_name,
)
from fulcrum_sdk.context import (
    DEFAULT_LOCALE,
    AudienceContext,
    Customer,
    CustomerRecords,
    PluginContext,
    ScopedData,
)
from fulcrum_sdk.data import CustomerRecord, DataProvider, StaticDataProvider
from fulcrum_sdk.errors import ScopeDenied, TransactionRefused
from fulcrum_sdk.localtime import aware, local_date
from fulcrum_sdk.manifest import (
    MANIFEST_FILE,
    Manifest,
    declaration_problems,
    manifest_from_distribution,
    parse_manifest,
    semantic_problems,
)
from fulcrum_sdk.models import (
    FEED_COLUMNS,
    SLOT_IDS,
    FeedItem,
    LocalizedText,
    Page,
    RiskLevel,
    SearchHit,
    SlotOffer,
    TransactionRequest,
    TransactionResult,
    TransactionType,
)
from fulcrum_sdk.scopes import CUSTOMER_DATA_SCOPES, slot_scope
from fulcrum_sdk.storage import MemoryStorage, PluginStorage

__all__ = [
    "PERSONAS",
    "PluginHarness",
    "ResultError",
    "load_manifest_beside",
    "make_plugin_manager",
    "packaging_problems",
]


def make_plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the Fulcrum hook specs added and nothing registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_manifest_beside(plugin: ModuleType) -> Manifest:
    """The ``fulcrum-plugin.toml`` in the plugin module's own package directory."""
    path = Path(inspect.getfile(plugin)).parent / MANIFEST_FILE
    return parse_manifest(path.read_bytes(), file=str(path))


def _pairwise_id(plugin_id: str, customer_ref: str) -> str:
    """A partner's id for the customer shaped as the host's (HMAC-SHA256 hex of ``plugin:customer``,
    here under a fixed test key): stable, per partner, never the bank's customer number."""
    return hmac.new(b"fulcrum-harness", f"{plugin_id}:{customer_ref}".encode(), hashlib.sha256).hexdigest()


def _pairwise_account_id(plugin_id: str, customer_ref: str, account_id: str) -> str:
    """A partner's id for one of the customer's accounts shaped as the host's (32 hex digits of an
    HMAC-SHA256, here under a fixed test key): stable, per partner and customer, never the bank's."""
    message = f"\0account\0{plugin_id}\0{customer_ref}\0{account_id}".encode()
    return hmac.new(b"fulcrum-harness", message, hashlib.sha256).hexdigest()[:32]


def _run(value: Any) -> Any:
    return asyncio.run(value) if inspect.isawaitable(value) else value  # type: ignore[arg-type]


class PluginHarness:
    """Runs one plugin's hooks the way the host would, for one synthetic customer.

    ``scopes`` defaults to the manifest's required scopes (what an approval usually grants). For a
    ``partner`` plugin, customer-data scopes also need consent: ``consented`` defaults to all of them;
    pass ``consented=()`` to test a customer who has not consented, and ``consents_unknown=True`` for
    a request whose consents the host could not read (customer data, and ``ctx.data.allows`` for it,
    then raise ``DataUnavailable``; ``consented`` is ignored). ``now`` is handed to hooks as
    ``ctx.now`` in UTC, as the host does (a naive value is read as UTC).
    """

    def __init__(
        self,
        plugin: object,
        *,
        manifest: Manifest | None = None,
        persona: str | CustomerRecord = "young_professional",
        scopes: Iterable[str] | None = None,
        consented: Iterable[str] | None = None,
        consents_unknown: bool = False,
        provider: DataProvider | None = None,
        storage: PluginStorage | None = None,
        settings: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> None:
        if manifest is None:
            if not isinstance(plugin, ModuleType):
                raise TypeError(
                    "pass manifest= when the plugin is not a module beside its fulcrum-plugin.toml"
                )
            manifest = load_manifest_beside(plugin)
        self.manifest = manifest
        self.record = PERSONAS[persona] if isinstance(persona, str) else persona
        self.scopes = frozenset(manifest.scopes.required if scopes is None else scopes)
        self.partner = manifest.kind == "partner"
        self.consents_unknown = consents_unknown and self.partner
        # As on the host: consents that could not be read count as none, and as unknown.
        self.consented = (
            frozenset() if self.consents_unknown
            else frozenset(CUSTOMER_DATA_SCOPES if consented is None else consented)
        )
        self.provider = provider or StaticDataProvider({self.record.id: self.record})
        self.storage: PluginStorage = storage if storage is not None else MemoryStorage()
        self.settings: Mapping[str, str] = MappingProxyType(dict(settings or {}))  # read-only, as on the host
        # ctx.now is aware UTC on the host: a moment given in another zone is the same instant in UTC.
        self.now = datetime.now(UTC) if now is None else aware(now).astimezone(UTC)
        self.pm = make_plugin_manager()
        self.pm.register(plugin, name=manifest.id)
        self.pm.check_pending()
        self._types: dict[str, TransactionType] | None = None
        self._open: dict[int, tuple[ScopedData, CustomerRecords]] = {}

    # --- context ---------------------------------------------------------------------------------

    def context(self) -> PluginContext:
        """A fresh context for the customer, as the host builds one per request: a partner gets a
        pairwise id (and pairwise account ids), and the segment and branch only when ``profile:basic``
        is granted and consented (any other plugin, when it is granted)."""
        profile = self.record.profile
        records = CustomerRecords(self.provider, self.record.id)
        data = ScopedData.over(
            records,
            self.manifest.id,
            self.scopes,
            self.consented if self.partner else None,
            consent_unknown=self.consents_unknown,
            account_ids=_pairwise_account_id if self.partner else None,
        )
        customer = Customer(
            id=self.record.id, segment=profile.segment, branch=profile.branch, locale=profile.locale
        )
        if self.partner:
            basic = data.access("profile:basic") == "allowed"  # not while the consents are unknown
            customer = Customer(
                id=_pairwise_id(self.manifest.id, self.record.id),
                segment=customer.segment if basic else "", branch=customer.branch if basic else "",
                locale=customer.locale if basic else DEFAULT_LOCALE,
            )
        elif "profile:basic" not in self.scopes:
            customer = Customer(id=customer.id, segment="", branch="")
        # Kept to close when a hook's call ends: a plugin's context does not lead to its records.
        self._open[id(data)] = (data, records)
        return PluginContext(
            plugin_id=self.manifest.id,
            customer=customer,
            scopes=self.scopes,
            data=data,
            storage=self.storage,
            now=self.now,
            settings=self.settings,
            request_id=uuid.uuid4().hex,
        )

    def audience_context(self) -> AudienceContext:
        """The context of :func:`~fulcrum_sdk.hookspecs.home_slot_campaigns`, as the host builds one per
        call: the grant, ``now`` (to the second) and the settings; no customer."""
        return AudienceContext(
            plugin_id=self.manifest.id, scopes=self.scopes, now=self.now.replace(microsecond=0),
            settings=self.settings, request_id=uuid.uuid4().hex,
        )

    def _call(self, hook: str, **kwargs: Any) -> Any:
        """Call ``hook``; then, as the host does when a request ends, its context reads nothing more."""
        ctx = kwargs.get("ctx")
        try:
            return self._call_open(hook, **kwargs)
        finally:
            if isinstance(ctx, PluginContext):
                opened = self._open.pop(id(ctx.data), None)
                if opened is not None and opened[0] is ctx.data:
                    opened[1].close()

    def _call_open(self, hook: str, **kwargs: Any) -> Any:
        caller = getattr(self.pm.hook, hook)
        results = caller(**kwargs)
        if not results:
            return None
        if any(inspect.iscoroutinefunction(impl.function) for impl in caller.get_hookimpls()):
            return _run(results[0])
        if inspect.isawaitable(results[0]):  # as the host: only an `async def` hook is awaited
            if inspect.iscoroutine(results[0]):
                results[0].close()
            raise ResultError(f"{hook} returned an awaitable from a plain function; declare it `async def`")
        return results[0]

    # --- hooks -----------------------------------------------------------------------------------

    def home_slot_offers(self) -> list[SlotOffer]:
        """Validated offers, without those for slots the plugin holds no placement scope for or the
        platform does not have (``home.banner/v2``: the host's inventory is :data:`SLOT_IDS`)."""
        offers = self._call("home_slot_offers", ctx=self.context())
        return self._placed(check_list("home_slot_offers", offers))

    def home_slot_campaigns(self) -> list[SlotOffer]:
        """Validated campaign offers (called with :meth:`audience_context`), without those for slots the
        plugin holds no placement scope for or the platform does not have; ``[]`` when the plugin does
        not implement the hook."""
        return self._placed(
            check_list("home_slot_campaigns", self._call("home_slot_campaigns", ctx=self.audience_context()))
        )

    def _placed(self, offers: list[SlotOffer]) -> list[SlotOffer]:
        return [o for o in offers if o.slot in SLOT_IDS and slot_scope(o.slot) in self.scopes]

    def shown_offers(self) -> list[SlotOffer]:
        """What the host would show this customer at ``now`` of :meth:`home_slot_offers` and
        :meth:`home_slot_campaigns` (in that order; an offer repeating a slot and key is shown once):
        without the offers outside their validity window and those whose targeting does not admit the
        customer as the plugin sees them (a partner's customer who has not consented to
        ``profile:basic`` has no segment or branch, so an offer targeted by them is never shown). The
        host then ranks, caps and mixes every plugin's offers, which one plugin's tests cannot see."""
        seen = self.context().customer
        shown: dict[tuple[str, str], SlotOffer] = {}
        for offer in (*self.home_slot_offers(), *self.home_slot_campaigns()):
            if offer.live_at(self.now) and targeting_admits(offer.targeting, seen):
                shown.setdefault((offer.slot, offer.key), offer)
        return list(shown.values())

    def search(self, query: str) -> list[SearchHit]:
        """Validated hits for ``query``; empty when the plugin lacks ``search:contribute``.

        The plugin gets the query as the host passes it (NFC, trimmed, without invisible characters);
        one the host answers 400 to (empty, over 100 characters) raises ``ValueError``."""
        try:
            received = received_search_query(query)
        except ValueError as exc:
            raise ValueError(f"the host answers 400 to the search {query!r}: {exc}") from None
        if "search:contribute" not in self.scopes:
            return []
        return check_list("search", self._call("search", ctx=self.context(), query=received))

    def feed_items(self, column: str) -> list[FeedItem]:
        """Validated items for ``column``; empty without ``feed:contribute``; other columns dropped.
        A column the platform does not have (see :data:`FEED_COLUMNS`) raises ``ValueError``: the host
        answers 404 to it without asking any plugin."""
        if column not in FEED_COLUMNS:
            known = ", ".join(FEED_COLUMNS)
            raise ValueError(f"the host answers 404 to feed column {column!r}; known: {known}")
        if "feed:contribute" not in self.scopes:
            return []
        items: list[FeedItem] = check_list(
            "feed_items", self._call("feed_items", ctx=self.context(), column=column)
        )
        return [i for i in items if i.column == column]

    def shown_feed_items(self, column: str) -> list[FeedItem]:
        """What the host would show this customer of :meth:`feed_items`: without the items whose
        targeting does not admit the customer as the plugin sees them (see :meth:`shown_offers`)."""
        seen = self.context().customer
        return [i for i in self.feed_items(column) if targeting_admits(i.targeting, seen)]

    def page(self, path: str, query: Mapping[str, str] | None = None) -> Page | None:
        """The validated page at ``path`` with the deep link's ``query`` parameters (what
        ``fulcrum://<plugin>/<path>?<query>`` opens); ``None``: no page.

        The plugin gets ``path`` as the host passes it (``plans/a/`` as ``plans/a``); a path or query
        the host answers 400 to, without asking the plugin, raises ``ValueError``."""
        params = MappingProxyType(dict(query or {}))
        received = received_page_path(path)
        problem = page_query_problem(params) or page_path_problem(received)
        if problem is not None:
            raise ValueError(f"the host answers 400 to page {path!r} with query {dict(params)}: {problem}")
        return check_page(self._call("page", ctx=self.context(), path=received, query=params))

    def transaction_types(self) -> dict[str, TransactionType]:
        """The types the plugin registers, by key."""
        if self._types is None:
            found: dict[str, TransactionType] = {}

            def register(tx_type: TransactionType) -> None:
                if tx_type.key in found:
                    raise ValueError(f"transaction type {tx_type.key!r} registered twice")
                found[tx_type.key] = tx_type

            self.pm.hook.register_transaction_types(register=register)
            self._types = found
        return self._types

    def execute(
        self,
        type_key: str,
        params: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        host_checks: bool = True,
    ) -> TransactionResult:
        """Decode ``params`` with the type's schema (raising ``msgspec.ValidationError`` on bad input),
        check its scopes, refuse what the host refuses before calling the plugin (suitability and the
        amount limits: ``TransactionRefused`` with the host's code) and call ``execute_transaction``;
        ``TransactionRefused`` propagates when the host could answer it (else :class:`ResultError`, as
        for an invalid result). ``host_checks=False`` skips suitability and the amount limits, to test
        a plugin's own defence in depth against what the host refuses first."""
        tx_type = self.transaction_types()[type_key]
        problem = type_problem(tx_type, self.manifest) or account_fields_problem(tx_type)
        if problem is not None:  # the host refuses the type at startup: it never takes a request
            raise ResultError(f"the host refuses this type: {problem}")
        needs = {"transactions:write", "accounts:read"} if tx_type.account_fields else {"transactions:write"}
        for scope in sorted(tx_type.required_scopes | needs):  # as the host requires
            if scope not in self.scopes:
                raise ScopeDenied(scope, plugin_id=self.manifest.id)
        decoded = msgspec.convert(dict(params), tx_type.params)
        try:
            risk = rated_risk(tx_type, decoded)
        except UnratedProductError as exc:  # the host's 422: the product is not sold
            unrated = _text(str(exc))
            field = wire_name(tx_type.params, exc.field)
            raise TransactionRefused("suitability.product_unrated", unrated, field=field) from None
        except (TypeError, ValueError) as exc:  # the host refuses the request as the plugin's fault (502)
            raise ResultError(f"{type_key}: the product risk cannot be checked: {exc}") from None
        if host_checks:
            amount = self._host_checks(tx_type, decoded, risk)
        else:
            found = getattr(decoded, tx_type.amount_field, None) if tx_type.amount_field else None
            amount = found if isinstance(found, int) and not isinstance(found, bool) else None
        request = TransactionRequest(
            id=uuid.uuid4().hex,
            type=type_key,
            params=decoded,
            idempotency_key=idempotency_key or uuid.uuid4().hex,
            amount_fen=amount,
            risk_level=risk,
            created_at=self.now,
        )
        try:
            result = self._call("execute_transaction", ctx=self.context(), request=request)
        except TransactionRefused as refused:
            # The host answers a refusal as a failed result: one it cannot answer (an empty message, an
            # over-long code) is recorded as of unknown outcome instead.
            try:
                check_transaction_result(
                    TransactionResult(status="failed", code=refused.code, message=refused.message)
                )
            except ResultError as exc:
                raise ResultError(f"execute_transaction refused invalidly: {exc}") from None
            raise
        return check_transaction_result(result)


    def _host_checks(self, tx_type: TransactionType, params: Any, risk: RiskLevel) -> int | None:
        """The amount in fen, after the checks the host makes before it calls the plugin: suitability
        (the product's risk against the customer's assessment, on the bank's date of ``now``) and the
        platform's amount limits (:data:`MAX_TRANSACTION_FEN`). What the host refuses with a 422 is a
        ``TransactionRefused`` with the host's code, naming the parameter as the client sends it."""
        problem = suitability_problem(risk, self.provider.risk(self.record.id), local_date(self.now))
        if problem is not None:
            raise TransactionRefused(problem[0], problem[1])
        self._check_accounts(tx_type, params)
        field = wire_name(tx_type.params, tx_type.amount_field) if tx_type.amount_field else None
        try:
            amount = whole_fen(tx_type, params)
        except ValueError as exc:
            raise TransactionRefused("limits.amount_not_fen", _text(str(exc)), field=field) from None
        if amount is not None and amount < 0:
            raise TransactionRefused(
                "limits.negative_amount", _text("the amount must not be negative"), field=field
            )
        if amount is not None and amount > MAX_TRANSACTION_FEN:
            raise TransactionRefused("limits.max_amount", _text(
                f"the amount {amount} fen is above the single-transaction limit of {MAX_TRANSACTION_FEN} fen"
            ), field=field)
        return amount


    def _check_accounts(self, tx_type: TransactionType, params: Any) -> None:
        """Refuse, as the host does, an account field naming none of the customer's accounts as the
        plugin sees them in ``ctx.data.accounts()`` (a partner: its own ids, never the bank's), naming
        the parameter as the client sends it."""
        if not tx_type.account_fields:
            return
        data = self.context().data
        allowed = data.allows("accounts:read")  # raises DataUnavailable as the host's 503 would
        accounts = data.accounts() if allowed else None
        shown = {account.id for account in accounts.items} if accounts is not None else set()
        for name in sorted(tx_type.account_fields):
            given = getattr(params, name)
            if given is not None and given not in shown:
                sent = wire_name(tx_type.params, name)
                raise TransactionRefused(
                    "transaction.unknown_account",
                    _text(f"{sent} is not one of the customer's accounts as this plugin sees them"),
                    field=sent,
                )


def _text(message: str) -> LocalizedText:
    return LocalizedText(zh_CN=message, en=message)


def packaging_problems(plugin: ModuleType, distribution: str) -> list[str]:
    """What is wrong with how ``plugin`` is packaged as ``distribution``; ``[]`` when nothing is.

    Checks what the host relies on before it runs a plugin: the ``fulcrum`` entry point named by the
    plugin id loads this module; the installed distribution's manifest parses, has no semantic
    problems and carries the distribution's version; the manifest declares exactly the hooks and
    transaction types the module implements; the module exports its hooks and nothing else.
    """
    manifest = load_manifest_beside(plugin)
    problems: list[str] = []
    points = [
        ep for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT_NAME) if ep.name == manifest.id
    ]
    if len(points) != 1:
        problems.append(
            f"expected one {hookspecs.PROJECT_NAME!r} entry point named {manifest.id!r}, found {len(points)}"
        )
    elif points[0].load() is not plugin:
        problems.append(f"entry point {manifest.id!r} loads {points[0].value!r}, not {plugin.__name__!r}")
    installed = manifest_from_distribution(importlib.metadata.distribution(distribution))
    if installed.id != manifest.id:
        problems.append(f"the installed manifest's id is {installed.id!r}, not {manifest.id!r}")
    problems += [f"manifest {p.key}: {p.problem}" for p in semantic_problems(installed)]
    harness = PluginHarness(plugin, manifest=manifest)
    implemented = {caller.name for caller in harness.pm.get_hookcallers(plugin) or ()}
    if implemented != set(manifest.hooks):
        problems.append(
            f"manifest hooks {sorted(manifest.hooks)} but the module implements {sorted(implemented)}"
        )
    if set(harness.transaction_types()) != set(manifest.type_keys):
        problems.append(
            f"manifest transaction_types {sorted(manifest.type_keys)} but the module registers "
            f"{sorted(harness.transaction_types())}"
        )
    problems += [f"manifest {p.key}: {p.problem}" for p in declaration_problems(installed)]
    for tx_type in harness.transaction_types().values():
        problem = type_problem(tx_type, manifest) or account_fields_problem(tx_type)
        if problem is not None:
            problems.append(problem)
    exported = sorted(getattr(plugin, "__all__", ()))
    if exported != sorted(manifest.hooks):
        problems.append(f"__all__ is {exported}; export the hooks and nothing else")
    return problems
