"""``RegistryService``: publishers submit wheels, checks run, reviewers decide, the host reads the policy.

Every method is one transaction (``_db.UnitOfWork``): it either completes with its audit events or
leaves nothing behind. Inputs are validated into ``schemas`` structs and refusals raise the
``errors`` tree; the rules themselves (states, four eyes, grants) live in ``workflow``.

    service = RegistryService(sessionmaker(engine), artifact_root="var/artifacts")
    release = service.submit(wheel_bytes, filename="x-1.0.0-py3-none-any.whl",
                             publisher_id="pension-dept", submitted_by="alice")
    service.approve(release.id, reviewer="bob", checklist=dict.fromkeys(REVIEW_CHECKLIST, True))
    service.active_policy()   # {"demo": {"1.0.0": ActiveRelease(...)}}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from fulcrum_sdk.display import display_text_problem
from fulcrum_sdk.manifest import Manifest
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulcrum_registry import audit, queries
from fulcrum_registry._db import UnitOfWork
from fulcrum_registry._reads import (
    publisher_read,
    reinstatement_needed,
    release_reads,
    requested_scopes,
)
from fulcrum_registry._wheel import WheelFacts, inspect_wheel
from fulcrum_registry.artifacts import ArtifactStore, StoredArtifact
from fulcrum_registry.catalogue import search_plugins
from fulcrum_registry.checks import CheckContext, PriorRelease, run_checks, stored_manifest
from fulcrum_registry.contents import wheel_contents
from fulcrum_registry.errors import (
    AlreadyExists,
    Conflict,
    FourEyesViolation,
    InvalidInput,
    NotFound,
    PublisherSuspended,
    RegistryUnavailable,
)
from fulcrum_registry.models import Plugin, Publisher, Release, Review, ScopeGrant
from fulcrum_registry.schemas import (
    ActiveRelease,
    CatalogueQuery,
    LeftOut,
    NewPublisher,
    Page,
    PluginSummary,
    PublisherQuery,
    PublisherRead,
    ReleaseDiff,
    ReleaseQuery,
    ReleaseRead,
    Submission,
    validated,
)
from fulcrum_registry.undo import Undo, agreed_so_far, check_undoer, reinstatement_undo, resume_undo
from fulcrum_registry.workflow import (
    MAX_NAME,
    Action,
    ReleaseState,
    approvals_needed,
    check_checklist,
    check_grant,
    check_reasons,
    name_problem,
    next_state,
    person_key,
)

__all__ = ["DEFAULT_MAX_ARTIFACT_BYTES", "RegistryService"]

DEFAULT_MAX_ARTIFACT_BYTES = 50 * 1024 * 1024
_MAX_VERSION = 64  # the width of registry_releases.version


def _utcnow() -> datetime:
    return datetime.now(UTC)


_BRANCH_ID = re.compile(r"branch-[a-z0-9][a-z0-9-]*")


def _branch_id_rule(publisher_id: str, kind: str) -> None:
    """A branch publishes as ``branch-<code>`` and only a branch does: the host runs a plugin of kind
    ``branch`` only in the file of the branch whose publisher id that is, so a branch publisher under
    another id could never run anything, and ``branch-0755`` for a partner took the branch's name."""
    if kind == "branch" and not _BRANCH_ID.fullmatch(publisher_id):
        raise InvalidInput(
            "id", f"a branch publishes as branch-<code>, its branch file's name (branches/0755.toml: "
            f"branch-0755), not {publisher_id!r}",
        )
    if kind != "branch" and publisher_id.startswith("branch-"):
        raise InvalidInput("id", f"branch-<code> ids are for branches (kind branch), not a {kind}")


def _actor(value: str, field: str) -> str:
    problem = name_problem(value)
    if problem is not None and problem.startswith("holds U+"):  # a character display text refuses: name it
        raise InvalidInput(field, problem)
    if problem is not None:
        raise InvalidInput(field, f"must name who acts (1–{MAX_NAME} characters, no NUL)")
    return value.strip()


