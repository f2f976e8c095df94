"""The request path's reads run once as a worker starts, so its first customers do not pay for them.

SQLAlchemy compiles a statement at its first execution in a process: the consent read took ≈ 17 ms the
first time and ≈ 0.4 ms after, the storage reads ≈ 1.7 ms and ≈ 0.4 ms. A page waits at most
``data_budget_ms`` (100 ms) for what it reads about the customer, so on a loaded machine the first partner
page of a fresh worker could miss it and leave the partner plugins out. Each read is run here against a
customer and a plugin that do not exist; what the database answers is thrown away.
"""

from __future__ import annotations

import logging

from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage

__all__ = ["NOBODY", "warm_reads"]

log = logging.getLogger("fulcrum.data")

NOBODY = "warm-up:nobody"
"""The customer ref and plugin id the reads ask about (no plugin id can hold a ``:``): only read, and the
answer thrown away."""


def warm_reads(db: Database) -> bool:
    """Run the consent read and the storage reads (a document, counters) once against ``db``; whether
    they ran. A database not migrated or not reachable yet is logged and left to ``/readyz``."""
    try:
        ConsentStore(db).live_scopes(NOBODY)
        storage = SqlPluginStorage(db, NOBODY, cache_ms=0)
        storage.get(NOBODY)
        storage.counters([NOBODY])
    except Exception as exc:  # startup goes on: readiness says whether the database can serve
        log.info("the request path's reads were not warmed at startup: %s: %s", type(exc).__name__, exc)
        return False
    return True
