"""Whether a process of this host is still running, by pid: how the shared metrics tell a gone worker's
files (and ``fulcrum serve`` a killed supervisor's directory) from a running one's."""

from __future__ import annotations

import os

__all__ = ["alive"]


def alive(pid: int) -> bool:
    """``pid`` names a running process (another user's counts: it exists, we may not signal it); a
    number no pid can be (a file or directory named by hand) names none."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True
