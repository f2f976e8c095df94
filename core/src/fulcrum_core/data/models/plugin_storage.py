"""Tables behind ``PluginStorage``: JSON documents and bounded counters, keyed by plugin id and key."""

from __future__ import annotations

from datetime import datetime

from fulcrum_sdk.storage import MAX_KEY_LENGTH
from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["MAX_KEY_LENGTH", "PluginCounterRow", "PluginDocumentRow", "PluginStorageUsageRow"]


class PluginDocumentRow(CoreBase):
    """One JSON document a plugin stored (its own namespace: ``plugin_id``)."""

    __tablename__ = "plugin_documents"

    plugin_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PluginCounterRow(CoreBase):
    """One atomic counter of a plugin (stock left, redemptions, contributions this year)."""

    __tablename__ = "plugin_counters"

    plugin_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PluginStorageUsageRow(CoreBase):
    """What one plugin holds, kept in the same transaction as each of its writes, so its quota is
    checked without counting its rows: documents, their bytes (key and JSON, UTF-8) and counters."""

    __tablename__ = "plugin_storage_usage"

    plugin_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    documents: Mapped[int] = mapped_column(BigInteger)
    document_bytes: Mapped[int] = mapped_column(BigInteger)
    counters: Mapped[int] = mapped_column(BigInteger)
