"""``ConsentStore``: a customer's consents for partner plugins, modelled on open-banking consents.

A consent is customer × plugin × scopes × purpose with a status (``awaiting`` → ``authorised`` →
``revoked``/``expired``) and an expiry. Only ``authorised`` and unexpired consents are *live*; a partner
plugin's customer-data accessors consult :meth:`ConsentStore.live_scopes` on every request. Each worker
may answer that from its :class:`~fulcrum_core.data.consent_cache.ConsentCache` for up to
``consent_cache_ms`` (default 1 s); every write here drops the customer's cached entry in this process
at once, so a revocation takes effect on the customer's next request served by the same worker, and
within ``consent_cache_ms`` on every other worker (:meth:`ConsentStore.alive_scopes`, the request
path's reader, also shares concurrent misses and refreshes busy entries ahead of their lapse; see
``consent_cache``). The OAuth authorization flow records each consent with
:meth:`~ConsentStore.supersede` (it replaces the customer's earlier ones for that plugin, in one
transaction); the demo seeds them with :meth:`~ConsentStore.grant`.
"""

from __future__ import annotations

import builtins
import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

import msgspec
from fulcrum_sdk.scopes import is_known
from sqlalchemy import bindparam, func, select, update

from fulcrum_core import host_threads
from fulcrum_core.data import consent_cache
from fulcrum_core.data.consent_cache import ConsentCache, LiveConsent, Reader, scopes_at
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import domain_errors
from fulcrum_core.data.models.consent import ConsentRow
from fulcrum_core.data.prepared import PreparedRead
from fulcrum_core.data.reconnect import idempotent_read
from fulcrum_core.data.types import utcnow
from fulcrum_core.errors import BadRequest, Conflict, NotFound

__all__ = ["ConsentStatus", "ConsentStore", "ConsentView", "RevokeEffect"]

ConsentStatus = Literal["awaiting", "authorised", "revoked", "expired"]
RevokeEffect = Literal["data_access", "tokens_only"]
"""What revoking a consent ends: a partner's reading of the data and its tokens (``data_access``), or,
for the bank's own plugins, which read customer data under the bank's grant, only its tokens."""

_MAX_PURPOSE = 500

# Built once and run on the cursor (a statement built per read, or run through ``Connection.execute``,
# costs more CPU than the read): partner plugins need it on every request whose consents are not cached.
_LIVE = PreparedRead(
    select(ConsentRow.plugin_id, ConsentRow.scopes, ConsentRow.expires_at).where(
        ConsentRow.customer_ref == bindparam("customer_ref"),
        ConsentRow.status == "authorised",
        ConsentRow.expires_at > bindparam("at"),
    )
)


