"""The host's tables, one model per module; importing this package registers them all on
``CoreBase.metadata`` (which the migrations compare against)."""

from __future__ import annotations

from fulcrum_core.data.models.consent import ConsentRow
from fulcrum_core.data.models.impression import ImpressionRow
from fulcrum_core.data.models.plugin_storage import PluginCounterRow, PluginDocumentRow
from fulcrum_core.data.models.transaction import TransactionRow

__all__ = ["ConsentRow", "ImpressionRow", "PluginCounterRow", "PluginDocumentRow", "TransactionRow"]
