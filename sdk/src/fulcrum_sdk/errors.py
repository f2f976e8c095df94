"""The SDK's error tree: what a plugin may raise and what the host raises at a plugin.

FulcrumError
├── ScopeDenied          a context accessor was called without the scope (or the customer's consent)
├── ManifestError        fulcrum-plugin.toml is missing or invalid (names the file, key and problem)
├── TransactionRefused   a plugin refuses a transaction for a business reason (code + localized text)
├── StorageError
│   ├── LimitExceeded    an atomic counter update would cross its bound
│   ├── QuotaExceeded    a write would take the plugin's storage past its quota
│   └── StorageUnavailable   the platform store could not be reached
│       └── StorageOutcomeUnknown   a write's commit went unacknowledged (an OutcomeUnknown too)
├── DataUnavailable      a customer record could not be read in time for this request
├── OutcomeUnknown       a transaction may have gone through but its result cannot be confirmed
└── ThreadShareUsed      no thread for ``asyncio.to_thread``: the plugin's hung calls hold its share
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from fulcrum_sdk.models import LocalizedText

__all__ = [
    "NO_CONSENT",
    "REQUEST_ENDED",
    "DataUnavailable",
    "FulcrumError",
    "LimitExceeded",
    "ManifestError",
    "OutcomeUnknown",
    "QuotaExceeded",
    "ScopeDenied",
    "StorageError",
    "StorageOutcomeUnknown",
    "StorageUnavailable",
    "ThreadShareUsed",
    "TransactionRefused",
]


class FulcrumError(Exception):
    """Base of every error the SDK defines."""


NO_CONSENT = "no live consent"
""":attr:`ScopeDenied.reason` when the scope is granted but the (partner's) customer has not consented."""


REQUEST_ENDED = "the request this context was made for has ended"
""":attr:`ScopeDenied.reason` when a context is used after its request: a context is good for the one
request (and the grant and consents) it was made for, never kept for later."""


class ScopeDenied(FulcrumError):
    """A plugin asked for data or a placement its grant (or the customer's consent) does not cover."""

    def __init__(self, scope: str, *, plugin_id: str, reason: str = "not granted") -> None:
        self.scope = scope
        self.plugin_id = plugin_id
        self.reason = reason
        fix = (
            "use the context the current hook call received"
            if reason == REQUEST_ENDED
            else "request it in fulcrum-plugin.toml and have it granted"
            + (" and consented to by the customer" if reason == NO_CONSENT else "")
        )
        super().__init__(f"plugin {plugin_id!r} may not use scope {scope!r}: {reason}; {fix}")


class ManifestError(FulcrumError):
    """fulcrum-plugin.toml could not be read or does not validate."""

    def __init__(self, file: str, key: str | None, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class TransactionRefused(FulcrumError):
    """Raised by ``execute_transaction`` to refuse for a business reason the customer can act on.

    ``code`` is a stable machine-readable id (``pension.annual_cap_exceeded``); ``message`` says what is
    wrong and what to do, in zh-CN and en; ``field`` names the offending parameter when there is one.
    """

    def __init__(self, code: str, message: LocalizedText, *, field: str | None = None) -> None:
        self.code = code
        self.message = message
        self.field = field
        super().__init__(f"{code}: {message.en or message.zh_CN}")


class StorageError(FulcrumError):
    """The plugin storage facility failed."""


class LimitExceeded(StorageError):
    """An atomic counter update was refused because it would cross ``lower`` or ``upper``."""

    def __init__(self, key: str, current: int, delta: int, lower: int | None, upper: int | None) -> None:
        self.key = key
        self.current = current
        self.delta = delta
        self.lower = lower
        self.upper = upper
        super().__init__(f"counter {key!r} is {current}; adding {delta} would leave [{lower}, {upper}]")


class QuotaExceeded(StorageError):
    """A write was refused, changing nothing, because it would take the plugin's storage past the quota
    the platform set for it: ``what`` is ``"documents"``, ``"document_bytes"`` or ``"counters"``; ``used``
    is what the plugin holds now and ``limit`` the most it may. Writes that do not grow that measure
    (replacing a document with one no larger, deleting) are always taken, so a plugin can make room."""

    def __init__(self, key: str, what: str, used: int, limit: int) -> None:
        self.key = key
        self.what = what
        self.used = used
        self.limit = limit
        super().__init__(
            f"storage quota: writing {key!r} would take {what} past {limit} (the plugin holds {used}); "
            "delete what is no longer needed, or ask the platform team for a larger quota"
        )


class StorageUnavailable(StorageError):
    """The platform store could not be reached; the call may be retried."""


class DataUnavailable(FulcrumError):
    """The bank's systems did not deliver this record in time for this request; the call may be
    retried on the next request. Let it propagate: the host leaves the plugin out of the page.

    Only one the host's own reads raised (the SDK's accessors, plugin storage: :func:`_host_unavailable`)
    spares the plugin's breaker; one a plugin raises itself (its own backend late) counts as its
    failure, as any exception does: a plugin that waited out its deadline and then raised it cost every
    page that long, and its breaker never opened."""

    def __init__(self, record: str) -> None:
        self.record = record
        super().__init__(f"the customer's {record} could not be read in time for this request")


_BY_HOST: Final = object()
"""The mark of a :class:`DataUnavailable` the host raised (an attribute no keyword of the class sets).
Private by convention only: plugins run in the host's process, so one that imports it on purpose can
still spare its breaker; what it stops is a plugin doing so by passing an argument."""


def _host_unavailable(record: str) -> DataUnavailable:
    """For the host's reads only: the :class:`DataUnavailable` that leaves the plugin uncharged."""
    exc = DataUnavailable(record)
    exc.__dict__["_fulcrum_host"] = _BY_HOST
    return exc


def _raised_by_host(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`DataUnavailable` that :func:`_host_unavailable` made (no code of the
    exception runs: its type is checked exactly and its ``__dict__`` read)."""
    return type(exc) is DataUnavailable and exc.__dict__.get("_fulcrum_host") is _BY_HOST


class OutcomeUnknown(FulcrumError):
    """Raised by ``execute_transaction`` when the action may have been carried out but its result
    cannot be confirmed now (a partner's system timed out after receiving it, the result could not be
    stored). The host records the transaction as ``unknown`` (202) for reconciliation, never as
    ``failed``: a customer must not be told a payment failed when it may have gone through."""


class StorageOutcomeUnknown(StorageUnavailable, OutcomeUnknown):
    """A storage write whose commit was sent but never acknowledged (the connection went, the database
    timed out): it may have been applied. A :class:`StorageUnavailable`, so code catching that still
    does, and an :class:`OutcomeUnknown`, so an ``execute_transaction`` letting it propagate has its
    transaction recorded ``unknown`` (never ``failed``: the cap room or allowance may be used up) and
    ``run_once`` keeps its claim. Do not undo the write on it: whether there is anything to undo is
    what is unknown."""


class ThreadShareUsed(FulcrumError, RuntimeError):
    """Raised by ``asyncio.to_thread`` (any use of the event loop's default executor) in a plugin whose
    earlier calls there, given up at their deadlines, still run in all of its share of those threads:
    a thread cannot be stopped, so the plugin gets none until one of them returns. Let it propagate (the
    hook fails, as any hook that raises); give blocking clients a timeout within the hook's deadline. A
    ``RuntimeError`` too, as an executor's refusal to take work is."""
