"""Building the context each plugin receives for one request: customer, scoped data, storage, time.

The bank's customer number never reaches a partner plugin: partners get a pairwise pseudonymous id
(HMAC-SHA256 of ``"{plugin_id}:{customer_ref}"`` under a platform secret), pairwise account ids
(:mod:`fulcrum_core.dispatch.accounts`: the bank's name the customer), and a request id of their
own (:meth:`ContextFactory.partner_request_id`) and its time to the second, so two partners cannot
join their pseudonyms through the request they were both called in; their customer-data scopes
need the customer's live consent, and their view of the customer's segment and branch is blank unless
``profile:basic`` is both granted and consented (an internal plugin's, unless it is granted).
Consents are read at most once per request, and only when a partner plugin is about to be called.

With a branch layer, the customer's branch configuration also decides which plugins run for them
(``RequestContexts.select``) and adds its resolved settings to each plugin's ``ctx.settings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import anyio
from fulcrum_sdk.context import (
    DEFAULT_LOCALE,
    RECORD_OF_SCOPE,
    AccountIds,
    Customer,
    CustomerRecords,
    PluginContext,
    ScopedData,
)
from fulcrum_sdk.data import DataProvider, Profile
from fulcrum_sdk.storage import PluginStorage

from fulcrum_core import host_threads
from fulcrum_core.branches.gate import BranchSource, CustomerBranchView
from fulcrum_core.data.consent_cache import ConsentCache, attach
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.data.storage_handle import StorageHandle
from fulcrum_core.dispatch.accounts import bank_account_id, pairwise_account_id
from fulcrum_core.errors import Forbidden
from fulcrum_core.observability.throttle import ThrottledWarning
from fulcrum_core.plugins import LoadedPlugin, PluginSet
from fulcrum_core.settings import Settings

__all__ = [
    "HOST_SETTINGS",
    "PAIRWISE_KEY_FILE",
    "ContextFactory",
    "RequestContexts",
    "data_deadline",
    "existing_pairwise_secret",
    "partner_request_id",
]

log = logging.getLogger("fulcrum.dispatch")

PAIRWISE_KEY_FILE = "pairwise.key"

_NONE: frozenset[str] = frozenset()
HOST_SETTINGS: Final = object()
"""The settings token of requests without a branch layer: every plugin's own host-level settings."""
_PAIRWISE_MEMO = 65_536


def _load_or_create_secret(state_dir: Path) -> bytes:
    """The pairwise secret in ``state_dir``, created once (mode 0600) by whichever worker is first.

    The secret is written to a private temporary file and hard-linked into place, so a concurrent
    reader sees either no file or the complete secret, and the first worker to link wins.
    """
    path = state_dir / PAIRWISE_KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = state_dir / f".{PAIRWISE_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):  # another worker linked its secret first
                os.link(tmp, path)
        finally:
            tmp.unlink()
    secret = path.read_text(encoding="ascii").strip()
    if not secret:
        raise RuntimeError(f"{path} is empty; delete it so a new secret is generated")
    return secret.encode()


