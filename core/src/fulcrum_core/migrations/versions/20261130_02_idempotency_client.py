"""Idempotency keys scoped per OAuth client: ``transactions.client_id`` and a unique
(customer, client, key) in place of (customer, key).

Every client acting for a customer (the app, a partner plugin's backend) shared the customer's key
space: two of them that chose the same key met each other's transaction. Now each client's keys are
its own, as payment APIs scope keys per API credential.

Nothing journaled before this revision says which client sent it (the token is not kept), so
existing rows get the placeholder ``''`` (``fulcrum_core.data.models.transaction.UNRECORDED_CLIENT``;
no client has an empty id). They keep the scope they were journaled under: the journal finds such a
row for any client of its customer that sends its key, so a retry that straddles the upgrade still
replays (or reruns) its transaction instead of running it a second time.

The downgrade refuses while two rows of one customer share a key (sent by different clients): the
older schema cannot hold both, and dropping either would lose a transaction. It refuses too while a
row journaled under a client is still ``pending`` or ``unknown``: its plugin was asked with the key
derived from the client and the key (``plugin_idempotency_key``), and reconciliation by the older
code (or by this one after an upgrade again, the row then unrecorded) would ask with the bare key,
which the plugin's own record of the call does not know: it would carry the transaction out twice.

Revision ID: 20261130_02_idempotency_client
Revises: 20261130_01_refresh_grace
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_02_idempotency_client"
down_revision: str | None = "20261130_01_refresh_grace"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "uq_transactions_customer_ref"
_NEW = "uq_transactions_customer_client_key"
_CLIENT = sa.String(length=64)
UNRECORDED_CLIENT = ""
"""Kept here, not imported: a revision must mean the same whatever the models say later."""


def upgrade() -> None:
    # A constant default fills the existing rows without rewriting the journal on PostgreSQL (11 and
    # later keep it in the catalogue); an UPDATE of every row would hold the table's lock for as long.
    # The default is dropped again at once: every new row names its client.
    op.add_column(
        "transactions",
        sa.Column("client_id", _CLIENT, nullable=False, server_default=sa.text(f"'{UNRECORDED_CLIENT}'")),
    )
    with op.batch_alter_table("transactions") as batch:
        batch.alter_column("client_id", existing_type=_CLIENT, existing_nullable=False, server_default=None)
        batch.drop_constraint(_OLD, type_="unique")
        batch.create_unique_constraint(_NEW, ["customer_ref", "client_id", "idempotency_key"])


def _ids(sql: str, **params: str) -> list[str]:
    """The transaction ids ``sql`` selects."""
    return [str(row[0]) for row in op.get_bind().execute(sa.text(sql), params)]


def _named(ids: list[str]) -> str:
    more = f" and {len(ids) - 5} more" if len(ids) > 5 else ""
    return f"{', '.join(ids[:5])}{more}"


def downgrade() -> None:
    # Transaction ids, not customer numbers, name them: this message goes to deploy logs.
    unsettled = _ids(
        "SELECT id FROM transactions WHERE client_id <> :unrecorded AND status IN ('pending', 'unknown') "
        "ORDER BY id",
        unrecorded=UNRECORDED_CLIENT,
    )
    if unsettled:
        raise RuntimeError(
            f"transactions {_named(unsettled)} are not settled yet, and their plugins were asked under "
            "a key the older schema cannot derive again (reconciling them would ask under another key "
            "and may carry them out twice): let reconciliation settle them, then downgrade"
        )
    shared = _ids(
        "SELECT t.id FROM transactions t WHERE EXISTS (SELECT 1 FROM transactions o "
        "WHERE o.customer_ref = t.customer_ref AND o.idempotency_key = t.idempotency_key "
        "AND o.id <> t.id) ORDER BY t.id"
    )
    if shared:
        raise RuntimeError(
            f"transactions {_named(shared)} share their customer and idempotency key with "
            "another client's transaction, which the older schema (one transaction per customer and key) "
            "cannot hold: stay on this revision"
        )
    with op.batch_alter_table("transactions") as batch:
        batch.drop_constraint(_NEW, type_="unique")
        batch.drop_column("client_id")
        batch.create_unique_constraint(_OLD, ["customer_ref", "idempotency_key"])
