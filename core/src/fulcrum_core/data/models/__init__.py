"""The host's tables, one model per module; importing this package registers them all on
``CoreBase.metadata`` (which the migrations compare against)."""

from __future__ import annotations

from fulcrum_core.data.models.consent import ConsentRow
from fulcrum_core.data.models.impression import ImpressionRow
from fulcrum_core.data.models.oauth_assertion import OAuthAssertionIdRow
from fulcrum_core.data.models.oauth_client import OAuthClientRow
from fulcrum_core.data.models.oauth_code import OAuthCodeRow
from fulcrum_core.data.models.oauth_refresh_token import OAuthRefreshTokenRow
from fulcrum_core.data.models.oauth_token_family import OAuthTokenFamilyRow
from fulcrum_core.data.models.plugin_storage import PluginCounterRow, PluginDocumentRow, PluginStorageUsageRow
from fulcrum_core.data.models.transaction import TransactionAttemptRow, TransactionRow

__all__ = [
    "ConsentRow",
    "ImpressionRow",
    "OAuthAssertionIdRow",
    "OAuthClientRow",
    "OAuthCodeRow",
    "OAuthRefreshTokenRow",
    "OAuthTokenFamilyRow",
    "PluginCounterRow",
    "PluginDocumentRow",
    "PluginStorageUsageRow",
    "TransactionAttemptRow",
    "TransactionRow",
]
