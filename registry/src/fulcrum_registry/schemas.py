"""What the registry service accepts and returns: frozen msgspec Structs, never ORM rows.

The HTTP API decodes request bodies into the ``New*``/``*Query`` structs and encodes these read
structs as responses, so the same validation applies whether a call comes over HTTP, from the CLI or
from a test.
"""

from __future__ import annotations

import re
import typing
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from fulcrum_sdk._in_words import (
    choices_of,
    dotted,
    in_words,
    pattern_problem,
    pattern_words,
    type_at,
    worded,
)
from fulcrum_sdk.manifest import ID_PATTERN, ID_WORDS, Manifest, ManifestProblem
from fulcrum_sdk.oauth_client import OAuthClient

from fulcrum_registry.checks import CheckResult
from fulcrum_registry.errors import InvalidInput

__all__ = [
    "KNOWN_SLUG_PATTERN",
    "KNOWN_SLUG_WORDS",
    "RELEASE_CURSOR_PATTERN",
    "SLUG_PATTERN",
    "SLUG_WORDS",
    "TEXT_PATTERN",
    "TEXT_WORDS",
    "ActiveRelease",
    "ArtifactRef",
    "CatalogueQuery",
    "LeftOut",
    "NewPublisher",
    "Page",
    "PendingUndo",
    "PluginSummary",
    "PublisherQuery",
    "PublisherRead",
    "ReleaseBrief",
    "ReleaseDiff",
    "ReleaseQuery",
    "ReleaseRead",
    "ReviewRead",
    "ScopeRequest",
    "UndoAgreement",
    "plain_problem",
    "validated",
]

T = TypeVar("T")

SLUG_PATTERN = ID_PATTERN
"""A new plugin or publisher id, as a manifest names one: the SDK's pattern, which refuses ``--``."""
SLUG_WORDS = ID_WORDS
"""What :data:`SLUG_PATTERN` takes, in words: what a refusal and the API's documentation say."""
KNOWN_SLUG_WORDS = (
    "2 to 50 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen"
)
"""What :data:`KNOWN_SLUG_PATTERN` takes, in words."""
KNOWN_SLUG_PATTERN = worded(r"^[a-z][a-z0-9-]{0,48}[a-z0-9](?!\n)$", KNOWN_SLUG_WORDS)
"""An id a filter or a cursor names: any id ever taken, ``--`` included (taken before ids refused it),
so such a plugin's or publisher's releases can still be found, and suspended or retired."""
RELEASE_CURSOR_PATTERN = worded(
    r"^[0-9]{1,12}(?!\n)$", "a release id of 1 to 12 digits: the next_cursor of the previous page"
)
"""A release listing's cursor: the last release id of the previous page."""
Slug = Annotated[str, msgspec.Meta(pattern=SLUG_PATTERN, description=SLUG_WORDS)]
KnownSlug = Annotated[str, msgspec.Meta(pattern=KNOWN_SLUG_PATTERN, description=KNOWN_SLUG_WORDS)]
PublisherKind = Literal["department", "branch", "partner"]
StateName = Literal["submitted", "checks_failed", "in_review", "approved", "rejected", "suspended", "retired"]
Limit = Annotated[int, msgspec.Meta(ge=1, le=100)]
Reviewer = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, description="who reviews, as they act (1 to 200 characters)"),
]


def _item_type(hint: Any) -> Any:
    """The item type of a list type (optional or annotated alike), or None for any other type."""
    for t in (hint, *typing.get_args(hint)):
        if typing.get_origin(t) is list and typing.get_args(t):
            return typing.get_args(t)[0]
    return None


_ITEM_PATH = re.compile(r"^(?P<name>\w+)(?P<items>(?:\[\d+\])*)$")
"""A field path as msgspec writes it: a top-level field, then the index of each list it goes into."""


