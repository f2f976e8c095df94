"""``TransactionService``: the transaction pipeline from request body to journaled outcome.

    token names an OAuth client?                403 transaction.client_missing
    Idempotency-Key present?                    400 idempotency.key_missing (names the header)
    body is {"type": …, "params": {…}}?          400 body.* (names the field)
    key used before by this customer through    same body → stored response, replayed
    this OAuth client (or before clients were   other body → 422 idempotency.mismatch
    recorded, through any that may read it)?    still pending → 409 idempotency.in_flight
                                                same body, the plugin never asked (a 503
                                                plugin_unavailable) → checked and run again,
                                                422 idempotency.owner_changed if another
                                                plugin owns the type now; 422
                                                idempotency.expired past the retry window
                                                from the first request (ended as failed)
    type known?                                 422 transaction.unknown_type
    params pass the type's msgspec schema?      422 transaction.invalid_params (names params.<field>)
    owning plugin active, holds its scopes?     403 transaction.plugin_inactive / plugin_scope_missing
    suitability: product risk vs tolerance      422 suitability.risk_too_high / assessment_expired /
                                                    assessment_missing
    limits: amount ≤ max_transaction_fen        422 limits.max_amount
    account parameters one of the customer's    422 transaction.unknown_account (names params.<field>;
    accounts as the plugin sees them?               the journal keeps the bank's account id)
    journal row ``pending`` COMMITTED           (insert-first; a concurrent duplicate loses here)
    execute_transaction under the deadline:
      result succeeded                          201 succeeded
      result failed / TransactionRefused        422 failed   (the plugin's code and message)
      plugin raised                             502 failed   (transaction.plugin_error)
      breaker or bulkhead refused the call,     503 failed   (transaction.plugin_unavailable,
      the plugin was switched off or lost the                 Retry-After; retryable, see below)
      type's scopes, or (a partner) the
      customer's consent its context was built
      on ended, by the time its call started
      (in its worker thread, for a sync call
      that waited for one), or a sync call
      still queued for a worker thread at the
      deadline was withdrawn
      deadline missed, or the result (or the
      refusal) was not a valid TransactionResult 202 unknown (the plugin may have acted: reconcile)

Nothing before the journal row has side effects, so a refusal there is not stored and a retry is
judged afresh. Everything after it is stored and replayed byte for byte, except an outcome the host
knows the plugin never saw (the 503 above: the call was refused or withdrawn before it started): that
row is journaled ``retryable``, and a retry with the same key and body is checked afresh and, one
retry at a time (``Journal.reclaim``), runs the same transaction (same id) again as its next attempt;
the replaced outcome is kept in ``transaction_attempts``. Only within
``Settings.transaction_retry_window_seconds`` of the first request: a later retry ends it for good
(``_expire``). A plugin that raised or timed out may have acted, so those outcomes stay final.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple, Protocol, TypeVar

import msgspec
from fulcrum_sdk._validate import ResultError, UnratedProductError, check_transaction_result, rated_risk
from fulcrum_sdk.context import PluginContext
from fulcrum_sdk.data import DataProvider
from fulcrum_sdk.errors import OutcomeUnknown, TransactionRefused
from fulcrum_sdk.models import (
    LocalizedText,
    RiskLevel,
    TransactionRequest,
    TransactionResult,
    TransactionType,
)
from fulcrum_sdk.storage import PluginStorage

from fulcrum_core import host_threads
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import DatabaseUnavailable
from fulcrum_core.data.models.transaction import UNRECORDED_CLIENT, TransactionRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.dispatch.dispatcher import partner_request_id_of
from fulcrum_core.dispatch.results import PluginCallError
from fulcrum_core.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, Unprocessable
from fulcrum_core.oauth.clients import PLUGIN_CLIENT_PREFIX
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.problem_types import problem_base
from fulcrum_core.settings import Settings
from fulcrum_core.transactions import accounts, checks
from fulcrum_core.transactions.checks import PluginBusyError, PluginFaultError
from fulcrum_core.transactions.expiry import expired_problem
from fulcrum_core.transactions.journal import Journal, plugin_idempotency_key
from fulcrum_core.transactions.models import (
    Suitability,
    TransactionOutcome,
    TransactionResultView,
    TransactionTypeList,
    TransactionTypeView,
    TransactionView,
)
from fulcrum_core.transactions.reconcile import ReconcileReport, reconcile
from fulcrum_core.transactions.render import (
    encode_body,
    outcome_problem,
    replay,
    result_json,
    view_of,
)

__all__ = ["BANK_TIMEZONE", "PluginFaultError", "TransactionService"]

log = logging.getLogger("fulcrum.transactions")
_TX_ID = re.compile(r"^[0-9a-f]{32}\Z")
_FINISH_RETRIES = (0.05, 0.2)
"""Pauses between attempts to journal an outcome the plugin already gave (a database blip)."""
"""What a transaction id looks like (``uuid4().hex``)."""

BANK_TIMEZONE = timezone(timedelta(hours=8), "CST")
"""The bank's calendar (China Standard Time, no daylight saving): an assessment expires by its date."""


# --- what the service needs from its collaborators (the real ones live in plugins / dispatch) -----


