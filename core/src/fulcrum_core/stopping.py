"""Whether this worker was told to stop and is serving out its shutdown delay (``shutdown_delay_seconds``).

The runner (``cli/serve.py``) marks it when SIGTERM arrives and the server keeps listening for the
delay; ``/readyz`` then answers 503 so the load balancer stops sending before the socket closes. It is
the process's state, as the signal is: the app only reads it.
"""

from __future__ import annotations

import time

__all__ = ["begin", "reason"]

_stops_at: float | None = None  # time.monotonic() when the server stops listening


def begin(delay_s: float) -> None:
    """The worker stops listening in ``delay_s`` seconds; until then it serves, unready."""
    global _stops_at
    _stops_at = time.monotonic() + delay_s


def reason() -> str | None:
    """``/readyz``'s reason while the worker serves out its delay, or ``None``."""
    if _stops_at is None:
        return None
    left = max(0.0, _stops_at - time.monotonic())
    return f"stopping: told to stop (SIGTERM), stops listening in {left:.1f} s"