def _described(kind: type[Any], path: str) -> str | None:
    """What a valid value of the top-level field ``path`` of ``kind`` (or of an item of it, as in
    ``reasons[0]``) is, in words: its ``Meta``'s ``description``."""
    parts = _ITEM_PATH.match(path)
    if parts is None:
        return None
    try:
        hint = typing.get_type_hints(kind, include_extras=True).get(parts["name"])
    except (NameError, TypeError):  # pragma: no cover - every schema's hints resolve
        return None
    for _ in range(parts["items"].count("[")):  # into the item type of each list on the way
        hint = _item_type(hint)
    for t in (hint, *typing.get_args(hint)):
        if typing.get_origin(t) is Annotated:
            for meta in t.__metadata__:
                if isinstance(meta, msgspec.Meta) and meta.description:
                    return meta.description
    return None


_UNWORDED = ("Expected `str` matching regex", "Unsupported type")
"""msgspec's refusals that tell whoever sent the value nothing: a regular expression, a Python type."""
_TEXT_LENGTH = re.compile(r"^Expected `str` of length (?P<bound><=|>=) (?P<n>\d+)$")
"""msgspec's refusal of text too long or too short, which names a Python type."""


def plain_problem(kind: type[Any], path: str, problem: str) -> str:
    """msgspec's ``problem`` with field ``path`` of ``kind``, in words where the field describes itself:
    a regular expression or a Python type tells whoever sent the value nothing."""
    if (worded_problem := pattern_problem(problem)) is not None:
        return worded_problem
    if problem.startswith(_UNWORDED) and (words := _described(kind, path)):
        return f"must be {words}"
    if length := _TEXT_LENGTH.match(problem):
        bound, n = length["bound"], int(length["n"])
        if bound == ">=" and n == 1:
            return "must not be empty"
        return f"must be at {'most' if bound == '<=' else 'least'} {n} character{'' if n == 1 else 's'}"
    return problem


def validated(kind: type[T], data: object) -> T:
    """``data`` converted to ``kind`` with every constraint checked; a failure names the field."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        match = re.search(r" - at `\$\.?(.*)`$", str(exc))
        path = match.group(1) if match else ""
        problem = str(exc)[: match.start()] if match else str(exc)
        named = re.match(r"Object (missing required|contains unknown) field `([^`]+)`", problem)
        bad_value = re.match(r"Invalid enum value (.+)$", problem)
        if bad_value and choices_of(type_at(kind, path)):
            path, problem = in_words(kind, str(exc))
        elif named:
            path = f"{path}.{named.group(2)}" if path else named.group(2)
            problem = "required" if named.group(1) == "missing required" else "unknown field"
        else:
            problem = plain_problem(kind, path, problem)
        raise InvalidInput(dotted(path) or "body", problem) from None


TEXT_WORDS = "text with something besides spaces, and no NUL character"
"""What :data:`TEXT_PATTERN` takes, in words."""
TEXT_PATTERN = worded(r"^[^\x00]*[^\s\x00][^\x00]*$", TEXT_WORDS)
"""Display text: something besides spaces, and no NUL character (PostgreSQL text cannot hold one)."""
DisplayName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=TEXT_PATTERN, description=TEXT_WORDS)
]
_CONTACT_PATTERN = worded(
    r"^[^@\s\x00]+@[^@\s\x00]+(?!\n)$",
    "an e-mail address that reaches the publisher, such as ops@bank.example (no spaces)",
)
Contact = Annotated[
    str,
    msgspec.Meta(pattern=_CONTACT_PATTERN, max_length=320, description=pattern_words(_CONTACT_PATTERN)),
]


class NewPublisher(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A publisher to create."""

    id: Slug
    name: DisplayName
    name_en: DisplayName | None = None
    kind: PublisherKind
    contact: Contact
    verified: bool = False


class UndoAgreement(msgspec.Struct, frozen=True, kw_only=True):
    """One reviewer's agreement to undo a kill switch, as its audit row recorded it."""

    by: str
    at: datetime
    reason: str | None = None  # None when the audit row holds none


