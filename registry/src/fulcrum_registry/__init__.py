"""The Fulcrum marketplace registry: publishers, plugins, releases, reviews, scope grants and audit.

A library: ``RegistryService`` is the whole workflow over a SQLAlchemy session factory and an
artifact directory; ``checks`` are the automated checks (pure, also used by the conformance kit);
``models`` are the tables (on ``RegistryBase.metadata``) the host's alembic history creates.
"""

from fulcrum_registry.audit import AuditEntry, BrokenLink
from fulcrum_registry.checks import (
    CHECKS,
    CheckContext,
    CheckResult,
    check_wheel,
    project_name,
    run_checks,
)
from fulcrum_registry.errors import (
    AlreadyExists,
    Conflict,
    FourEyesViolation,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PublisherSuspended,
    RegistryError,
    RegistryUnavailable,
)
from fulcrum_registry.schemas import (
    ActiveRelease,
    CatalogueQuery,
    LeftOut,
    NewPublisher,
    Page,
    PluginSummary,
    PublisherRead,
    ReleaseDiff,
    ReleaseQuery,
    ReleaseRead,
    Submission,
)
from fulcrum_registry.service import RegistryService
from fulcrum_registry.workflow import REVIEW_CHECKLIST, ReleaseState

__all__ = [
    "CHECKS",
    "REVIEW_CHECKLIST",
    "ActiveRelease",
    "AlreadyExists",
    "AuditEntry",
    "BrokenLink",
    "CatalogueQuery",
    "CheckContext",
    "CheckResult",
    "Conflict",
    "FourEyesViolation",
    "IllegalTransition",
    "InvalidInput",
    "LeftOut",
    "NewPublisher",
    "NotFound",
    "Page",
    "PermissionDenied",
    "PluginSummary",
    "PublisherRead",
    "PublisherSuspended",
    "RegistryError",
    "RegistryService",
    "RegistryUnavailable",
    "ReleaseDiff",
    "ReleaseQuery",
    "ReleaseRead",
    "ReleaseState",
    "Submission",
    "check_wheel",
    "project_name",
    "run_checks",
]