class _Plugin(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def granted(self) -> frozenset[str]: ...


class _Plugins(Protocol):
    @property
    def transaction_types(self) -> Mapping[str, tuple[Any, TransactionType]]: ...
    @property
    def all_transaction_types(self) -> Mapping[str, tuple[Any, TransactionType]]: ...
    def is_active(self, plugin_id: str) -> bool: ...


class _RequestContexts(Protocol):
    def for_plugin(self, plugin: Any) -> PluginContext: ...


_T = TypeVar("_T")


class _Contexts(Protocol):
    def for_request(
        self, customer_ref: str, *, request_id: str, now: datetime | None = None, fresh: bool = False
    ) -> Any: ...
    def plugin_storage(self, plugin_id: str, *, fresh: bool = False) -> PluginStorage: ...


class _Dispatcher(Protocol):
    async def call_one(
        self, plugin: Any, hook: str, ctx: PluginContext, *, deadline_ms: int, **kwargs: Any
    ) -> Any: ...
    async def in_plugin_thread(
        self, function: Callable[..., _T], *args: Any, plugin: str | None = None, hook: str | None = None
    ) -> _T: ...
    def retry_after(self, plugin: str, hook: str) -> int: ...


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything decided before the journal row is written."""

    tx_id: str
    now: datetime
    customer_ref: str
    plugin: Any
    tx_type: TransactionType
    params: Any
    params_json: dict[str, Any]
    amount_fen: int | None
    risk_level: RiskLevel | None
    ctx: PluginContext
    # A partner's live consents as ``ctx`` was built on them (``None`` for an internal plugin): checked
    # again as the call starts, so one the customer withdrew meanwhile does not reach the plugin.
    consented: frozenset[str] | None
    # Ends ``ctx``'s request (``RequestContexts.close``): once the plugin has answered, a context it
    # kept reads no customer data.
    close: Callable[[], None]


class _Problem(NamedTuple):
    """A journaled transaction's problem: status, code, detail, the customer's message, the field, and
    whether ``code`` is the plugin's own (typed as a plugin's refusal, ``problem_types.PLUGIN_REFUSAL``)."""

    status: int
    code: str
    detail: str
    message: LocalizedText | None
    field: str | None
    plugin_code: bool = False


def _fields(plan: _Plan) -> dict[str, str]:
    """The structured fields of a log line about ``plan``'s plugin failing: with a partner's own
    request id, so its report can be matched to this line."""
    fields = {"plugin": plan.plugin.id, "hook": "execute_transaction", "transaction_id": plan.tx_id}
    partner = partner_request_id_of(plan.plugin, plan.ctx)
    if partner:
        fields["partner_request_id"] = partner
    return fields


def readable_by(client_id: str, row: TransactionRow) -> bool:
    """Whether ``client_id`` may read ``row``: a plugin's own client (``plugin-<id>``) reads only its
    plugin's transactions, as it submits only its types; the mobile app's client reads all of the
    customer's."""
    if not client_id.startswith(PLUGIN_CLIENT_PREFIX):
        return True
    return row.plugin_id == client_id.removeprefix(PLUGIN_CLIENT_PREFIX)


def _naming(client_id: str, row: TransactionRow) -> dict[str, Any]:
    """The problem member naming ``row``'s id, when ``client_id`` may read it."""
    return {"transaction_id": row.id} if readable_by(client_id, row) else {}


def _consented(contexts: Any, plugin: Any) -> frozenset[str] | None:
    """The customer's live consents to ``plugin`` that its context was built on (a partner's: read
    already, fresh), or ``None`` for an internal plugin, which needs none."""
    if getattr(plugin, "kind", None) != "partner":
        return None
    return frozenset(contexts.consents().get(plugin.id, frozenset()))


def _shown(exc: BaseException) -> str:
    """``repr(exc)`` for a log line, or its type's name when the plugin's exception cannot even be
    printed: the warning about a broken plugin must not raise in turn."""
    try:
        return repr(exc)
    except Exception:
        return f"{type(exc).__name__}(its repr could not be read)"


def _note(plan: _Plan) -> str:
    """The partner's request id in a text log line (empty for any other plugin)."""
    partner = partner_request_id_of(plan.plugin, plan.ctx)
    return f" [partner request id {partner}]" if partner else ""


