"""Partners' pairwise account ids: the id under which a partner plugin sees one of a customer's accounts.

The bank's account ids name the customer (``acct-0755-001-1`` holds customer number ``c-0755-001``) and
are the same for every plugin, so a partner given them could learn the customer number and join its
pairwise customer id with another partner's. A partner sees each account under 32 hex digits of an
HMAC-SHA256 under the host's pairwise secret instead, of ``plugin_id``, the customer and the account:
stable for that partner and customer, different for every partner. Internal plugins see the bank's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable

__all__ = ["bank_account_id", "pairwise_account_id"]


def pairwise_account_id(secret: bytes, plugin_id: str, customer_ref: str, account_id: str) -> str:
    """The id partner ``plugin_id`` sees for the bank's ``account_id`` of customer ``customer_ref``:
    every host holding the same pairwise secret gives the same."""
    # NUL-separated under a prefix of its own: apart from the pairwise customer ids' "{plugin}:{ref}"
    # messages and the partner request ids' "\0request\0..." ones, and no two fields run together.
    message = f"\0account\0{plugin_id}\0{customer_ref}\0{account_id}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def bank_account_id(seen_id: str, bank_ids: Iterable[str], see: Callable[[str], str]) -> str | None:
    """The one of the bank's ``bank_ids`` that a plugin sees (``see``) as ``seen_id``, or ``None`` when
    none is: an id the plugin was never given."""
    for bank_id in bank_ids:
        if see(bank_id) == seen_id:
            return bank_id
    return None