def _consent_lock(customer_ref: str, plugin_id: str) -> int:
    """The PostgreSQL advisory lock key of one customer × plugin (a signed 64-bit integer)."""
    digest = hashlib.sha256(f"fulcrum consent\x00{customer_ref}\x00{plugin_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ConsentView(msgspec.Struct, frozen=True, kw_only=True):
    """A consent as the customer sees it; ``status`` is ``expired`` once ``expires_at`` has passed."""

    id: str
    plugin_id: str
    scopes: frozenset[str]
    purpose: str
    status: ConsentStatus
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoke_effect: RevokeEffect = "data_access"


def _effective_status(row: ConsentRow, now: datetime) -> ConsentStatus:
    if row.status in ("awaiting", "authorised") and row.expires_at <= now:
        return "expired"
    return row.status  # type: ignore[return-value]


def _view(row: ConsentRow, now: datetime) -> ConsentView:
    return ConsentView(
        id=row.id, plugin_id=row.plugin_id, scopes=frozenset(row.scopes.split()), purpose=row.purpose,
        status=_effective_status(row, now), created_at=row.created_at, expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def _check_scopes(scopes: Iterable[str]) -> str:
    wanted = sorted(set(scopes))
    if not wanted:
        raise BadRequest("a consent needs at least one scope", field="scopes")
    unknown = [s for s in wanted if not is_known(s)]
    if unknown:
        raise BadRequest(f"unknown scope(s): {', '.join(unknown)}", field="scopes")
    return " ".join(wanted)


class ConsentStore:
    """Reads and writes the ``consents`` table.

    With a ``cache``, :meth:`live_scopes` answers from it when it can and fills it otherwise. Writes
    always invalidate the customer in every cache attached to ``db`` (``consent_cache.attach``), so
    stores built without one (OAuth, demo seeding, tests) still keep the request path's cache honest.
    """

    def __init__(self, db: Database, *, cache: ConsentCache | None = None) -> None:
        self._db = db
        self._cache = cache

    def live_scopes(self, customer_ref: str, now: datetime | None = None) -> dict[str, frozenset[str]]:
        """Plugin id → the scopes the customer has a live (authorised, unexpired) consent for."""
        at = now or utcnow()
        cache = self._cache
        if cache is None:
            return scopes_at(self._live(customer_ref, at), at)
        hit = cache.get(customer_ref, at)
        if hit is not None:
            return hit
        token = cache.token()
        found = self._live(customer_ref, at)  # a failed read raises: nothing is cached
        cache.put(customer_ref, found, at, token)
        return scopes_at(found, at)

    async def alive_scopes(
        self, customer_ref: str, now: datetime | None = None
    ) -> dict[str, frozenset[str]]:
        """:meth:`live_scopes` on the event loop: a hit returns without suspending (and may start a
        background refresh); a miss reads in a worker thread, shared with concurrent misses."""
        at = now or utcnow()
        cache = self._cache
        if cache is None:
            return scopes_at(await host_threads.run_sync(self._live, customer_ref, at), at)
        hit, due = cache.probe(customer_ref, at)
        if hit is not None:
            if due:
                cache.refresh(customer_ref, at, self.reader(customer_ref, at))
            return hit
        return await cache.load(customer_ref, at, self.reader(customer_ref, at))

    def reader(self, customer_ref: str, at: datetime) -> Reader:
        """A blocking read of the customer's live consents at ``at``, for the cache to run in a thread."""
        return lambda: self._live(customer_ref, at)

    @idempotent_read
    def _live(self, customer_ref: str, at: datetime) -> builtins.list[LiveConsent]:
        # One statement, so no transaction around it (no BEGIN/ROLLBACK): ``single_reads``.
        with domain_errors(), self._db.single_reads.connect() as conn:
            rows = _LIVE.rows(conn, {"customer_ref": customer_ref, "at": at})
            return [
                LiveConsent(plugin_id, frozenset(scopes.split()), expires_at)
                for plugin_id, scopes, expires_at in rows
            ]

    def request(
        self,
        customer_ref: str,
        plugin_id: str,
        scopes: Iterable[str],
        purpose: str,
        expires_at: datetime,
        *,
        now: datetime | None = None,
    ) -> str:
        """Record a consent ``awaiting`` the customer's decision; returns its id."""
        return self._insert(customer_ref, plugin_id, scopes, purpose, expires_at, "awaiting", now)

    def grant(
        self,
        customer_ref: str,
        plugin_id: str,
        scopes: Iterable[str],
        purpose: str,
        expires_at: datetime,
        *,
        now: datetime | None = None,
    ) -> str:
        """Record a consent the customer has given (``authorised``); returns its id."""
        return self._insert(customer_ref, plugin_id, scopes, purpose, expires_at, "authorised", now)

    def supersede(
        self,
        customer_ref: str,
        plugin_id: str,
        scopes: Iterable[str],
        purpose: str,
        expires_at: datetime,
        *,
        now: datetime | None = None,
    ) -> tuple[str, bool]:
        """Record a consent the customer has just given (``authorised``) in place of every earlier
        ``awaiting`` or ``authorised`` one of theirs for the plugin, which are revoked in the same
        transaction; its id, and whether any was revoked.

        One customer × plugin supersedes one at a time (SQLite's write lock; a transaction-scoped
        advisory lock on PostgreSQL), so however two authorizations interleave (a consent form
        submitted twice at once) exactly one consent is left live, and one ``DELETE`` ends it."""
        at = now or utcnow()
        row = self._new_row(customer_ref, plugin_id, scopes, purpose, expires_at, "authorised", at)
        try:
            with self._db.session() as session:
                if self._db.dialect == "postgresql":
                    lock = _consent_lock(customer_ref, plugin_id)
                    session.execute(select(func.pg_advisory_xact_lock(lock)))
                revoked = session.execute(
                    update(ConsentRow)
                    .where(
                        ConsentRow.customer_ref == customer_ref,
                        ConsentRow.plugin_id == plugin_id,
                        ConsentRow.status.in_(("awaiting", "authorised")),
                        ConsentRow.expires_at > at,  # an expired one stays listed as expired
                    )
                    .values(status="revoked", revoked_at=at)
                    .returning(ConsentRow.id)
                ).scalars().all()
                session.add(row)
        finally:
            consent_cache.invalidate(self._db, customer_ref)  # after the commit: see consent_cache
        return row.id, bool(revoked)

    def authorise(self, consent_id: str, customer_ref: str, *, now: datetime | None = None) -> ConsentView:
        """Move an ``awaiting`` consent of this customer to ``authorised`` (409 from any other state)."""
        return self._transition(consent_id, customer_ref, ("awaiting",), "authorised", now)

    def revoke(self, consent_id: str, customer_ref: str, *, now: datetime | None = None) -> ConsentView:
        """Revoke the customer's consent; revoking a revoked or expired one changes nothing.

        A consent of another customer is reported as not found, never as forbidden.
        """
        return self._transition(consent_id, customer_ref, ("awaiting", "authorised"), "revoked", now)

    @idempotent_read
    def get(self, consent_id: str, customer_ref: str, *, now: datetime | None = None) -> ConsentView:
        """One of the customer's consents (404 when it is not theirs)."""
        with self._db.read_session() as session:
            row = session.get(ConsentRow, consent_id)
            if row is None or row.customer_ref != customer_ref:
                raise NotFound(f"no consent {consent_id!r}", field="consent_id")
            return _view(row, now or utcnow())

    @idempotent_read
    def list(self, customer_ref: str, *, now: datetime | None = None) -> builtins.list[ConsentView]:
        """Every consent of the customer, newest first, with expiry applied to the status."""
        at = now or utcnow()
        stmt = (
            select(ConsentRow)
            .where(ConsentRow.customer_ref == customer_ref)
            .order_by(ConsentRow.created_at.desc(), ConsentRow.id)
        )
        with self._db.read_session() as session:
            return [_view(row, at) for row in session.scalars(stmt)]

    # --- internals -------------------------------------------------------------------------------

    def _insert(
        self,
        customer_ref: str,
        plugin_id: str,
        scopes: Iterable[str],
        purpose: str,
        expires_at: datetime,
        status: ConsentStatus,
        now: datetime | None,
    ) -> str:
        at = now or utcnow()
        row = self._new_row(customer_ref, plugin_id, scopes, purpose, expires_at, status, at)
        try:
            with self._db.session() as session:
                session.add(row)
        finally:
            consent_cache.invalidate(self._db, customer_ref)  # after the commit: see consent_cache
        return row.id

    @staticmethod
    def _new_row(
        customer_ref: str,
        plugin_id: str,
        scopes: Iterable[str],
        purpose: str,
        expires_at: datetime,
        status: ConsentStatus,
        at: datetime,
    ) -> ConsentRow:
        """A new consent row, its fields checked (400 naming the one refused)."""
        if not customer_ref:
            raise BadRequest("customer_ref is required", field="customer_ref")
        if not plugin_id:
            raise BadRequest("plugin_id is required", field="plugin_id")
        joined = _check_scopes(scopes)
        purpose = purpose.strip()
        if not purpose or len(purpose) > _MAX_PURPOSE:
            raise BadRequest(f"purpose must be 1–{_MAX_PURPOSE} characters", field="purpose")
        if expires_at.tzinfo is None:
            raise BadRequest("expires_at must carry a time zone", field="expires_at")
        if expires_at <= at:
            raise BadRequest("expires_at must be in the future", field="expires_at")
        return ConsentRow(
            id=uuid.uuid4().hex, customer_ref=customer_ref, plugin_id=plugin_id, scopes=joined,
            purpose=purpose, status=status, created_at=at, expires_at=expires_at,
        )

    def _transition(
        self,
        consent_id: str,
        customer_ref: str,
        allowed_from: tuple[ConsentStatus, ...],
        to: ConsentStatus,
        now: datetime | None,
    ) -> ConsentView:
        at = now or utcnow()
        values: dict[str, object] = {"status": to}
        if to == "revoked":
            values["revoked_at"] = at
        try:
            view, changed = self._update(consent_id, customer_ref, allowed_from, values, at)
        finally:
            consent_cache.invalidate(self._db, customer_ref)  # after the commit: see consent_cache
        if changed is None and to == "authorised":
            raise Conflict(f"consent {consent_id!r} is {view.status}, not awaiting", code="consent.state")
        return view

    def _update(
        self,
        consent_id: str,
        customer_ref: str,
        allowed_from: tuple[ConsentStatus, ...],
        values: dict[str, object],
        at: datetime,
    ) -> tuple[ConsentView, str | None]:
        with self._db.session() as session:
            # One conditional UPDATE: a concurrent transition cannot be lost or applied twice.
            changed = session.execute(
                update(ConsentRow)
                .where(
                    ConsentRow.id == consent_id,
                    ConsentRow.customer_ref == customer_ref,
                    ConsentRow.status.in_(allowed_from),
                    ConsentRow.expires_at > at,
                )
                .values(**values)
                .returning(ConsentRow.id)
            ).scalar_one_or_none()
            row = session.get(ConsentRow, consent_id, populate_existing=True)
            if row is None or row.customer_ref != customer_ref:
                raise NotFound(f"no consent {consent_id!r}", field="consent_id")
            view = _view(row, at)
        return view, changed