def _reviewer_filter(waiting: bool, reviewer: str | None) -> str | None:
    """A listing's ``reviewer`` cleaned like an actor; it only narrows ``waiting``, so alone it is refused."""
    if reviewer is None:
        return None
    if not waiting:
        raise InvalidInput(
            "reviewer", "narrows waiting to what this reviewer may complete: ask for waiting too"
        )
    return _actor(reviewer, "reviewer")


def _one_reason(reason: str) -> str:
    """A single ``reason`` argument, cleaned like review reasons but named ``reason`` when refused."""
    try:
        return check_reasons([reason], required=True)[0]
    except InvalidInput as exc:
        raise InvalidInput("reason", exc.problem) from None


def _release_version(facts: WheelFacts) -> str:
    """The version a release is filed under: METADATA's when valid, else the filename's (normalised)."""
    for text in (facts.metadata_version, facts.version):
        try:
            version = str(Version(text or ""))
        except InvalidVersion:
            continue
        if len(version) <= _MAX_VERSION:
            return version
    return "0"  # unreachable in practice: the upload's filename was parsed before


_DECLARING = (ReleaseState.IN_REVIEW.value, ReleaseState.APPROVED.value, ReleaseState.SUSPENDED.value)
"""Release states whose transaction types are taken: under review, running, or able to run again."""


def _type_owners(session: Session, manifest: Manifest) -> dict[str, str]:
    """Which of ``manifest``'s transaction types another plugin's live release already declares."""
    wanted = set(manifest.type_keys)
    if not wanted:
        return {}
    owners: dict[str, str] = {}
    rows = session.execute(
        select(Release.plugin_id, Release.manifest)
        .where(Release.state.in_(_DECLARING), Release.plugin_id != manifest.id)
        .order_by(Release.id)
    )
    for plugin_id, snapshot in rows:
        for key in (snapshot or {}).get("transaction_types", ()):
            if key in wanted and plugin_id is not None:
                owners.setdefault(key, plugin_id)
    return owners