def partner_request_id(secret: bytes, plugin_id: str, request_id: str) -> str:
    """The id partner ``plugin_id`` sees for the host's ``request_id`` under the pairwise ``secret``
    (see :meth:`ContextFactory.partner_request_id`); support tools compute it the same way."""
    # The NUL byte keeps these messages apart from the pairwise ids' "{plugin_id}:{customer_ref}".
    message = f"{_request_prefix(plugin_id)}{request_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def _request_prefix(plugin_id: str) -> str:
    return f"\0request\0{plugin_id}\0"


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _hmac_sha256_states(key: bytes, message: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256 (RFC 2104) under ``key`` of ``message`` and whatever follows it, as its two SHA-256
    states: the inner hash fed the key's inner pad and ``message``, the outer one its outer pad. Copies of
    the inner one fed the rest, then of the outer one fed the inner digest, give ``hmac.new``'s bytes,
    at two state copies a request instead of a copied ``hmac`` object's Python (≈ 5 k instructions)."""
    block = hashlib.sha256().block_size
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(key.translate(_IPAD))
    inner.update(message)
    return inner, hashlib.sha256(key.translate(_OPAD))


def existing_pairwise_secret(settings: Settings) -> bytes | None:
    """The pairwise secret the hosts of ``settings`` use, or ``None`` when none was made yet (never
    creates one: a new secret would give ids no partner ever saw)."""
    if settings.pairwise_secret:
        return settings.pairwise_secret.encode()
    path = Path(settings.state_dir) / PAIRWISE_KEY_FILE
    if not path.exists():
        return None
    return path.read_text(encoding="ascii").strip().encode() or None


def data_deadline(settings: Settings, by: float | None = None) -> float:
    """When the customer's data must have arrived, on the event loop's clock: ``data_budget_ms``
    from now, or ``by`` when that is sooner (a page's overall budget)."""
    # The running loop's clock is anyio's on asyncio (what its cancel scopes read), without the
    # backend lookup ``anyio.current_time()`` does on every call (≈ 2 µs a page).
    until = asyncio.get_running_loop().time() + settings.data_budget_ms / 1000
    return until if by is None else min(until, by)


class ContextFactory:
    """Makes :class:`RequestContexts`; one per host, shared by every request."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        provider: DataProvider,
        plugins: PluginSet,
        branches: BranchSource | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.provider = provider
        self.plugins = plugins
        # The branch layer (``None``: no branch directory, every active plugin runs for everyone).
        self.branches = branches
        self._secret: bytes | None = settings.pairwise_secret.encode() if settings.pairwise_secret else None
        self._lock = threading.Lock()
        self._storages: dict[str, PluginStorage] = {}
        # Each plugin's ctx.storage, of the cached view and of the fresh one (keyed by plugin id alone:
        # looked up for every context).
        self._cached_handles: dict[str, StorageHandle] = {}
        self._fresh_handles: dict[str, StorageHandle] = {}
        self._pairwise: dict[tuple[str, str], str] = {}
        self._account_ids: dict[tuple[str, str, str], str] = {}
        # Bound once: every partner's ScopedData of every page is handed it (no method object a page).
        self.account_ids: AccountIds = self.pairwise_account_id
        # Per partner: the HMAC of its request ids' common prefix (its two SHA-256 states), copied and
        # finished per request.
        self._request_macs: dict[str, tuple[hashlib._Hash, hashlib._Hash]] = {}
        # Live consents per customer, shared by this host's requests; ConsentStore writes invalidate it.
        on_loop = settings.sqlite_reads_on_loop and db.dialect == "sqlite"
        self.consent_cache = attach(db, ConsentCache(settings.consent_cache_ms, reads_on_loop=on_loop))
        # Reads of a provider that does I/O in flight at once, hung ones included: a bank that hangs
        # ties up at most this many threads; past it a record is unavailable at once.
        self.bank_reads = threading.BoundedSemaphore(_BANK_READS)
        # The same for the profile each request reads first (``api.deps.customer_profile``): places of
        # its own, so records hung in the bank leave the page its customer, and the other way round.
        self.profile_reads = threading.BoundedSemaphore(_BANK_READS)

    def for_request(
        self,
        customer_ref: str,
        *,
        request_id: str,
        now: datetime | None = None,
        profile: Profile | None = None,
        fresh: bool = False,
    ) -> RequestContexts:
        """Contexts for one customer request; raises ``Forbidden`` when the bank has no profile for them.

        ``profile``: the customer's profile when the caller already has it (read off the event loop).
        ``fresh``: read the customer's consents from the database, never from the worker's cache (the
        transaction path: a consent revoked in another worker must not be honoured there).
        """
        known = profile is not None
        if profile is None:
            profile = self.provider.profile(customer_ref)
        if profile is None:
            raise Forbidden(
                "the bank has no customer profile for this token's subject", code="customer.unknown"
            )
        customer = Customer(
            id=customer_ref, segment=profile.segment, branch=profile.branch, locale=profile.locale
        )
        contexts = RequestContexts(
            self, customer, request_id=request_id, now=now or datetime.now(UTC), fresh=fresh
        )
        if known:
            contexts.records.put("profile", profile)
        return contexts

    def pairwise_id(self, plugin_id: str, customer_ref: str) -> str:
        """The stable pseudonymous id of ``customer_ref`` as plugin ``plugin_id`` sees it.

        Deterministic, so the last ``_PAIRWISE_MEMO`` answers are kept (an HMAC per partner per page
        otherwise); the memo starts over when full.
        """
        key = (plugin_id, customer_ref)
        known = self._pairwise.get(key)
        if known is None:
            message = f"{plugin_id}:{customer_ref}".encode()
            known = hmac.new(self._pairwise_secret(), message, hashlib.sha256).hexdigest()
            if len(self._pairwise) >= _PAIRWISE_MEMO:
                self._pairwise.clear()
            self._pairwise[key] = known
        return known

    def pairwise_account_id(self, plugin_id: str, customer_ref: str, account_id: str) -> str:
        """The id under which partner ``plugin_id`` sees the bank's ``account_id`` of ``customer_ref``
        (:func:`~fulcrum_core.dispatch.accounts.pairwise_account_id`). Computed only when the partner
        reads the accounts, and memoised as :meth:`pairwise_id` is."""
        key = (plugin_id, customer_ref, account_id)
        known = self._account_ids.get(key)
        if known is None:
            known = pairwise_account_id(self._pairwise_secret(), plugin_id, customer_ref, account_id)
            if len(self._account_ids) >= _PAIRWISE_MEMO:
                self._account_ids.clear()
            self._account_ids[key] = known
        return known

    def partner_request_id(self, plugin_id: str, request_id: str) -> str:
        """The id partner ``plugin_id`` sees for request ``request_id``: 32 hex digits of an HMAC under
        the pairwise secret. Every partner called in one request sees a different id, so the id they
        share cannot link their pairwise customer ids; the host (who holds the secret) can still
        compute it from its own logs' id to follow a partner's report. Empty stays empty."""
        if not request_id:
            return ""
        # :func:`partner_request_id`, with the secret and the plugin's prefix hashed once per plugin.
        states = self._request_macs.get(plugin_id)
        if states is None:
            states = self._request_macs[plugin_id] = _hmac_sha256_states(
                self._pairwise_secret(), _request_prefix(plugin_id).encode()
            )
        inner, outer = states[0].copy(), states[1].copy()
        inner.update(request_id.encode())
        outer.update(inner.digest())
        return outer.hexdigest()[:32]

    def pending_reads(self) -> list[asyncio.Task[Any]]:
        """The cache reads in flight (plugin storage, consents) that have not landed yet."""
        tasks: list[asyncio.Task[Any]] = list(self.consent_cache.pending())
        for storage in self._storages.values():
            cache = storage.cache if isinstance(storage, SqlPluginStorage) else None
            if cache is not None:
                tasks += cache.flights.pending()
        return tasks

    async def drain_reads(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the cache reads in flight on this event loop to land, and for
        any they or late requests start meanwhile; how many had not. A host that stops calls it before
        closing the database: a background refresh still reading would otherwise open a connection on
        an engine already disposed, or fail and log it. Reads of other loops (another worker's, one
        already closed) are not this loop's to wait for: their tasks would never wake it, or wake it
        from another thread."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + timeout_s
        while True:
            tasks = [task for task in self.pending_reads() if task.get_loop() is loop]
            left = ends - loop.time()
            if not tasks or left <= 0:
                return len(tasks)
            await asyncio.wait(tasks, timeout=left)

    def storage(self, plugin_id: str, *, fresh: bool = False) -> PluginStorage:
        """The plugin's private storage (one per plugin, reused across requests, with one read cache).

        The default view may answer reads from the cache (up to ``storage_cache_ms`` old: display
        hooks); ``fresh=True`` gives the view the transaction path uses, whose reads hit the database.
        """
        storage = self._storages.get(plugin_id)
        if storage is None:
            storage = self._storages.setdefault(
                plugin_id,
                SqlPluginStorage(
                    self.db,
                    plugin_id,
                    cache_ms=self.settings.storage_cache_ms,
                    reads_on_loop=self.settings.sqlite_reads_on_loop,
                    quota=self.settings.quota_of(plugin_id),
                ),
            )
        if fresh and isinstance(storage, SqlPluginStorage):
            return storage.fresh
        return storage

    def plugin_storage(self, plugin_id: str, *, fresh: bool = False) -> PluginStorage:
        """What the plugin's ``ctx.storage`` is: the operations of :meth:`storage`'s view, without the
        view (which leads to the database, and names the plugin in an attribute the plugin could set)."""
        handle = (self._fresh_handles if fresh else self._cached_handles).get(plugin_id)
        if handle is None:
            storage = self.storage(plugin_id, fresh=fresh)
            if not isinstance(storage, SqlPluginStorage):  # pragma: no cover - storage() makes only these
                return storage
            handle = (self._fresh_handles if fresh else self._cached_handles).setdefault(
                plugin_id, StorageHandle(storage)
            )
        return handle

    def warm(self) -> None:
        """Read the pairwise secret now when a partner plugin is loaded, rather than on a fresh worker's
        first partner page (a file read, or the secret's creation by the first worker)."""
        if any(plugin.kind == "partner" for plugin in self.plugins.loaded.values()):
            self._pairwise_secret()

    def _pairwise_secret(self) -> bytes:
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    self._secret = _load_or_create_secret(Path(self.settings.state_dir))
        return self._secret


_CONSENTS_UNKNOWN = ThrottledWarning(
    log, "a customer's consents are unknown for a request; its partner plugins that read customer data "
    "are left out",
)
"""Once per interval: while the database is slow this hits every partner request."""


class RequestContexts:
    """The contexts of one request: the bank's view of the customer, and one context per plugin."""

    __slots__ = (
        "_branch", "_consents", "_consents_unknown", "_contexts", "_factory", "_fresh", "_records",
        "_seen", "_unprofiled", "customer", "data_until", "now", "request_id",
    )

    def __init__(
        self,
        factory: ContextFactory,
        customer: Customer,
        *,
        request_id: str,
        now: datetime,
        fresh: bool = False,
    ) -> None:
        self._factory = factory
        # Consents from the database only, never the worker's cache (see ``ContextFactory.for_request``).
        self._fresh = fresh
        self.customer = customer
        self.request_id = request_id
        self.now = now
        self._consents: dict[str, frozenset[str]] | None = None
        self._consents_unknown = False
        self._contexts: dict[str, PluginContext] = {}
        # The customer as each plugin called without a context here (campaigns) would see them.
        self._seen: dict[str, Customer] = {}
        self._branch: CustomerBranchView | None = None
        # The customer without segment and branch (profile:basic's data), built once for every plugin
        # not granted profile:basic.
        self._unprofiled: Customer | None = None
        # The customer's records, fetched once per request and shared by every plugin's ScopedData.
        self._records: CustomerRecords | None = None
        # When the customer's data must have arrived (event loop clock); None: data_budget_ms from the read.
        self.data_until: float | None = None

    @property
    def branch_view(self) -> CustomerBranchView | None:
        """The branch layer for this customer (built on first use); ``None`` without a branch layer."""
        source = self._factory.branches
        if self._branch is None and source is not None:
            self._branch = CustomerBranchView(source, self.customer.branch, self.customer_ref)
        return self._branch

    def allows(self, plugin: LoadedPlugin) -> bool:
        """True when the branch configuration runs ``plugin`` for this customer (always, without one)."""
        view = self.branch_view
        return view is None or view.allows(plugin.id, plugin.version)

    def select(self, plugins: Iterable[LoadedPlugin]) -> list[LoadedPlugin]:
        """Those of ``plugins`` this customer gets: branch on-switch x rollout x version range."""
        view = self.branch_view
        if view is None:
            return list(plugins)
        return [p for p in plugins if view.allows(p.id, p.version)]

    def pins(self, plugin_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Slot id -> plugin id -> pinned 1-based position, from the customer's branch configuration."""
        view = self.branch_view
        return {} if view is None else view.pins(plugin_ids)

    def settings_of(self, plugin: LoadedPlugin) -> Mapping[str, str]:
        """``plugin``'s effective settings for this customer: host-level, overridden by their branch's."""
        if self._factory.branches is None:
            return plugin.settings
        view = self.branch_view
        layered = view.settings(plugin.id) if view is not None else None
        if not layered:
            return plugin.settings
        # The branch files override host-level settings; read-only, as the plugin's own (ctx.settings).
        return MappingProxyType({**plugin.settings, **layered})

    @property
    def settings_token(self) -> object | None:
        """An object that is the same (``is``) for two requests only when :meth:`settings_of` gives
        every plugin the same settings in both (``None``: no such promise): what a worker-wide cache
        of settings-dependent results may be keyed by instead of every plugin's settings."""
        source = self._factory.branches
        if source is None:
            return HOST_SETTINGS
        view = self.branch_view
        if view is None:  # pragma: no cover - a branch layer always gives a view
            return HOST_SETTINGS
        token = getattr(source, "settings_token", None)  # a source without one promises nothing
        return None if token is None else token(view.branch)

    def settings_variants_of(self, plugin: LoadedPlugin) -> list[Mapping[str, str]]:
        """Every effective settings ``plugin`` has for some customer (one per distinct branch settings,
        in a fixed order), whoever this customer is: see :meth:`settings_of`."""
        source = self._factory.branches
        if source is None:
            return [plugin.settings]
        own = plugin.settings
        return [{**own, **layered} if layered else own for layered in source.settings_variants(plugin.id)]

    @property
    def customer_ref(self) -> str:
        """The bank's own customer number (never handed to a partner plugin)."""
        return self.customer.id

    def needs_io(self, plugins: Iterable[LoadedPlugin]) -> bool:
        """True when building contexts for ``plugins`` will read consents from the database.

        A fresh entry in the worker's consent cache is taken for this request here, so no read follows;
        when it is past its refresh point (and an event loop runs this), one background re-read of the
        customer is started too, so the entry is replaced before it lapses.
        """
        if self._consents is not None:
            return False
        for plugin in plugins:  # a loop, not any() over a generator: asked on every page
            if plugin.kind == "partner":
                break
        else:
            return False
        if self._fresh:
            return True
        cache = self._factory.consent_cache
        self._consents, due = cache.probe(self.customer_ref, self.now)
        if due:
            store = ConsentStore(self._factory.db, cache=cache)
            cache.refresh(self.customer_ref, self.now, store.reader(self.customer_ref, self.now))
        return self._consents is None

    def consents(self) -> dict[str, frozenset[str]]:
        """The customer's live consents by plugin id, once per request: from the worker's cache or the
        database. A read that fails is not cached, and leaves them unknown for this request (see
        :meth:`aconsents`)."""
        if self._consents is None:
            store = ConsentStore(self._factory.db, cache=self._consent_cache)
            try:
                self._consents = store.live_scopes(self.customer_ref, now=self.now)
            except Exception as exc:
                self._unknown_consents(f"could not be read ({type(exc).__name__}: {exc})")
        return self._consents or {}

    async def aconsents(self, *, until: float | None = None) -> dict[str, frozenset[str]]:
        """:meth:`consents` on the event loop: a miss reads in a worker thread, one read shared by
        this worker's concurrent requests for the same customer (none if it fails; not cached).

        The wait ends at ``until`` (event loop clock; default ``data_budget_ms`` from now); a read
        still running then goes on for the cache. When the consents did not arrive or the read
        failed, they are unknown for this request: a partner plugin that reads customer data then
        gets ``DataUnavailable`` and is left out of the response (listed as degraded, its breaker not
        charged), never silently served as if the customer had not consented.
        """
        if self._consents is not None:
            return self._consents
        store = ConsentStore(self._factory.db, cache=self._consent_cache)
        with anyio.CancelScope(deadline=self._until(until)) as wait:
            try:
                self._consents = await store.alive_scopes(self.customer_ref, now=self.now)
            except Exception as exc:
                self._unknown_consents(f"could not be read ({type(exc).__name__}: {exc})")
        if wait.cancelled_caught:
            self._unknown_consents("did not arrive in time")
        return self._consents or {}

    @property
    def _consent_cache(self) -> ConsentCache | None:
        return None if self._fresh else self._factory.consent_cache

    def _unknown_consents(self, why: str) -> None:
        self._consents, self._consents_unknown = {}, True
        _CONSENTS_UNKNOWN(f"they {why}")

    def _until(self, until: float | None) -> float:
        given = until if until is not None else self.data_until
        return given if given is not None else data_deadline(self._factory.settings)

    def for_plugin(self, plugin: LoadedPlugin) -> PluginContext:
        """The context ``plugin`` receives in this request (built once, then reused)."""
        ctx = self._contexts.get(plugin.id)
        if ctx is None:
            ctx = self._contexts[plugin.id] = self._build(plugin)
        return ctx

    def for_plugins(self, plugins: Iterable[LoadedPlugin]) -> list[tuple[LoadedPlugin, PluginContext]]:
        """Each of ``plugins`` with its context in this request: :meth:`for_plugin` for a whole page, with
        what every plugin shares looked up once (≈ 0.25 µs a plugin less)."""
        contexts = self._contexts
        factory = self._factory
        plain = factory.branches is None  # no branch layer: a plugin's settings are its own
        records, customer, now, request_id = self.records, self.customer, self.now, self.request_id
        storage, over = factory.plugin_storage, ScopedData.over
        out = []
        for plugin in plugins:
            pid = plugin.id
            ctx = contexts.get(pid)
            if ctx is None:
                granted = plugin.granted
                if plain and plugin.kind != "partner":
                    # What _build makes for this plugin: the bank's view of the customer, no consent.
                    ctx = PluginContext(
                        plugin_id=pid,
                        customer=customer if "profile:basic" in granted else self._unprofiled_customer(),
                        scopes=granted, data=over(records, pid, granted, None), storage=storage(pid),
                        now=now, settings=plugin.settings, request_id=request_id,
                    )
                else:
                    ctx = self._build(plugin)
                contexts[pid] = ctx
            out.append((plugin, ctx))
        return out

    def customer_seen_by(self, plugin_id: str) -> Customer:
        """The customer as ``plugin_id``'s context in this request shows it (a partner without the
        customer's consent to ``profile:basic`` sees no segment or branch), or would show it when the
        plugin has no context here (its campaigns); no segment or branch for a plugin not loaded. What
        the host reads the plugin's targeting against.

        Never reads the database: a partner's view needs the customer's consents read already
        (:meth:`aconsents`); while they are not, or unknown, it has no segment or branch."""
        ctx = self._contexts.get(plugin_id)
        if ctx is not None:
            return ctx.customer
        seen = self._seen.get(plugin_id)
        if seen is None:
            plugin = self._factory.plugins.loaded.get(plugin_id)
            seen = self._seen[plugin_id] = self._view(plugin) if plugin is not None else self._blank(
                self.customer.id
            )
        return seen

    def _view(self, plugin: LoadedPlugin) -> Customer:
        """The customer ``plugin``'s context would show (see :meth:`_build`), without building it."""
        customer = self.customer
        basic = "profile:basic" in plugin.granted
        if plugin.kind == "partner":
            consents = self._consents
            basic = basic and not self._consents_unknown and consents is not None and (
                "profile:basic" in consents.get(plugin.id, _NONE)
            )
            pairwise = self._factory.pairwise_id(plugin.id, self.customer_ref)
            if basic:
                return Customer(
                    id=pairwise, segment=customer.segment, branch=customer.branch, locale=customer.locale
                )
            return self._blank(pairwise)
        return customer if basic else self._blank(customer.id)

    def _unprofiled_customer(self) -> Customer:
        """The customer without profile:basic's segment and branch, built once for every plugin of the
        request not granted profile:basic."""
        if self._unprofiled is None:
            self._unprofiled = Customer(id=self.customer.id, segment="", branch="")
        return self._unprofiled

    def _blank(self, customer_id: str) -> Customer:
        """The customer under ``customer_id`` without profile:basic's segment, branch and locale (the
        platform's default locale stands in: the customer's language is theirs to consent to)."""
        if customer_id == self.customer.id:
            return self._unprofiled_customer()
        return Customer(id=customer_id, segment="", branch="")

    def seen_account_id(self, plugin: LoadedPlugin, account_id: str) -> str:
        """The id under which ``plugin`` sees the bank's ``account_id`` of this customer: a partner's
        pairwise id, the bank's own for an internal plugin."""
        if plugin.kind != "partner":
            return account_id
        return self._factory.pairwise_account_id(plugin.id, self.customer_ref, account_id)

    def bank_account_id(self, plugin: LoadedPlugin, seen_id: str) -> str | None:
        """The bank's id of the customer's account that ``plugin`` sees as ``seen_id``, or ``None`` when
        it sees none of them so (an id it was never given). Reads the customer's accounts: off the event
        loop, or after :meth:`prefetch` with a provider that does I/O (``DataUnavailable`` if it missed)."""
        accounts = self.records.get("accounts", self._factory.provider.accounts)
        ids = [account.id for account in accounts.items] if accounts is not None else []
        return bank_account_id(seen_id, ids, lambda bank_id: self.seen_account_id(plugin, bank_id))

    @property
    def records(self) -> CustomerRecords:
        """The customer's records for this request, shared by every plugin's ``ScopedData``."""
        if self._records is None:
            self._records = CustomerRecords(self._factory.provider, self.customer.id)
        return self._records

    def close(self) -> None:
        """End the request: a context a plugin kept reads no customer data afterwards (its grant and
        the customer's consents were checked for this request only). Call it when the response is
        decided, whatever happened."""
        if self._records is not None:  # no context was built: nothing to close
            self._records.close()

    @property
    def provider_blocks(self) -> bool:
        """True when the bank's data provider does I/O: its records are read before the plugins run."""
        return bool(getattr(self._factory.provider, "blocking", False))

    def prefetch(self, contexts: Iterable[PluginContext]) -> list[str]:
        """Read every record one of ``contexts`` may open, then seal the records (a worker thread's
        job with a provider that does I/O); the plugins then read memory, never the bank. Returns
        the records that could not be read."""
        names = _records_for(contexts)
        records = self.records
        records.prefetch(names)
        records.seal()
        return [name for name in names if not records.has(name)]

    async def aprefetch(self, contexts: Iterable[PluginContext], *, until: float | None = None) -> None:
        """:meth:`prefetch` in worker threads, waiting until ``until`` (event loop clock; default
        ``data_budget_ms`` from now); records that did not arrive by then are unavailable to this
        request's plugins (``DataUnavailable``)."""
        deadline = self._until(until)
        names = _records_for(contexts)
        records = self.records

        slots = self._factory.bank_reads

        def bounded(name: str) -> None:
            if not slots.acquire(blocking=False):
                return  # every slot is held by a read still waiting for the bank
            try:
                records.fetch(name)
            finally:
                slots.release()

        async def fetch(name: str) -> None:
            await host_threads.run_sync(bounded, name, abandon_on_cancel=True)

        if names:
            # Each record in its own thread: one slow one delays no other.
            with anyio.CancelScope(deadline=deadline):
                async with anyio.create_task_group() as group:
                    for name in names:
                        group.start_soon(fetch, name)
        records.seal()

    def _build(self, plugin: LoadedPlugin) -> PluginContext:
        factory, customer = self._factory, self.customer
        records = self.records
        pid = plugin.id
        request_id, now = self.request_id, self.now
        if plugin.kind == "partner":
            request_id = factory.partner_request_id(pid, request_id)
            if not self._fresh:
                # To the second: the request's exact instant, the same for every plugin it calls, would
                # be as good a join key between partners as a shared request id. (The transaction path
                # calls one plugin only, and keeps ctx.now equal to its request's created_at.)
                now = now.replace(microsecond=0)
            consented = self.consents().get(pid, _NONE)
            data = ScopedData.over(
                records, pid, plugin.granted, consented, consent_unknown=self._consents_unknown,
                account_ids=factory.account_ids,
            )
            # data.access("profile:basic") == "allowed", without asking it: granted and consented to
            # (never while the consents are unknown: consents() then gave none), the request not over.
            basic = "profile:basic" in plugin.granted and "profile:basic" in consented and not records.closed
            customer = Customer(
                id=factory.pairwise_id(pid, self.customer_ref),
                segment=customer.segment if basic else "", branch=customer.branch if basic else "",
                locale=customer.locale if basic else DEFAULT_LOCALE,
            )
        else:
            data = ScopedData.over(records, pid, plugin.granted, None)
            if "profile:basic" not in plugin.granted:  # segment and branch are profile:basic's data
                customer = self._unprofiled_customer()
        return PluginContext(
            plugin_id=pid, customer=customer, scopes=plugin.granted, data=data,
            storage=factory.plugin_storage(pid), now=now,
            settings=self.settings_of(plugin),
            request_id=request_id,
        )


_BANK_READS = 16


def _records_for(contexts: Iterable[PluginContext]) -> list[str]:
    """The records any of ``contexts`` may open (its grant, and for a partner the customer's consent)."""
    return sorted({
        record for ctx in contexts for scope, record in RECORD_OF_SCOPE.items()
        if ctx.data.access(scope) == "allowed"
    })
