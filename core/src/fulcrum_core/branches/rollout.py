"""Gray release: whether a customer is in a plugin's rollout, by a stable hash of (plugin, customer).

Each (plugin, customer) pair falls in one of 10,000 buckets; a percentage ``p`` admits buckets below
``p × 100``. So the answer never flickers between requests or workers, raising ``p`` only adds
customers, and different plugins sample independent customers (the plugin id salts the hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

__all__ = ["BUCKETS", "bucket", "in_rollout"]

BUCKETS = 10_000


def bucket(customer_id: str, plugin_id: str) -> int:
    """The customer's bucket 0..9999 for this plugin, from sha256 of ``"{plugin_id}:{customer_id}"``."""
    digest = hashlib.sha256(f"{plugin_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(
    customer_id: str, plugin_id: str, percentage: int, allow_list: Collection[str] = ()
) -> bool:
    """True when the customer gets the plugin: on the allow-list, or in the first ``percentage`` %."""
    if percentage >= 100 or customer_id in allow_list:
        return True
    if percentage <= 0:
        return False
    return bucket(customer_id, plugin_id) < percentage * (BUCKETS // 100)