class RegistryService:
    """The registry's operations; safe to share between threads (each call opens its own session)."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        artifact_root: str | Path,
        clock: Callable[[], datetime] = _utcnow,
        *,
        read_session_factory: Callable[[], Session] | None = None,
        sdk_version: str | None = None,
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
    ) -> None:
        """``read_session_factory`` serves the read-only calls (on SQLite: sessions that do not take
        the write lock); ``sdk_version`` overrides the installed fulcrum-sdk for ``sdk.range_satisfiable``.
        """
        self._uow = UnitOfWork(session_factory, read_session_factory=read_session_factory)
        self.artifacts = ArtifactStore(artifact_root)
        self._clock = clock
        self._sdk_version = sdk_version
        self._max_artifact_bytes = max_artifact_bytes

    # -- helpers -------------------------------------------------------------------------------

    def _audit(self, session: Session, actor: str, action: str, subject: str, **payload: Any) -> None:
        audit.append(session, at=self._clock(), actor=actor, action=action, subject=subject, payload=payload)

    @staticmethod
    def _release(session: Session, release_id: int, *, lock: bool = False) -> Release:
        return queries.release_row(session, release_id, lock=lock)

    @staticmethod
    def _runnable(row: Release, instead: str) -> Manifest:
        """``row``'s manifest, or ``Conflict`` when it fails today's rules (filed before they tightened):
        approved or resumed, such a release would still never run, so the reviewer is told to ``instead``."""
        manifest, problem = stored_manifest(row.manifest)
        if problem is not None:
            raise Conflict(
                f"release {row.id}'s manifest fails today's rules ({problem.key}: {problem.problem}), so it "
                f"can never run: {instead}"
            )
        if manifest is None:  # pragma: no cover - in review or suspended implies a manifest
            raise InvalidInput("release", "has no manifest")
        return manifest

    def _move(self, session: Session, row: Release, action: Action, actor: str, **payload: Any) -> None:
        """Apply a legal transition (or raise ``IllegalTransition``) and record it."""
        before = ReleaseState(row.state)
        after = next_state(row.id, before, action)
        row.state = after.value
        row.updated_at = self._clock()
        self._audit(
            session,
            actor,
            f"release.{action.value}",
            f"release:{row.id}",
            plugin=row.plugin_id,
            version=row.version,
            **{"from": before.value, "to": after.value},
            **payload,
        )

    def _read(self, session: Session, row: Release) -> ReleaseRead:
        session.flush()
        return release_reads(session, [row])[0]

    # -- publishers ----------------------------------------------------------------------------

    def create_publisher(self, new: NewPublisher | Mapping[str, Any], *, actor: str) -> PublisherRead:
        """Create a publisher; ``AlreadyExists`` when the id is taken."""
        data = validated(NewPublisher, msgspec.to_builtins(new) if isinstance(new, NewPublisher) else new)
        # Its name is shown beside its plugins, to reviewers and in the catalogue: display text.
        for field, name in (("name", data.name), ("name_en", data.name_en)):
            shown = display_text_problem(name) if name is not None else None
            if shown is not None:
                raise InvalidInput(field, shown)
        actor = _actor(actor, "actor")
        _branch_id_rule(data.id, data.kind)

        def work(session: Session) -> PublisherRead:
            if session.get(Publisher, data.id) is not None:
                raise AlreadyExists("publisher", data.id)
            row = Publisher(
                id=data.id,
                name=data.name,
                name_en=data.name_en,
                kind=data.kind,
                verified=data.verified,
                contact=data.contact,
                created_at=self._clock(),
            )
            session.add(row)
            self._audit(
                session, actor, "publisher.created", f"publisher:{data.id}", **msgspec.to_builtins(data)
            )
            return publisher_read(session, row)

        return self._uow.run(work)

    def set_publisher_verified(self, publisher_id: str, verified: bool, *, actor: str) -> PublisherRead:
        """Mark a publisher's identity as verified (or not) by the platform team."""
        actor = _actor(actor, "actor")

        def work(session: Session) -> PublisherRead:
            row = session.get(Publisher, publisher_id)
            if row is None:
                raise NotFound("publisher", publisher_id)
            if row.verified != verified:
                row.verified = verified
                self._audit(session, actor, "publisher.verified", f"publisher:{row.id}", verified=verified)
            return publisher_read(session, row)

        return self._uow.run(work)

    def suspend_publisher(self, publisher_id: str, *, actor: str, reason: str) -> PublisherRead:
        """Kill switch for a whole publisher: none of its plugins runs (hosts drop them on their next
        poll), it cannot submit, and its releases cannot be approved; each release keeps its state."""
        actor = _actor(actor, "actor")
        why = _one_reason(reason)

        def work(session: Session) -> PublisherRead:
            row = self._publisher(session, publisher_id, suspended=False)
            row.suspended = True
            self._audit(session, actor, "publisher.suspended", f"publisher:{row.id}", reason=why)
            return publisher_read(session, row)

        return self._uow.run(work)

    def reinstate_publisher(self, publisher_id: str, *, actor: str, reason: str) -> PublisherRead:
        """Undo ``suspend_publisher``: its approved releases run again with the grants they had.

        Four eyes (``undo``): not one of its submitters, not who suspended it, and two people when an
        approved release of its requests a high-sensitivity scope; the first of two is only recorded.
        """
        actor = _actor(actor, "actor")
        why = _one_reason(reason)

        def work(session: Session) -> PublisherRead:
            row = self._publisher(session, publisher_id, suspended=True)
            undo = reinstatement_undo(row.id)
            releases = list(session.scalars(select(Release).where(Release.publisher_id == row.id)))
            barred = {r.submitted_by: f"submitted release {r.id} of {row.id!r}" for r in releases}
            needed = reinstatement_needed(releases)
            agreed = self._agree_to_undo(session, undo, actor, why, barred, needed)
            if agreed is not None:
                row.suspended = False
                self._audit(session, actor, "publisher.reinstated", undo.subject, reason=why, agreed=agreed)
            return publisher_read(session, row)

        return self._uow.run(work)

    @staticmethod
    def _publisher(session: Session, publisher_id: str, *, suspended: bool) -> Publisher:
        """The publisher, locked, when its ``suspended`` flag is as given; else 404 or 409."""
        row = session.get(Publisher, publisher_id, with_for_update=True)
        if row is None:
            raise NotFound("publisher", publisher_id)
        if row.suspended != suspended:
            state = "already suspended" if row.suspended else "not suspended"
            raise Conflict(f"publisher {publisher_id!r} is {state}")
        return row

    def _agree_to_undo(
        self, session: Session, undo: Undo, actor: str, why: str, barred: Mapping[str, str], needed: int
    ) -> list[str] | None:
        """Everyone agreeing to ``undo`` with ``actor`` when they are enough, else None after
        auditing ``actor``'s agreement; ``FourEyesViolation`` when ``actor`` may not agree."""
        votes = agreed_so_far(session, undo)
        check_undoer(undo, votes, actor, barred)
        agreed = [*votes.agreed, actor]
        if len(agreed) >= needed:
            return agreed
        self._audit(
            session, actor, undo.agreed, undo.subject, reason=why, agreement=len(agreed), needed=needed
        )
        return None

    def get_publisher(self, publisher_id: str) -> PublisherRead:
        """One publisher, or ``NotFound``."""

        def work(session: Session) -> PublisherRead:
            row = session.get(Publisher, publisher_id)
            if row is None:
                raise NotFound("publisher", publisher_id)
            return publisher_read(session, row)

        return self._uow.read(work)

    def list_publishers(self, query: PublisherQuery | Mapping[str, Any] | None = None) -> Page[PublisherRead]:
        """Publishers matching ``query``, by id, a page at a time (as releases are)."""
        q = validated(
            PublisherQuery, msgspec.to_builtins(query) if isinstance(query, PublisherQuery) else query or {}
        )
        q = msgspec.structs.replace(q, reviewer=_reviewer_filter(q.waiting, q.reviewer))
        return self._uow.read(lambda s: queries.list_publishers(s, q))

    # -- submission ----------------------------------------------------------------------------

    def _check_upload(self, wheel: bytes, filename: str) -> None:
        if "/" in filename or "\\" in filename:
            raise InvalidInput("filename", "must be a bare file name")
        if len(filename) > 255:
            raise InvalidInput("filename", "longer than 255 characters")
        try:
            _name, version, _build, _tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise InvalidInput("filename", f"not a wheel filename: {exc}") from None
        if len(str(version)) > _MAX_VERSION:
            raise InvalidInput("filename", f"the version is longer than {_MAX_VERSION} characters")
        if not wheel:
            raise InvalidInput("wheel", "the upload is empty")
        if len(wheel) > self._max_artifact_bytes:
            raise InvalidInput("wheel", f"larger than {self._max_artifact_bytes} bytes")

    def submit(self, wheel: bytes, *, filename: str, publisher_id: str, submitted_by: str) -> ReleaseRead:
        """Store a wheel, run every check and file the release as ``in_review`` or ``checks_failed``
        (:meth:`submission`'s release)."""
        return self.submission(
            wheel, filename=filename, publisher_id=publisher_id, submitted_by=submitted_by
        ).release

    def submission(self, wheel: bytes, *, filename: str, publisher_id: str, submitted_by: str) -> Submission:
        """Store a wheel, run every check and file the release as ``in_review`` or ``checks_failed``.

        The artifact is stored (once per content) before the checks, so a failed release still
        records exactly what was submitted. A plugin id is claimed by its first submission whose
        ``publisher.owns_plugin`` check passes. The same publisher sending the identical wheel again
        (same sha256, so same plugin and version: a retry after a lost answer) files nothing: the
        release it filed before is returned, ``created=False``. Writers are serialised
        (``_db.UnitOfWork``), so two racing copies file one release.
        """
        submitted_by = _actor(submitted_by, "submitted_by")

        def may_submit(session: Session) -> Publisher:
            publisher = session.get(Publisher, publisher_id)
            if publisher is None:
                raise NotFound("publisher", publisher_id)
            if publisher.suspended:
                raise PublisherSuspended(publisher.id, "it cannot submit releases")
            return publisher

        # Refused before the wheel is stored: a refusal kept the artifact with no release to show for it.
        # (Checked again below, in the transaction that files the release.)
        self._check_upload(wheel, filename)
        self._uow.read(may_submit)
        stored = self.artifacts.put(wheel)
        facts = inspect_wheel(stored.path, filename=filename)
        contents = wheel_contents(stored.path)

        version = _release_version(facts)

        def work(session: Session) -> Submission:
            publisher = may_submit(session)
            earlier = session.scalars(
                select(Release)
                .where(
                    Release.artifact_sha256 == stored.sha256,
                    Release.publisher_id == publisher.id,
                    Release.version == version,
                )
                .order_by(Release.id.desc())
                .limit(1)
            ).first()
            if earlier is not None:
                return Submission(release=self._read(session, earlier), created=False)
            manifest = facts.manifest
            plugin = session.get(Plugin, manifest.id, with_for_update=True) if manifest else None
            prior = (
                tuple(
                    PriorRelease(v, s)
                    for v, s in session.execute(
                        select(Release.version, Release.state).where(Release.plugin_id == plugin.id)
                    )
                )
                if plugin
                else ()
            )
            context = CheckContext(
                publisher_id=publisher.id,
                publisher_kind=publisher.kind,
                plugin_owner=plugin.publisher_id if plugin else None,
                prior_releases=prior,
                sdk_version=self._sdk_version,
                type_owners=_type_owners(session, manifest) if manifest else None,
            )
            results = run_checks(facts, context)
            owns = next(r for r in results if r.id == "publisher.owns_plugin").passed
            passed = all(r.passed for r in results)
            now = self._clock()
            if manifest is not None and owns:
                if plugin is None:
                    plugin = Plugin(id=manifest.id, publisher_id=publisher.id, created_at=now, name="")
                    session.add(plugin)
                    self._audit(
                        session,
                        submitted_by,
                        "plugin.claimed",
                        f"plugin:{manifest.id}",
                        publisher=publisher.id,
                    )
                if passed or not plugin.name:
                    plugin.name, plugin.name_en = manifest.name.zh_CN, manifest.name.en
            snapshot = msgspec.structs.replace(manifest, version=version) if manifest else None
            row = Release(
                plugin_id=manifest.id if manifest is not None and owns else None,
                publisher_id=publisher.id,
                version=version,
                manifest=msgspec.to_builtins(snapshot) if snapshot else None,
                artifact_sha256=stored.sha256,
                artifact_size=stored.size,
                artifact_filename=filename,
                state=ReleaseState.SUBMITTED.value,
                submitted_by=submitted_by,
                submitted_at=now,
                updated_at=now,
                checks=msgspec.to_builtins(results),
                contents=contents,
            )
            session.add(row)
            session.flush()
            self._audit(
                session,
                submitted_by,
                "release.submitted",
                f"release:{row.id}",
                plugin=row.plugin_id,
                claimed_plugin=manifest.id if manifest else None,
                version=version,
                publisher=publisher.id,
                sha256=stored.sha256,
                size=stored.size,
                filename=filename,
            )
            if passed and snapshot is not None:
                self._record_requests(session, row.id, snapshot.scopes.required, snapshot.scopes.optional)
                self._move(session, row, Action.PASS_CHECKS, submitted_by)
            else:
                failed = [r.id for r in results if r.status == "failed"]
                self._move(session, row, Action.FAIL_CHECKS, submitted_by, failed=failed)
            return Submission(release=self._read(session, row), created=True)

        return self._uow.run(work)

    @staticmethod
    def _record_requests(
        session: Session, release_id: int, required: Iterable[str], optional: Iterable[str]
    ) -> None:
        for requirement, names in (("required", required), ("optional", optional)):
            for scope in sorted(names):
                session.add(
                    ScopeGrant(release_id=release_id, scope=scope, requirement=requirement, granted=None)
                )

    # -- review --------------------------------------------------------------------------------

    def _reviewable(self, session: Session, row: Release, reviewer: str, action: Action) -> Release:
        next_state(row.id, ReleaseState(row.state), action)  # refuse early with the current state
        if person_key(reviewer) == person_key(row.submitted_by):
            raise FourEyesViolation(f"{reviewer!r} submitted release {row.id} and cannot review it")
        if action is Action.APPROVE:
            publisher = session.get(Publisher, row.publisher_id)
            if publisher is not None and publisher.suspended:
                raise PublisherSuspended(publisher.id, f"release {row.id} cannot be approved")
        return row

    def approve(
        self,
        release_id: int,
        *,
        reviewer: str,
        checklist: Mapping[str, bool],
        reasons: Iterable[str] = (),
        grant: Iterable[str] | None = None,
    ) -> ReleaseRead:
        """Record an approval; the release becomes ``approved`` once enough distinct reviewers agree.

        ``grant`` (default: everything requested) may leave out optional scopes only; with two
        approvers the release is granted what both granted.
        """
        reviewer = _actor(reviewer, "reviewer")
        grant_list = None if grant is None else [grant] if isinstance(grant, str) else list(grant)

        def work(session: Session) -> ReleaseRead:
            # NotFound before the decision's own rules: a checklist is judged for a release that exists
            row = self._release(session, release_id, lock=True)
            answers = check_checklist(checklist, approving=True)
            cleaned = check_reasons([reasons] if isinstance(reasons, str) else reasons, required=False)
            self._reviewable(session, row, reviewer, Action.APPROVE)
            manifest = self._runnable(row, "reject it")
            required, optional = frozenset(manifest.scopes.required), frozenset(manifest.scopes.optional)
            granted = check_grant(grant_list, required=required, optional=optional)
            approvals = list(
                session.scalars(
                    select(Review).where(Review.release_id == row.id, Review.decision == "approve")
                )
            )
            if any(person_key(a.reviewer) == person_key(reviewer) for a in approvals):
                raise FourEyesViolation(
                    f"{reviewer!r} already approved release {row.id}; another reviewer must approve it "
                    "(each reviewer's approval counts once)"
                )
            now = self._clock()
            session.add(
                Review(
                    release_id=row.id,
                    reviewer=reviewer,
                    decision="approve",
                    reasons=cleaned,
                    checklist=answers,
                    granted=sorted(granted),
                    at=now,
                )
            )
            needed = approvals_needed(manifest.scopes.all)
            self._audit(
                session,
                reviewer,
                "review.approved",
                f"release:{row.id}",
                granted=sorted(granted),
                reasons=cleaned,
                checklist=answers,
                approval=len(approvals) + 1,
                needed=needed,
            )
            if len(approvals) + 1 >= needed:
                for earlier in approvals:
                    granted &= frozenset(earlier.granted or ())
                self._decide_grants(session, row.id, granted, now)
                self._move(
                    session,
                    row,
                    Action.APPROVE,
                    reviewer,
                    approvers=[*(a.reviewer for a in approvals), reviewer],
                )
                self._audit(
                    session,
                    reviewer,
                    "scopes.granted",
                    f"release:{row.id}",
                    granted=sorted(granted),
                    withheld=sorted((required | optional) - granted),
                )
            return self._read(session, row)

        return self._uow.run(work)

    @staticmethod
    def _decide_grants(session: Session, release_id: int, granted: frozenset[str], at: datetime) -> None:
        for row in session.scalars(select(ScopeGrant).where(ScopeGrant.release_id == release_id)):
            row.granted = row.scope in granted
            row.decided_at = at

    def reject(
        self,
        release_id: int,
        *,
        reviewer: str,
        reasons: Iterable[str],
        checklist: Mapping[str, bool] | None = None,
    ) -> ReleaseRead:
        """Reject a release in review, with at least one reason the publisher can act on."""
        reviewer = _actor(reviewer, "reviewer")

        def work(session: Session) -> ReleaseRead:
            row = self._release(session, release_id, lock=True)  # NotFound first, as for approve
            cleaned = check_reasons(
                [reasons] if isinstance(reasons, str) else reasons, required=True, what="a rejection reason"
            )
            answers = check_checklist(checklist or {}, approving=False)
            self._reviewable(session, row, reviewer, Action.REJECT)
            now = self._clock()
            session.add(
                Review(
                    release_id=row.id,
                    reviewer=reviewer,
                    decision="reject",
                    reasons=cleaned,
                    checklist=answers,
                    at=now,
                )
            )
            self._decide_grants(session, row.id, frozenset(), now)
            self._move(session, row, Action.REJECT, reviewer, reasons=cleaned)
            return self._read(session, row)

        return self._uow.run(work)

    # -- kill switch and retirement ------------------------------------------------------------

    def _transition(self, release_id: int, action: Action, actor: str, reason: str) -> ReleaseRead:
        actor = _actor(actor, "actor")
        why = _one_reason(reason)

        def work(session: Session) -> ReleaseRead:
            row = self._release(session, release_id, lock=True)
            self._move(session, row, action, actor, reason=why)
            return self._read(session, row)

        return self._uow.run(work)

    def suspend(self, release_id: int, *, actor: str, reason: str) -> ReleaseRead:
        """Kill switch: ``approved → suspended``; the host stops running it on its next policy poll."""
        return self._transition(release_id, Action.SUSPEND, actor, reason)

    def resume(self, release_id: int, *, actor: str, reason: str) -> ReleaseRead:
        """Undo a suspension: ``suspended → approved``, with the grant it had.

        Four eyes, as for approving (``undo``): never the submitter, never who suspended it, and two
        distinct people when it requests a high-sensitivity scope; the first of two is only recorded
        (``release.resume_agreed``) and the release stays suspended.
        """
        actor = _actor(actor, "actor")
        why = _one_reason(reason)

        def work(session: Session) -> ReleaseRead:
            row = self._release(session, release_id, lock=True)
            next_state(row.id, ReleaseState(row.state), Action.RESUME)  # refuse early with the state
            self._runnable(row, "retire it")
            undo = resume_undo(row.id)
            barred = {row.submitted_by: f"submitted release {row.id}"}
            needed = approvals_needed(requested_scopes(row))
            agreed = self._agree_to_undo(session, undo, actor, why, barred, needed)
            if agreed is not None:
                self._move(session, row, Action.RESUME, actor, reason=why, resumers=agreed)
            return self._read(session, row)

        return self._uow.run(work)

    def retire(self, release_id: int, *, actor: str, reason: str) -> ReleaseRead:
        """Take an approved or suspended release out of service for good."""
        return self._transition(release_id, Action.RETIRE, actor, reason)

    # -- reading -------------------------------------------------------------------------------

    def get_release(self, release_id: int) -> ReleaseRead:
        """One release with checks, reviews and grant, or ``NotFound``."""
        return self._uow.read(lambda s: release_reads(s, [self._release(s, release_id)])[0])

    def list_releases(self, query: ReleaseQuery | Mapping[str, Any] | None = None) -> Page[ReleaseRead]:
        """Releases matching ``query``, oldest first (the review queue), a page at a time."""
        q = validated(
            ReleaseQuery, msgspec.to_builtins(query) if isinstance(query, ReleaseQuery) else query or {}
        )
        q = msgspec.structs.replace(q, reviewer=_reviewer_filter(q.waiting, q.reviewer))
        return self._uow.read(lambda s: queries.list_releases(s, q))

    def catalogue(self, query: CatalogueQuery | Mapping[str, Any] | None = None) -> Page[PluginSummary]:
        """Search plugins by name, publisher, kind, scope and state, a page at a time."""
        q = validated(
            CatalogueQuery, msgspec.to_builtins(query) if isinstance(query, CatalogueQuery) else query or {}
        )
        return self._uow.read(lambda s: search_plugins(s, q))

    def diff(self, release_id: int) -> ReleaseDiff:
        """What ``release_id`` asks for beyond the newest earlier release of its plugin that was approved."""
        return self._uow.read(lambda s: queries.release_diff(s, release_id))

    def artifact(self, release_id: int) -> StoredArtifact:
        """Where a release's wheel is stored."""
        sha256 = self._uow.read(lambda s: self._release(s, release_id).artifact_sha256)
        return self.artifacts.get(sha256)

    # -- what the host polls -------------------------------------------------------------------

    def active_policy(self, *, left_out: list[LeftOut] | None = None) -> dict[str, dict[str, ActiveRelease]]:
        """Plugin id → version → the approved, not suspended release and its granted scopes.

        Several approved versions of one plugin may be live at once (a rolling upgrade); the host
        runs an installed plugin only if its exact version is here, with exactly these scopes. An
        approved release whose stored manifest fails today's rules is not here: it is appended to
        ``left_out`` when given.
        """
        return self._uow.read(lambda session: queries.active_policy(session, left_out))

    def approved_manifest(self, plugin_id: str) -> Manifest | None:
        """The manifest of the plugin's newest approved, not suspended release (None: none approved):
        what the customer is asked to consent to, on every host alike."""
        return self._uow.read(lambda session: queries.approved_manifest(session, plugin_id))

    def release_contents(self, release_id: int) -> dict[str, str]:
        """The release's wheel as ``{member path: sha256 hex}`` (RECORD left out), for hosts to verify
        installed files against; derived from the stored artifact for releases filed without it."""

        def work(session: Session) -> tuple[dict[str, str] | None, str]:
            row = session.get(Release, release_id)
            if row is None:
                raise NotFound("release", str(release_id))
            return row.contents, row.artifact_sha256

        contents, sha256 = self._uow.read(work)
        if contents is None:
            self.artifacts.read(sha256)  # refuses an artifact corrupted on disk
            contents = wheel_contents(self.artifacts.get(sha256).path)
            if contents is None:
                raise RegistryUnavailable(f"artifact {sha256} of release {release_id} is not a wheel")
        return dict(contents)

    def policy_version(self) -> int:
        """A number that grows whenever anything in the registry changes (the newest audit ``seq``).

        One indexed query: a host polls this and re-reads ``active_policy()`` only when it moved.
        """
        return self._uow.read(audit.last_seq)

    # -- audit ---------------------------------------------------------------------------------

    def audit_events(
        self, *, after: int = 0, limit: int = 100, subject: str | None = None
    ) -> list[audit.AuditEntry]:
        """Audit events after ``after`` in order (at most ``limit``, 1–1000)."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit", "must be between 1 and 1000")
        if after < 0:
            raise InvalidInput("after", "must not be negative")
        return self._uow.read(lambda s: audit.events(s, after=after, limit=limit, subject=subject))

    def verify_audit_chain(self) -> audit.BrokenLink | None:
        """Walk the whole audit chain; the first broken link, or None when every row holds."""
        return self._uow.read(audit.verify)

    def audit_head(self) -> tuple[int, str]:
        """The newest ``(seq, hash)``: record it elsewhere to detect a truncated tail later."""
        return self._uow.read(audit.head)
