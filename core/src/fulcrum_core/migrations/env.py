"""Alembic environment: compares the migrations with the host's and the registry's models.

Run through :class:`fulcrum_core.data.db.Database` (which hands over an open connection in
``config.attributes["connection"]``) or, failing that, with ``sqlalchemy.url`` from the config.
"""

from __future__ import annotations

import fulcrum_registry.models  # noqa: F401  (registers the registry's tables)
from alembic import context
from fulcrum_registry.models.base import RegistryBase
from sqlalchemy import Connection, create_engine

import fulcrum_core.data.models  # noqa: F401  (registers the host's tables)
from fulcrum_core.data.base import CoreBase

config = context.config
target_metadata = [CoreBase.metadata, RegistryBase.metadata]


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: alembic copies the table instead ("batch" mode).
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    _run_online()
