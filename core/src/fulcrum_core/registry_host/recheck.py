"""When the registry watcher asks the admission gate again about an entry point it holds back.

A plugin held back for a passing reason (the approved wheel not readable yet, a database error while
reading the release) must not wait for an unrelated registry change, and one held back for good (a
tampered copy) must not cost a verification on every poll. So each refusal schedules the next question:
one poll interval after the first, doubling after each further one, never more than ``cap`` apart. A
registry change asks every held plugin at once and starts the doubling again (``fresh``); a refusal
that is final (the installed copy is not the reviewed one) is never due again.
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

__all__ = ["HeldStatus", "RecheckSchedule"]


class HeldStatus(msgspec.Struct, frozen=True):
    """Why one entry point is held back, how often it was asked, and when it is asked next."""

    reason: str
    # Refusals in a row since it was held, or since the last registry change.
    checks: int
    # On the watcher's clock; None: never again in this process (the copy is not the reviewed one).
    next_check: float | None


class RecheckSchedule:
    """Per held plugin id, the last refusal and the time of the next question; one per watcher."""

    def __init__(self, *, base: float, cap: float) -> None:
        self.base = base
        self.cap = max(cap, base)
        self._held: dict[str, HeldStatus] = {}

    def due(self, held: Collection[str], now: float) -> list[str]:
        """The ids in ``held`` to ask about at ``now``, sorted: never asked yet, or their wait is over."""
        due: list[str] = []
        for pid in sorted(held):
            status = self._held.get(pid)
            if status is None or (status.next_check is not None and now >= status.next_check):
                due.append(pid)
        return due

    def refused(
        self, plugin_id: str, reason: str, now: float, *, final: bool = False, fresh: bool = False
    ) -> HeldStatus:
        """Record one more refusal at ``now`` and schedule the next question; the new status."""
        before = None if fresh else self._held.get(plugin_id)
        checks = 1 if before is None else before.checks + 1
        wait = min(self.base * 2 ** min(checks - 1, 32), self.cap)
        status = HeldStatus(reason, checks, None if final else now + wait)
        self._held[plugin_id] = status
        return status

    def keep(self, held: Collection[str]) -> None:
        """Forget every plugin not in ``held`` (imported since, or failed to import: never asked again)."""
        self._held = {pid: s for pid, s in self._held.items() if pid in held}

    def status(self) -> dict[str, HeldStatus]:
        """Every plugin asked about and still held, by id."""
        return dict(self._held)