class PendingUndo(msgspec.Struct, frozen=True, kw_only=True):
    """A kill switch half undone: who agreed to lift it since it was pulled, and how many must.

    The switch stays on until ``needed`` distinct people agreed; the next one may be neither the
    submitter(s) nor ``suspended_by``, nor anyone in ``agreed``.
    """

    agreed: tuple[UndoAgreement, ...]  # oldest first
    needed: int
    suspended_by: str | None  # who pulled the switch; None for a suspension older than the audit log


class PublisherRead(msgspec.Struct, frozen=True, kw_only=True):
    """A publisher as stored."""

    id: str
    name: str
    name_en: str | None
    kind: str
    verified: bool
    contact: str
    created_at: datetime
    suspended: bool = False  # none of its plugins runs, it cannot submit, its releases cannot be approved
    # Suspended and agreed to reinstate by fewer people than needed; None otherwise.
    pending_reinstatement: PendingUndo | None = None


class ArtifactRef(msgspec.Struct, frozen=True, kw_only=True):
    """The stored wheel of a release."""

    sha256: str
    size: int
    filename: str


class ScopeRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The scopes a release asks for."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


class ReviewRead(msgspec.Struct, frozen=True, kw_only=True):
    """One reviewer's decision."""

    reviewer: str
    decision: Literal["approve", "reject"]
    reasons: tuple[str, ...]
    checklist: dict[str, bool]
    granted: tuple[str, ...] | None
    at: datetime


class ReleaseRead(msgspec.Struct, frozen=True, kw_only=True):
    """A release with its checks, reviews and grant, as a reviewer or publisher sees it."""

    id: int
    plugin_id: str | None
    publisher_id: str
    version: str
    state: StateName
    artifact: ArtifactRef
    submitted_by: str
    submitted_at: datetime
    updated_at: datetime
    checks: tuple[CheckResult, ...]
    failed_checks: tuple[str, ...]
    requested: ScopeRequest
    granted_scopes: tuple[str, ...] | None  # None until the release is approved
    approvals_needed: int
    approvals: tuple[str, ...]  # reviewers who approved so far
    reviews: tuple[ReviewRead, ...]
    # None when none was stored, or today's rules cannot read it (``manifest_problem`` says why).
    manifest: Manifest | None
    # Suspended and agreed to resume by fewer people than needed; None otherwise.
    pending_resume: PendingUndo | None = None
    # Its publisher is suspended: it does not run, and in review it cannot be approved (nor is it listed
    # as waiting) until the publisher is reinstated.
    publisher_suspended: bool = False
    # The key and problem of a stored manifest that fails today's rules (tightened since it was filed):
    # such a release never runs, the index never serves it, and it cannot be approved or resumed.
    manifest_problem: ManifestProblem | None = None


class Submission(msgspec.Struct, frozen=True, kw_only=True):
    """What a submission filed: a new release, or the one an identical earlier upload filed (a retry)."""

    release: ReleaseRead
    created: bool


class ReleaseBrief(msgspec.Struct, frozen=True, kw_only=True):
    """A release in one line."""

    id: int
    version: str
    state: StateName


class PluginSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A catalogue entry: the plugin, its publisher, its newest release and its approved versions."""

    id: str
    name: str
    name_en: str | None
    publisher_id: str
    kind: str
    latest: ReleaseBrief | None
    approved_versions: tuple[str, ...]
    publisher_suspended: bool = False  # then none of the approved versions runs


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """One page of a listing; pass ``next_cursor`` back as ``cursor`` for the next (None: last page)."""

    items: tuple[T, ...]
    next_cursor: str | None
    total: int


class CatalogueQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Catalogue filters (all optional, combined with AND) and the page wanted.

    ``text`` matches the plugin id or name; ``scope`` finds plugins holding or asking for a scope in a
    live release; ``state`` finds plugins having some release in that state.
    """

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    publisher: KnownSlug | None = None
    kind: PublisherKind | None = None
    scope: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    state: StateName | None = None
    cursor: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    limit: Limit = 20


class ReleaseQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Release listing filters, oldest first (the review queue order).

    ``waiting``: only releases one more reviewer completes (a second approval, a second agreement to
    resume); ``reviewer`` (with ``waiting``): only those this person may complete.
    """

    plugin: KnownSlug | None = None
    publisher: KnownSlug | None = None
    state: StateName | None = None
    waiting: bool = False
    reviewer: Reviewer | None = None
    cursor: Annotated[str, msgspec.Meta(pattern=RELEASE_CURSOR_PATTERN)] | None = None
    limit: Limit = 20


class PublisherQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Publisher listing filters, by id, and the page wanted: ``waiting`` for the suspended ones one
    more agreement reinstates; ``reviewer`` (with ``waiting``) for only those this person may complete.
    ``cursor`` is the last id of the previous page, as ``next_cursor`` gave it."""

    waiting: bool = False
    reviewer: Reviewer | None = None
    cursor: KnownSlug | None = None
    limit: Limit = 20


class ReleaseDiff(msgspec.Struct, frozen=True, kw_only=True):
    """What a release asks for that the previous approved release of its plugin did not (and vice versa).

    Scopes are compared with what the baseline was *granted*, so a scope a reviewer withheld before
    shows up again as added. Without a baseline everything the release asks for is added.
    """

    release_id: int
    version: str
    baseline_release_id: int | None
    baseline_version: str | None
    added_scopes: tuple[str, ...]
    added_high_sensitivity_scopes: tuple[str, ...]
    removed_scopes: tuple[str, ...]
    added_slots: tuple[str, ...]
    removed_slots: tuple[str, ...]
    added_transaction_types: tuple[str, ...]
    removed_transaction_types: tuple[str, ...]
    added_hooks: tuple[str, ...]
    removed_hooks: tuple[str, ...]
    # The backend's OAuth client ([oauth]): where the consent flow may return, and who may sign for it.
    added_redirect_uris: tuple[str, ...] = ()
    removed_redirect_uris: tuple[str, ...] = ()
    # Signing keys as ``kid (RFC 7638 thumbprint)``.
    added_key_ids: tuple[str, ...] = ()
    removed_key_ids: tuple[str, ...] = ()
    # A kept type's declared product risk or amount field changed: ``key: field old → new``.
    changed_transaction_types: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when nothing was added, removed or changed."""
        return not any(
            (
                self.added_scopes,
                self.removed_scopes,
                self.added_slots,
                self.removed_slots,
                self.added_transaction_types,
                self.removed_transaction_types,
                self.changed_transaction_types,
                self.added_hooks,
                self.removed_hooks,
                self.added_redirect_uris,
                self.removed_redirect_uris,
                self.added_key_ids,
                self.removed_key_ids,
            )
        )


class LeftOut(msgspec.Struct, frozen=True, kw_only=True):
    """An approved release the live policy leaves out: its stored manifest fails today's rules."""

    release_id: int
    plugin_id: str
    version: str
    problem: ManifestProblem


class ActiveRelease(msgspec.Struct, frozen=True, kw_only=True):
    """An approved, not suspended release: the host may run this version with exactly these scopes."""

    release_id: int
    plugin_id: str
    version: str
    granted_scopes: frozenset[str]
    # The reviewed manifest's [oauth] table: the backend client's keys and redirect URIs.
    oauth: OAuthClient | None = None
    # Who the host trusts it as: the submitting publisher and that publisher's kind, never the
    # installed files' say; and the reviewed manifest, which the installed one must equal.
    publisher: str = ""
    kind: PublisherKind | None = None
    manifest: Manifest | None = None
