"""A background thread that calls a function every few seconds until stopped: the hot-reload poll.

A thread rather than an asyncio task because each poll does blocking file reads, and the same
poller serves the HTTP host and command-line tools alike.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Poller"]


class Poller:
    """Calls ``fn`` every ``interval`` seconds on a daemon thread; ``stop()`` ends it promptly."""

    def __init__(
        self, fn: Callable[[], object], *, interval: float, name: str, logger: logging.Logger
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._fn = fn
        self._interval = interval
        self._name = name
        self._log = logger
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start polling; calling it again while running does nothing."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to finish and wait for it (at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception:  # a poll must never kill the poller; the next one may succeed
                self._log.exception("%s: poll failed", self._name)
