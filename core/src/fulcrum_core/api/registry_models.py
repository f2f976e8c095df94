"""Request and response bodies of the registry API (the service's own structs travel inside them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from fulcrum_registry import PluginSummary, PublisherRead, ReleaseDiff, ReleaseRead
from fulcrum_registry.audit import AuditEntry
from fulcrum_registry.schemas import TEXT_PATTERN, TEXT_WORDS
from litestar.datastructures import UploadFile

__all__ = [
    "AuditHead",
    "AuditList",
    "AuditVerdict",
    "PluginList",
    "PublisherList",
    "ReasonBody",
    "ReleaseList",
    "ReleaseView",
    "ReviewBody",
    "WheelUpload",
]

# Blank is refused here as the body is read, in the words of any other text field (the registry
# refuses it too, for callers other than HTTP): an empty reason and one of spaces read alike.
Reason = Annotated[str, msgspec.Meta(max_length=2000, pattern=TEXT_PATTERN, description=TEXT_WORDS)]


@dataclass
class WheelUpload:
    """``multipart/form-data``: the wheel file, and the publisher (default: the token's publisher)."""

    wheel: Annotated[UploadFile, msgspec.Meta(description="a file (a .whl upload)")]
    publisher: str | None = None


class ReviewBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A reviewer's decision: approve (checklist confirmed, optional narrower grant) or reject (reasons)."""

    decision: Literal["approve", "reject"]
    reasons: list[Reason] = msgspec.field(default_factory=list)
    checklist: dict[str, bool] = msgspec.field(default_factory=dict)
    # Approve only: the scopes granted (default: all requested); optional scopes may be left out.
    grant: list[str] | None = None


class ReasonBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Why a release is suspended, resumed or retired (kept in the audit log)."""

    reason: Reason


class ReleaseView(msgspec.Struct, frozen=True, kw_only=True):
    """A release, and what it asks for beyond the previous approved release (None: no manifest)."""

    release: ReleaseRead
    diff: ReleaseDiff | None
    warnings: list[str] = msgspec.field(default_factory=list)
    """For the reviewer, failing nothing: e.g. a description still the plugin template's placeholder."""


class ReleaseList(msgspec.Struct, frozen=True, kw_only=True):
    """A page of releases, oldest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[ReleaseRead]
    next_cursor: str | None
    total: int


class PluginList(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the catalogue, by plugin id."""

    items: list[PluginSummary]
    next_cursor: str | None
    total: int


class PublisherList(msgspec.Struct, frozen=True, kw_only=True):
    """A page of publishers, by id; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[PublisherRead]
    next_cursor: str | None
    total: int


class AuditHead(msgspec.Struct, frozen=True, kw_only=True):
    """The newest audit row: record it elsewhere to detect a truncated tail later."""

    seq: int
    hash: str


class AuditList(msgspec.Struct, frozen=True, kw_only=True):
    """Audit events after ``after``, in order."""

    items: list[AuditEntry]
    head: AuditHead


class AuditVerdict(msgspec.Struct, frozen=True, kw_only=True):
    """The result of walking the whole chain: ``ok``, or the first broken row and why."""

    ok: bool
    broken_seq: int | None
    reason: str | None
    head: AuditHead
