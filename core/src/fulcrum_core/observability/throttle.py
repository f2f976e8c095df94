"""Warnings about a dependency that stays down, logged once per interval instead of once per request."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["ThrottledWarning"]


class ThrottledWarning:
    """One warning line per ``every_s`` at most; the next line says how many were held back.

    For conditions that hit every request while a database or the bank is slow: the first occurrence
    is logged at once, repeats within the interval are only counted.
    """

    def __init__(
        self, logger: logging.Logger, message: str, *, every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic, level: int = logging.WARNING,
    ) -> None:
        self._log = logger
        self._level = level
        self._message = message
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._next = float("-inf")
        self._held = 0

    def __call__(self, detail: str = "") -> bool:
        """Log the warning (with ``detail``, this occurrence's particulars) unless one was logged within
        the interval; True when it was logged."""
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._held += 1
                return False
            held, self._held, self._next = self._held, 0, now + self._every_s
        line = f"{self._message}: {detail}" if detail else self._message
        if held:
            self._log.log(self._level, "%s (%d more since the last report)", line, held)
        else:
            self._log.log(self._level, "%s", line)
        return True
