"""Reconciliation: find transactions whose outcome the host does not know, and say so durably.

A row stays ``pending`` only while a request waits on its plugin; one still ``pending`` long after
the deadline belongs to a worker that died mid-call. ``reconcile`` marks such rows ``unknown``, with
the 202 response a retry of the same request will now replay (instead of 409 forever), and lists
every ``unknown`` row for operations to settle with the owning department or partner. It also ends
the ``retryable`` rows (the plugin was never asked) whose retry window has closed with nobody retrying
them, as a late retry would (``expiry``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from fulcrum_core.transactions.expiry import expire_closed
from fulcrum_core.transactions.journal import Journal
from fulcrum_core.transactions.models import TransactionView
from fulcrum_core.transactions.render import encode_body, view_of

__all__ = ["ReconcileReport", "reconcile", "unknown_views"]


class ReconcileReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one reconciliation run did and what is left to settle."""

    marked_unknown: list[str]
    # Retryable rows (never asked) past their retry window, ended as failed by this run.
    expired: list[str]
    unknown: list[TransactionView]


def reconcile(
    journal: Journal, *, older_than: timedelta, now: datetime, retry_window_seconds: int, problem_base: str,
    limit: int = 500,
) -> ReconcileReport:
    """Mark rows ``pending`` for longer than ``older_than`` as ``unknown``, end retryable rows first seen
    ``retry_window_seconds`` or more before ``now`` (their stored 422 typed under ``problem_base``);
    report all ``unknown`` rows. Rows are read ``limit`` at a time, to the last."""
    marked: list[str] = []
    cutoff = now - older_than
    rows = journal.pending_before(cutoff, limit=limit)
    while rows:
        for row in rows:
            view = msgspec.structs.replace(view_of(row), status="unknown", updated_at=now)
            if journal.mark_unknown(row.id, response_status=202, response_body=encode_body(view), now=now):
                marked.append(row.id)
        rows = journal.pending_before(cutoff, limit=limit, after=rows[-1])
    expired = expire_closed(
        journal, window_seconds=retry_window_seconds, now=now, problem_base=problem_base, limit=limit
    )
    return ReconcileReport(
        marked_unknown=marked, expired=expired, unknown=unknown_views(journal, limit=limit)
    )


def unknown_views(journal: Journal, *, limit: int = 500) -> list[TransactionView]:
    """Every ``unknown`` row, oldest first (read ``limit`` at a time), as their customers see them."""
    views: list[TransactionView] = []
    rows = journal.by_status("unknown", limit=limit)
    while rows:
        views += [view_of(row) for row in rows]
        rows = journal.by_status("unknown", limit=limit, after=rows[-1])
    return views
