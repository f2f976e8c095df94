"""Registry models: one module per table group, all on ``RegistryBase.metadata``.

Importing this package registers every table, so ``RegistryBase.metadata`` is complete for
``create_all`` and for alembic.
"""

from fulcrum_registry.models.audit import AuditEvent
from fulcrum_registry.models.base import RegistryBase
from fulcrum_registry.models.plugins import Plugin, Release
from fulcrum_registry.models.publishers import PUBLISHER_KINDS, Publisher
from fulcrum_registry.models.reviews import Review, ScopeGrant

__all__ = [
    "PUBLISHER_KINDS",
    "AuditEvent",
    "Plugin",
    "Publisher",
    "RegistryBase",
    "Release",
    "Review",
    "ScopeGrant",
]