class TransactionService:
    """Validates, journals, executes and replays transactions; one per host."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        plugins: _Plugins,
        dispatcher: _Dispatcher,
        contexts: _Contexts,
        provider: DataProvider,
    ) -> None:
        self._settings = settings
        self._problem_base = problem_base(settings)
        self._db = db
        self._plugins = plugins
        self._dispatcher = dispatcher
        self._contexts = contexts
        self._provider = provider
        self.journal = Journal(db)
        self._schemas: dict[str, dict[str, Any]] = {}

    # --- POST /v1/transactions -------------------------------------------------------------------

    async def submit(
        self, customer_ref: str, idempotency_key: str | None, body: bytes, *, client_id: str
    ) -> TransactionOutcome:
        """Run the pipeline for one request; raises a ``CoreError`` for a refusal before journaling.

        ``client_id``: the OAuth client that obtained the token. Its idempotency keys are its own: the
        same key from another client of the customer is another transaction. A plugin's client
        (``plugin-<id>``) may submit only the types its plugin owns (the mobile app's may submit any).
        """
        if client_id == UNRECORDED_CLIENT:  # no client has it: it would reach other clients' old rows
            raise Forbidden("the token names no OAuth client", code="transaction.client_missing")
        key = checks.check_idempotency_key(idempotency_key)
        parsed = checks.parse_body(body)
        if client_id.startswith(PLUGIN_CLIENT_PREFIX):
            self._check_owner(client_id.removeprefix(PLUGIN_CLIENT_PREFIX), parsed.body.type)
        existing = await host_threads.to_thread(self.journal.find, customer_ref, client_id, key)
        if existing is not None:
            if existing.client_id == UNRECORDED_CLIENT and not readable_by(client_id, existing):
                raise self._taken_before(existing)
            if not (existing.retryable and existing.request_hash == parsed.request_hash):
                return self._replay(existing, parsed.request_hash, client_id)
            if self._window_closed(existing, utcnow()):
                return await self._expire(existing, parsed.request_hash)
            # The plugin never saw the last attempt: checked afresh, the same transaction runs again.
            plan = await self._planned(customer_ref, parsed.body, tx_id=existing.id)
            if plan.plugin.id != existing.plugin_id:
                raise Unprocessable(
                    f"this {checks.IDEMPOTENCY_HEADER} was used for a {existing.type} transaction sent to "
                    f"plugin {existing.plugin_id!r}, which no longer runs that type (now "
                    f"{plan.plugin.id!r}); use a new key to send it to the new one",
                    code="idempotency.owner_changed",
                    field=checks.IDEMPOTENCY_HEADER,
                    **_naming(client_id, existing),
                )
            return await asyncio.shield(self._rerun(plan, existing, parsed.request_hash))
        plan = await self._planned(customer_ref, parsed.body)
        row = TransactionRow(
            id=plan.tx_id,
            customer_ref=customer_ref,
            client_id=client_id,
            idempotency_key=key,
            request_hash=parsed.request_hash,
            type=plan.tx_type.key,
            plugin_id=plan.plugin.id,
            params=plan.params_json,
            amount_fen=plan.amount_fen,
            risk_level=plan.risk_level,
            status="pending",
            created_at=plan.now,
            updated_at=plan.now,
            first_seen_at=plan.now,
            attempts=1,
        )
        # From the insert on, the plugin call and the journal update run to the end even if the client
        # goes away: a row committed as the request is cancelled must not be left pending, unexecuted.
        return await asyncio.shield(self._journaled(plan, row, parsed.request_hash))

    async def _journaled(self, plan: _Plan, row: TransactionRow, request_hash: str) -> TransactionOutcome:
        """Insert the pending row and execute it, or replay the row a concurrent duplicate got in first."""
        try:
            inserted = await host_threads.to_thread(self.journal.insert_pending, row)
        except DatabaseUnavailable:
            # The connection may have gone after the commit: a row committed but not run would answer
            # 409 to every retry until reconciliation. Read whether it is in (reads retry a lost connection).
            if not await self._committed(row):
                raise
            inserted = True
        if not inserted:
            # A concurrent request with the same key got its row in first.
            return await self._replay_current(row, request_hash)
        return await self._execute(plan, row)

    async def _committed(self, row: TransactionRow) -> bool:
        """Whether ``row``, whose insert failed unacknowledged, is in the journal after all; ``False`` when
        the journal cannot be read either (the row, if in, stays pending for reconciliation)."""
        try:
            found = await host_threads.to_thread(self.journal.get, row.id)
        except DatabaseUnavailable:
            return False
        return found is not None

    async def _replay_current(self, row: TransactionRow, request_hash: str) -> TransactionOutcome:
        """Replay the row under ``row``'s key (its customer's and client's) as a concurrent request
        with the same key left it."""
        key = row.idempotency_key
        current = await host_threads.to_thread(self.journal.find, row.customer_ref, row.client_id, key)
        if current is None:  # pragma: no cover - the unique row cannot vanish
            raise Conflict("the transaction is being processed; retry shortly", code="idempotency.in_flight")
        same = current.request_hash == request_hash
        if current.retryable and same and self._window_closed(current, utcnow()):
            return await self._expire(current, request_hash)  # it closed while this retry was checked
        return self._replay(current, request_hash, row.client_id)

    def _window_closed(self, row: TransactionRow, now: datetime) -> bool:
        """Whether ``row``, first seen at ``first_seen_at``, is past its retry window at ``now``."""
        return now - row.first_seen_at >= timedelta(seconds=self._settings.transaction_retry_window_seconds)

    async def _expire(self, row: TransactionRow, request_hash: str) -> TransactionOutcome:
        """End ``row`` (retryable, as read) as failed for good, answering 422 ``idempotency.expired``
        now and on every later retry; or replay the row as a concurrent retry that got there first
        left it.

        Why refuse rather than run or forget: the customer asked for this payment at ``first_seen_at``
        and was told it was not carried out. Stripe-style APIs forget a key after its window (24 h) and
        treat its reuse as a new request, which here would carry out days later a payment intent the
        customer may have given up on or made another way. So past the window the key still names
        its transaction, which ends as ``failed``; a 422 (not 409, which says "retry shortly") tells
        the app to ask the customer again and send a new request under a new key.
        """
        now = utcnow()
        problem = expired_problem(
            row, window_seconds=self._settings.transaction_retry_window_seconds, now=now,
            problem_base=self._problem_base,
        )
        expired = await host_threads.to_thread(
            self.journal.expire, row, response_status=422, response_body=encode_body(problem), now=now
        )
        if not expired:
            return await self._replay_current(row, request_hash)
        log.info("transaction %s: retried after its retry window closed; ended as failed", row.id)
        return TransactionOutcome(422, problem)

    async def _rerun(self, plan: _Plan, row: TransactionRow, request_hash: str) -> TransactionOutcome:
        """Take ``row`` (retryable, as read) back to pending and execute it, or replay the row as a
        concurrent retry that took it first left it."""
        window = timedelta(seconds=self._settings.transaction_retry_window_seconds)
        try:
            retry = await host_threads.to_thread(
                self.journal.reclaim, row, plugin_id=plan.plugin.id, amount_fen=plan.amount_fen,
                risk_level=plan.risk_level, now=plan.now, first_seen_after=plan.now - window,
            )
        except DatabaseUnavailable:
            # As for an insert: the row may be ours now, pending, with nobody to run it.
            retry = await self._reclaimed(row, plan)
            if retry is None:
                raise
        if retry is None:
            return await self._replay_current(row, request_hash)
        # The plugin never saw the earlier attempt: this one is carried out now, and dated now (its
        # ctx.now and request.created_at agree, and reconciliation would ask it as of then).
        return await self._execute(plan, retry)

    async def _reclaimed(self, row: TransactionRow, plan: _Plan) -> TransactionRow | None:
        """``row`` as this retry's ``reclaim`` left it when that committed unacknowledged: pending at the
        next attempt, dated as ``plan`` (no concurrent retry's plan has the same instant); else ``None``."""
        try:
            found = await host_threads.to_thread(self.journal.get, row.id)
        except DatabaseUnavailable:
            return None
        if found is None or (found.status, found.attempts, found.created_at) != (
            "pending", row.attempts + 1, plan.now
        ):
            return None
        return found

    async def _planned(self, customer_ref: str, body: Any, *, tx_id: str | None = None) -> _Plan:
        """``_plan`` in a worker thread, under the transaction deadline: it runs plugin code (the params
        Struct's ``__post_init__``, ``risk_of``), and a plugin that hangs there must not hold the request.
        Nothing is journaled yet, so a late plan is simply refused; its thread (one of the dispatcher's
        plugin threads, not the loop's default executor that the journal uses) is abandoned."""
        deadline_ms = self._settings.deadlines.execute_transaction
        # The owner's execute_transaction bulkhead caps the threads its checking code can hold.
        active = self._plugins.transaction_types.get(body.type)
        owner = active[0].id if active is not None else None
        try:
            planning = self._dispatcher.in_plugin_thread(
                self._plan, customer_ref, body, tx_id, plugin=owner, hook="execute_transaction"
            )
            return await asyncio.wait_for(planning, deadline_ms / 1000)
        except PluginCallError as exc:
            log.warning("plugin %r: a %s request refused unchecked: %s", exc.plugin, body.type, exc.detail)
            raise PluginBusyError(
                f"plugin {exc.plugin!r} is temporarily unavailable: too many of its requests are still "
                "being checked; nothing was carried out",
                plugin=exc.plugin,
                headers={"Retry-After": "1"},
            ) from None
        except TimeoutError:
            entry = self._plugins.all_transaction_types.get(body.type)
            plugin = entry[0].id if entry else "?"
            log.warning("plugin %r: checking a %r request took over %d ms", plugin, body.type, deadline_ms)
            raise PluginFaultError(
                f"plugin {plugin!r} did not finish checking this {body.type} request within {deadline_ms} ms",
                plugin=plugin,
            ) from None

    def _check_owner(self, acting_plugin: str, type_key: str) -> None:
        """403 when a plugin's token asks for a type another plugin owns (an unknown type is left to
        the 422 of the pipeline)."""
        entry = self._plugins.all_transaction_types.get(type_key)
        if entry is not None and entry[0].id != acting_plugin:
            raise Forbidden(
                f"this token was issued to plugin {acting_plugin!r}, which may submit only its own "
                f"transaction types; {type_key!r} belongs to {entry[0].id!r}",
                code="transaction.not_owner",
                field="type",
            )

    @staticmethod
    def _taken_before(row: TransactionRow) -> Unprocessable:
        """The 422 for a client that cannot have sent ``row``, journaled under its key before keys were
        kept per client (another plugin's client: it submits only its own plugin's types). Its outcome is
        someone else's, so it is neither replayed nor run again, nor its id named; a new key is."""
        return Unprocessable(
            f"this {checks.IDEMPOTENCY_HEADER} was used for one of the customer's transactions before keys "
            "were kept per client, by a client other than this one; use a new key for a new transaction",
            code="idempotency.mismatch",
            field=checks.IDEMPOTENCY_HEADER,
        )

    def _replay(self, row: TransactionRow, request_hash: str, client_id: str) -> TransactionOutcome:
        """``row``'s outcome again for ``client_id``'s repeat, or the 422 / 409 of a key in use; the
        problem names the row's id only to a client that may read it."""
        if row.request_hash != request_hash:
            raise Unprocessable(
                f"this {checks.IDEMPOTENCY_HEADER} was already used for a different request; "
                "use a new key for a new transaction",
                code="idempotency.mismatch",
                field=checks.IDEMPOTENCY_HEADER,
                **_naming(client_id, row),
            )
        if row.status == "pending" or row.response_status is None:
            raise Conflict(
                "a request with this idempotency key is still being processed; retry shortly",
                code="idempotency.in_flight",
                field=checks.IDEMPOTENCY_HEADER,
                headers={"Retry-After": "1"},
                **_naming(client_id, row),
            )
        outcome = replay(row, problem_base=self._problem_base)
        if outcome.retry_after is None:
            return outcome
        return dataclasses.replace(outcome, retry_after=self._retry_after(row.plugin_id))

    def _retry_after(self, plugin_id: str) -> int:
        """``Retry-After`` of an outcome the plugin never saw: its breaker's wait when it is open."""
        return self._dispatcher.retry_after(plugin_id, "execute_transaction")

    def _plan(self, customer_ref: str, body: Any, tx_id: str | None = None) -> _Plan:
        entry = self._plugins.all_transaction_types.get(body.type)
        if entry is None:
            raise Unprocessable(
                f"unknown transaction type {body.type!r}; GET /v1/transaction-types lists them",
                code="transaction.unknown_type",
                field="type",
            )
        plugin, tx_type = entry
        # The kill switch first: a suspended or unapproved plugin's code (its params Struct's
        # validation, its risk_of) never runs on a customer's request.
        active = self._plugins.transaction_types.get(body.type)
        if active is None:
            raise Forbidden(
                f"transaction type {body.type!r} is not available: its plugin {plugin.id!r} is not enabled",
                code="transaction.plugin_inactive",
                field="type",
            )
        plugin = active[0]  # the current grant, not the one at load time
        params = checks.decode_params(tx_type, body.params, plugin_id=plugin.id)
        missing = sorted(accounts.required_scopes(tx_type) - plugin.granted)
        if missing:
            raise Forbidden(
                f"plugin {plugin.id!r} is not granted {', '.join(missing)}, which {body.type!r} requires",
                code="transaction.plugin_scope_missing",
                field="type",
                missing_scopes=missing,
            )
        tx_id = tx_id or uuid.uuid4().hex
        now = utcnow()
        # Consents read fresh too: one revoked in another worker must not reach the plugin.
        contexts = self._contexts.for_request(customer_ref, request_id=tx_id, now=now, fresh=True)
        checks.check_enabled_for_customer(contexts, plugin, body.type)
        risk = self._risk_of(plugin.id, tx_type, params)
        checks.check_suitability(risk, self._provider.risk(customer_ref), self._today())
        amount = checks.amount_of(tx_type, params)
        checks.check_amount(tx_type, amount, self._settings.max_transaction_fen)
        # The transaction path reads storage fresh, never from the display hooks' cache.
        ctx = msgspec.structs.replace(
            contexts.for_plugin(plugin), storage=self._contexts.plugin_storage(plugin.id, fresh=True)
        )
        if contexts.provider_blocks:
            # Still in a worker thread: the plugin's records are read here, not on the event loop,
            # and a record the bank could not give stops the request before anything is journaled.
            missing = contexts.prefetch([ctx])
            if missing:
                raise ServiceUnavailable(
                    f"the bank's customer data ({', '.join(missing)}) could not be read; nothing was "
                    "carried out; retry shortly",
                    code="transaction.data_unavailable",
                    headers={"Retry-After": "1"},
                )
        params_json = msgspec.to_builtins(params)
        if tx_type.account_fields:  # the journal names the bank's accounts, never a partner's ids
            params_json = accounts.bank_params(
                tx_type, params, params_json, contexts=contexts, plugin=plugin, ctx=ctx
            )
        return _Plan(
            tx_id=tx_id,
            now=now,
            customer_ref=customer_ref,
            plugin=plugin,
            tx_type=tx_type,
            params=params,
            params_json=params_json,
            amount_fen=amount,
            risk_level=risk,
            ctx=ctx,
            consented=_consented(contexts, plugin),
            close=contexts.close,
        )

    @staticmethod
    def _risk_of(plugin_id: str, tx_type: TransactionType, params: Any) -> RiskLevel:
        try:
            return rated_risk(tx_type, params)
        except UnratedProductError as exc:
            raise Unprocessable(
                str(exc), code="suitability.product_unrated", field=checks.param_field(tx_type, exc.field)
            ) from None
        except TransactionRefused as exc:
            raise checks.refusal(exc, plugin_id=plugin_id) from None
        except BaseException as exc:  # a SystemExit or KeyboardInterrupt in risk_of is the plugin's fault too
            log.warning("plugin %r: risk_of for %r failed: %r", plugin_id, tx_type.key, exc)
            raise PluginFaultError(
                f"plugin {plugin_id!r} could not rate the product risk of this {tx_type.key} request",
                plugin=plugin_id,
            ) from None

    @staticmethod
    def _today() -> date:
        return datetime.now(BANK_TIMEZONE).date()

    async def _execute(
        self,
        plan: _Plan,
        row: TransactionRow,
        *,
        settling: bool = False,
        not_asked: dict[str, str] | None = None,
    ) -> TransactionOutcome:
        """Call the plugin and journal its answer. ``settling`` (reconciliation): a refusal because
        the first attempt is still claimed, or a call that gives no answer (the plugin raised, its
        breaker or bulkhead refused), leaves the row unknown instead of failing it: the first attempt
        may have acted. ``not_asked`` gets why, when the call was refused before the plugin saw it."""
        request = TransactionRequest(
            id=plan.tx_id,
            type=plan.tx_type.key,
            params=plan.params,
            idempotency_key=plugin_idempotency_key(row),
            amount_fen=plan.amount_fen,
            risk_level=plan.risk_level,
            created_at=plan.now,
        )
        result: TransactionResult | None = None
        problem: _Problem | None = None
        status = "unknown"
        retryable = False  # the plugin was never asked: a retry with the same key may run it
        try:
            withdrawn = (
                self._withdrawn(plan) if plan.consented is None
                else await host_threads.to_thread(self._start_refused, plan)
            )
            if withdrawn is not None:
                # Switched off, narrowed or its consent withdrawn since the checks: the registry and the
                # customer win over a journaled row.
                raise PluginCallError(plan.plugin.id, "execute_transaction", "rejected", withdrawn)
            raw = await self._dispatcher.call_one(
                plan.plugin,
                "execute_transaction",
                plan.ctx,
                deadline_ms=self._settings.deadlines.execute_transaction,
                # A sync plugin may wait its whole deadline for a thread: checked again as it starts.
                at_start=functools.partial(self._start_refused, plan),
                request=request,
            )
            result = check_transaction_result(raw)
            status = result.status
            if result.status == "failed":
                message = result.message or _FAILED
                problem = _Problem(
                    422, result.code or "transaction.failed", message.zh_CN, message, None, bool(result.code)
                )
        except OutcomeUnknown as exc:  # the plugin may have acted: reconciliation settles it
            log.warning(
                "transaction %s: plugin %r cannot confirm its outcome: %s%s", plan.tx_id, plan.plugin.id, exc,
                _note(plan), extra=_fields(plan),
            )
        except TransactionRefused as exc:
            try:  # the refusal is journaled and answered like a failed result: it must be a valid one
                result, message, field = checks.checked_refusal(exc)
            except ResultError as err:
                log.warning(
                    "transaction %s: plugin %r refused invalidly: %s%s", plan.tx_id, plan.plugin.id, err,
                    _note(plan), extra=_fields(plan),
                )
            else:
                code = result.code or "transaction.failed"
                if settling and code.endswith(".request_in_progress"):
                    return TransactionOutcome(202, view_of(row))  # its first attempt still holds the key
                status = "failed"
                problem = _Problem(
                    422, code, message.zh_CN, message, f"params.{field}" if field else None, bool(result.code)
                )
        except PluginCallError as exc:
            log.warning("transaction %s: %s%s", plan.tx_id, exc, _note(plan), extra=_fields(plan))
            if settling:
                if exc.kind == "rejected" and not_asked is not None:  # never reached the plugin
                    not_asked[plan.tx_id] = f"its plugin's call was refused: {exc.detail}"
                return TransactionOutcome(202, view_of(row))  # no answer: the first attempt is still unknown
            if exc.kind == "error":
                status = "failed"
                problem = _Problem(
                    502,
                    "transaction.plugin_error",
                    f"plugin {exc.plugin!r} failed: the transaction was not carried out",
                    _PLUGIN_FAILED,
                    None,
                )
            elif exc.kind == "rejected":  # refused before the call started: the plugin did nothing
                status = "failed"
                retryable = True
                problem = _Problem(
                    503,
                    "transaction.plugin_unavailable",
                    f"plugin {exc.plugin!r} is temporarily unavailable: the transaction was not carried out",
                    _PLUGIN_UNAVAILABLE,
                    None,
                )
        except ResultError as exc:
            log.warning(
                "transaction %s: plugin %r returned an invalid result: %s%s", plan.tx_id, plan.plugin.id, exc,
                _note(plan), extra=_fields(plan),
            )
        except Exception:
            log.exception("transaction %s: unexpected error while executing; recorded as unknown", plan.tx_id)
        finally:
            plan.close()
        now = utcnow()
        stored = result_json(result)
        view = msgspec.structs.replace(
            view_of(row),
            status=status,
            updated_at=now,
            result=None if stored is None else msgspec.convert(stored, TransactionResultView),
        )
        outcome = self._outcome(status, view, problem)
        if retryable:
            outcome = dataclasses.replace(outcome, retry_after=self._retry_after(plan.plugin.id))
        for pause in (*_FINISH_RETRIES, None):
            try:
                await host_threads.to_thread(
                    self.journal.finish,
                    plan.tx_id,
                    status=status,
                    result=stored,
                    response_status=outcome.status_code,
                    response_body=encode_body(outcome.body),
                    now=now,
                    retryable=retryable,
                    attempt=row.attempts,
                )
                return outcome
            except DatabaseUnavailable:
                if pause is None:
                    break
                await asyncio.sleep(pause)
        # The plugin has answered but the journal cannot say so: what happened is not on record, so
        # the customer is told "unknown" (never a success the journal does not hold); the row stays
        # pending, and reconciliation marks it unknown.
        log.error("transaction %s: outcome %s could not be journaled; answered unknown", plan.tx_id, status)
        unrecorded = msgspec.structs.replace(view_of(row), status="unknown", updated_at=now)
        return TransactionOutcome(202, unrecorded)

    def _withdrawn(self, plan: _Plan) -> str | None:
        """Why ``plan``'s plugin may no longer be asked to execute it, or ``None``: the registry switched
        it off, or narrowed its grant below the type's scopes, since the checks (a request's, or long
        before, for reconciliation, where a call may carry out what the first attempt never did)."""
        if not self._plugins.is_active(plan.plugin.id):
            return "suspended meanwhile"
        entry = self._plugins.transaction_types.get(plan.tx_type.key)
        if entry is None or entry[0].id != plan.plugin.id:
            return f"no longer runs {plan.tx_type.key!r}"
        missing = sorted(accounts.required_scopes(plan.tx_type) - entry[0].granted)
        return f"no longer granted {', '.join(missing)}" if missing else None

    def _start_refused(self, plan: _Plan) -> str | None:
        """:meth:`_withdrawn`, and for a partner whether the customer withdrew (or let lapse) a consent
        ``plan``'s context was built on: why its plugin may not start executing it now, or ``None``.
        Reads the database: a worker thread's job (the dispatcher asks it in the plugin's own thread as
        the call starts). Consents that cannot be read refuse too: the call is not made blind."""
        withdrawn = self._withdrawn(plan)
        if withdrawn is not None or not plan.consented:
            return withdrawn
        try:
            live = ConsentStore(self._db).live_scopes(plan.customer_ref, now=utcnow())
        except Exception as exc:
            return f"the customer's consents could not be read ({type(exc).__name__})"
        lost = sorted((plan.consented & plan.plugin.granted) - live.get(plan.plugin.id, frozenset()))
        return f"the customer's consent to {', '.join(lost)} ended meanwhile" if lost else None

    async def resolve_unknown(
        self, *, limit: int = 100, not_asked: dict[str, str] | None = None
    ) -> list[tuple[str, str]]:
        """Ask the owning plugin again about each transaction of unknown outcome, with the same
        request and idempotency key, and journal what it answers: ``(id, status)`` per row. Rows are
        read ``limit`` at a time, oldest first, to the last: rows that stay unknown on every run
        never keep newer ones from being asked about.

        A plugin's ``execute_transaction`` is idempotent per key (``run_once`` replays the stored
        result), so a second call settles the outcome without applying anything twice. A row stays
        ``unknown`` while its plugin is not running or no longer holds the type's scopes, cannot decode
        the row, refuses as still in progress (its first attempt's claim is held), cannot confirm again,
        raises or is refused the call by its breaker or bulkhead. ``not_asked``: filled with why, by id,
        for each row whose plugin was not asked at all (not running here, its params not decodable, its
        call refused).
        """
        settled: list[tuple[str, str]] = []
        why_not = not_asked if not_asked is not None else {}
        rows = await host_threads.to_thread(self.journal.by_status, "unknown", limit=limit)
        while rows:
            settled += await self._resolve(rows, why_not)
            rows = await host_threads.to_thread(
                self.journal.by_status, "unknown", limit=limit, after=rows[-1]
            )
        return settled

    async def _resolve(self, rows: list[TransactionRow], not_asked: dict[str, str]) -> list[tuple[str, str]]:
        """:meth:`resolve_unknown` for one page of rows."""
        settled: list[tuple[str, str]] = []
        for row in rows:
            plan = await self._replan(row)
            if isinstance(plan, str):
                not_asked[row.id] = plan
                settled.append((row.id, "unknown"))
                continue
            outcome = await self._execute(plan, row, settling=True, not_asked=not_asked)
            body = outcome.body
            status = body.status if isinstance(body, TransactionView) else (
                body.transaction.status if body.transaction is not None else "unknown"
            )
            settled.append((row.id, status))
        return settled

    async def _replan(self, row: TransactionRow) -> _Plan | str:
        """The plan of a journaled row, for its running owner; why not, when it cannot be rebuilt now.
        Rebuilding runs the plugin's params ``__post_init__``, so it runs as :meth:`_planned` does: in
        one of the owner's plugin threads, under the transaction deadline. A plugin that hangs there
        (or whose bulkhead is full) leaves that row unknown, logged, and the run goes on."""
        active = self._plugins.transaction_types.get(row.type)
        if active is None or active[0].id != row.plugin_id:
            why = f"plugin {row.plugin_id!r} is not running here" + (
                f" (type {row.type!r} is {active[0].id!r}'s now)" if active is not None else ""
            )
            log.warning(
                "transaction %s cannot be asked about again: %s", row.id, why,
                extra={"plugin": row.plugin_id, "transaction_id": row.id},
            )
            return why
        plugin, tx_type = active
        deadline_ms = self._settings.deadlines.execute_transaction
        try:
            async with asyncio.timeout(deadline_ms / 1000):
                plan = await self._dispatcher.in_plugin_thread(
                    self._rebuild, row, plugin, tx_type, plugin=plugin.id, hook="execute_transaction"
                )
            return plan if plan is not None else "its plugin could not decode the journaled params"
        except PluginCallError as exc:
            why = f"its plugin refused the call: {exc.detail}"
        except TimeoutError:
            why = f"its plugin did not finish decoding its params within {deadline_ms} ms"
        log.warning(
            "transaction %s cannot be asked about again: %s",
            row.id,
            why,
            extra={"plugin": row.plugin_id, "transaction_id": row.id},
        )
        return why

    def _rebuild(self, row: TransactionRow, plugin: Any, tx_type: TransactionType) -> _Plan | None:
        """:meth:`_replan`'s work in a plugin thread. Whatever the plugin's params ``__post_init__``
        raises (a ``SystemExit``, a ``KeyboardInterrupt`` too: no signal reaches a worker thread, so it is
        the plugin's own) is that row's problem, never the end of the run."""
        try:
            contexts = self._contexts.for_request(
                row.customer_ref, request_id=row.id, now=row.created_at, fresh=True
            )
            # The plugin is asked with the parameters it was sent: its own account ids, not the bank's.
            sent = accounts.seen_params(tx_type, row.params, contexts=contexts, plugin=plugin)
            params = msgspec.convert(sent, tx_type.params)
        except BaseException as exc:  # plugin code: a SystemExit there must not end reconciliation
            log.warning(
                "transaction %s cannot be asked about again: %s",
                row.id,
                _shown(exc),
                extra={"plugin": row.plugin_id, "transaction_id": row.id},
            )
            return None
        ctx = msgspec.structs.replace(
            contexts.for_plugin(plugin), storage=self._contexts.plugin_storage(plugin.id, fresh=True)
        )
        return _Plan(
            tx_id=row.id, now=row.created_at, customer_ref=row.customer_ref, plugin=plugin, tx_type=tx_type,
            params=params, params_json=dict(row.params), amount_fen=row.amount_fen,
            risk_level=row.risk_level,  # type: ignore[arg-type]  # the column holds R1–R5 or NULL
            ctx=ctx,
            consented=_consented(contexts, plugin),
            close=contexts.close,
        )

    def _outcome(self, status: str, view: TransactionView, problem: _Problem | None) -> TransactionOutcome:
        if problem is not None:
            code_status, code, detail, message, field, plugin_code = problem
            return TransactionOutcome(
                code_status,
                outcome_problem(
                    code_status, code, detail, view, base=self._problem_base, plugin_code=plugin_code,
                    message=message, field=field,
                ),
            )
        return TransactionOutcome(201 if status == "succeeded" else 202, view)

    # --- GET /v1/transactions/{id} ---------------------------------------------------------------

    def get(self, customer_ref: str, tx_id: str, *, client_id: str = "") -> TransactionView:
        """The customer's transaction; 404 for an unknown id and for another customer's alike. A plugin's
        own client (``plugin-<id>``) reads only its plugin's transactions, as it submits only its types:
        another plugin's is 404 to it too (the mobile app's client reads all of the customer's)."""
        row = self.journal.get(tx_id) if _TX_ID.match(tx_id) else None  # no query for what no id is
        if row is None or row.customer_ref != customer_ref or not readable_by(client_id, row):
            raise NotFound(f"no transaction {echoed(tx_id)}", code="transaction.not_found", field="tx_id")
        return view_of(row)

    # --- GET /v1/transaction-types ---------------------------------------------------------------

    def types_for(self, customer_ref: str) -> TransactionTypeList:
        """The types the customer can submit now, with each one's suitability for them."""
        risk = self._provider.risk(customer_ref)
        contexts = self._contexts.for_request(customer_ref, request_id="transaction-types")
        items = []
        for key, (plugin, tx_type) in sorted(self._plugins.transaction_types.items()):
            if accounts.required_scopes(tx_type) - plugin.granted:  # as submitting would refuse it
                continue
            if not contexts.allows(plugin):  # not given to this customer by their branch
                continue
            items.append(
                TransactionTypeView(
                    key=key,
                    name=tx_type.name,
                    description=tx_type.description,
                    plugin=plugin.id,
                    risk_level=tx_type.risk_level,
                    suitability=self._suitability(tx_type, risk),
                    params_schema=self._schema(tx_type),
                    account_params=accounts.wire_names(tx_type),
                )
            )
        return TransactionTypeList(items=items)

    def _suitability(self, tx_type: TransactionType, risk: Any) -> Suitability:
        if tx_type.risk_level is None:  # each product its own level
            return "depends_on_params"
        try:
            checks.check_suitability(tx_type.risk_level, risk, self._today())
        except Unprocessable as exc:
            return exc.code.removeprefix("suitability.")  # type: ignore[return-value]
        return "ok"

    def _schema(self, tx_type: TransactionType) -> dict[str, Any]:
        schema = self._schemas.get(tx_type.key)
        if schema is None:
            schema = self._schemas[tx_type.key] = msgspec.json.schema(tx_type.params)
        return schema

    # --- reconciliation --------------------------------------------------------------------------

    def reconcile_unknown(
        self, *, older_than: timedelta | None = None, now: datetime | None = None
    ) -> ReconcileReport:
        """Mark rows left ``pending`` (a worker died mid-call) as ``unknown``, end retryable rows past
        their retry window (as a late retry would), and list every unknown row.

        ``older_than`` defaults to twice the execute deadline plus a minute: no live request can
        still be waiting on such a row.
        """
        deadline_ms = self._settings.deadlines.execute_transaction
        grace = older_than or timedelta(milliseconds=2 * deadline_ms, minutes=1)
        return reconcile(
            self.journal,
            older_than=grace,
            now=now or utcnow(),
            retry_window_seconds=self._settings.transaction_retry_window_seconds,
            problem_base=self._problem_base,
        )


_FAILED = LocalizedText(zh_CN="交易未能完成。", en="The transaction failed.")
_PLUGIN_FAILED = LocalizedText(
    zh_CN="服务暂时出现问题，交易未执行，请稍后重试。",
    en="The service had a problem; the transaction was not carried out. Try again later.",
)
_PLUGIN_UNAVAILABLE = LocalizedText(
    zh_CN="服务繁忙，交易未执行，请稍后重试。",
    en="The service is busy; the transaction was not carried out. Try again later.",
)
