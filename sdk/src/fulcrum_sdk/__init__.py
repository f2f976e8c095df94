"""The Fulcrum plugin SDK: hook specs, typed models, scopes, manifest, request context, test harness."""

from fulcrum_sdk.context import AudienceContext, Customer, PluginContext, ScopedData
from fulcrum_sdk.errors import (
    FulcrumError,
    LimitExceeded,
    ManifestError,
    QuotaExceeded,
    ScopeDenied,
    StorageError,
    StorageOutcomeUnknown,
    StorageUnavailable,
    TransactionRefused,
)
from fulcrum_sdk.hookspecs import hookimpl, nonblocking
from fulcrum_sdk.models import (
    Action,
    FeedItem,
    LocalizedText,
    Page,
    PageLine,
    PageSection,
    SearchHit,
    SlotOffer,
    Targeting,
    TransactionRequest,
    TransactionResult,
    TransactionType,
)

__version__ = "0.2.0"

__all__ = [
    "Action",
    "AudienceContext",
    "Customer",
    "FeedItem",
    "FulcrumError",
    "LimitExceeded",
    "LocalizedText",
    "ManifestError",
    "Page",
    "PageLine",
    "PageSection",
    "PluginContext",
    "QuotaExceeded",
    "ScopeDenied",
    "ScopedData",
    "SearchHit",
    "SlotOffer",
    "StorageError",
    "StorageOutcomeUnknown",
    "StorageUnavailable",
    "Targeting",
    "TransactionRefused",
    "TransactionRequest",
    "TransactionResult",
    "TransactionType",
    "__version__",
    "hookimpl",
    "nonblocking",
]
