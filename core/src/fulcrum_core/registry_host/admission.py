"""Verify before import: an installed plugin's entry point is imported only once the registry approved
that version and its installed files are the approved wheel's.

Importing a plugin runs its module body, so this check cannot wait for the policy watcher (which only
switches hooks on and off). ``AdmissionGate`` reads the live releases once, on its first question, and
each installed plugin's releases (one query), and answers for each entry point why it must not be
imported, or None. A plugin unknown to the registry, a version never approved, a copy that is not the
reviewed one, or a registry it cannot read: never imported. A version approved and then suspended (or
whose publisher is) is imported when it is the reviewed copy: its hooks stay off until it is resumed.
The registry watcher asks again (after ``reread``) about refused entry points on each policy change,
and between changes on a backoff, so a plugin approved later, or a registry or release readable later,
needs no restart; a copy found not to be the reviewed one stays refused for good, as does a release
whose stored manifest today's rules refuse (filed before they tightened).
"""

from __future__ import annotations

import importlib.metadata

import msgspec
from fulcrum_registry import ActiveRelease, LeftOut, RegistryError, RegistryService
from fulcrum_registry.checks import stored_manifest
from fulcrum_registry.models import Publisher, Release
from fulcrum_sdk.manifest import Manifest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from fulcrum_core.data.db import Database
from fulcrum_core.errors import CoreError
from fulcrum_core.registry_host.policy import plugin_policy, refused_reason
from fulcrum_core.registry_host.verify import ReleaseVerifier

__all__ = ["AdmissionGate"]

_REVIEWED = ("approved", "suspended")  # states of a release reviewers approved that may run again


class _Releases(msgspec.Struct, frozen=True):
    """What the registry holds about one installed plugin (one indexed query)."""

    states: list[tuple[str, str, str]]
    suspended_publishers: dict[str, str]
    # The installed version's release when it was approved and is now suspended: the copy to verify.
    reviewed: ActiveRelease | None
    # The installed version's release when it was approved but today's rules refuse its manifest.
    left_out: LeftOut | None = None


class AdmissionGate:
    """``gate(plugin_id, manifest, dist)``: why not to import that entry point (None: import it)."""

    def __init__(self, service: RegistryService, db: Database, verifier: ReleaseVerifier) -> None:
        self.service = service
        self.db = db
        self.verifier = verifier
        self._active: dict[str, dict[str, ActiveRelease]] | None = None
        # The last failure to read the registry, if any: a plugin was then refused unverified.
        self.unreadable: str | None = None
        # Plugins refused for good, never asked again: the installed copy is not the reviewed one, or
        # today's rules refuse its release's manifest.
        self._tampered: dict[str, str] = {}

    def reread(self) -> None:
        """Forget the releases read so far: the next question reads the registry again."""
        self._active = None
        self.unreadable = None

    def _releases(self, plugin_id: str, version: str) -> _Releases:
        states: list[tuple[str, str, str]] = []
        suspended: dict[str, str] = {}
        reviewed: ActiveRelease | None = None
        left_out: LeftOut | None = None
        with self.db.read_session() as session:
            rows = session.execute(
                select(
                    Release.id,
                    Release.version,
                    Release.state,
                    Publisher.id,
                    Publisher.kind,
                    Publisher.suspended,
                )
                .join(Publisher, Publisher.id == Release.publisher_id)
                .where(Release.plugin_id == plugin_id)
            ).all()
            for release_id, release_version, state, publisher, kind, publisher_suspended in rows:
                states.append((plugin_id, str(release_version), str(state)))
                if publisher_suspended:
                    suspended[plugin_id] = str(publisher)
                if release_version == version and state in _REVIEWED:
                    manifest = session.scalar(select(Release.manifest).where(Release.id == release_id))
                    problem = stored_manifest(manifest)[1]
                    if problem is not None:  # filed before today's rules: never imported
                        left_out = LeftOut(
                            release_id=release_id, plugin_id=plugin_id, version=version, problem=problem
                        )
                        continue
                    reviewed = msgspec.convert(
                        {
                            "release_id": release_id,
                            "plugin_id": plugin_id,
                            "version": version,
                            "granted_scopes": [],
                            "publisher": publisher,
                            "kind": kind,
                            "manifest": manifest,
                        },
                        ActiveRelease,
                    )
        return _Releases(states, suspended, reviewed, left_out)

    def _refusal(
        self, plugin_id: str, manifest: Manifest, dist: importlib.metadata.Distribution
    ) -> str | None:
        if self._active is None:
            self._active = self.service.active_policy()  # once per host start, shared by every plugin
        version = manifest.version or "0"
        live = self._active.get(plugin_id, {})
        known = self._releases(plugin_id, version)
        if known.left_out is not None:  # the release never changes: asking again would not help
            self._tampered[plugin_id] = refused_reason(known.left_out)
            return self._tampered[plugin_id]
        decision = plugin_policy(
            {plugin_id: version}, {plugin_id: live} if live else {}, known.states, known.suspended_publishers
        ).get(plugin_id)
        if decision is None:
            return "installed but unknown to the registry; fix: submit its wheel for review (or use dev_mode)"
        release = live.get(version) or known.reviewed
        if release is None:
            return decision.reason or "not approved in the registry"
        try:
            problem = self.verifier.verdict(plugin_id, manifest, dist, release)
        except (RegistryError, OSError) as exc:
            return f"cannot verify the installed copy against release {release.release_id}: {exc}"
        if problem is not None:
            self._tampered[plugin_id] = problem
        return problem

    def refused_for_good(self, plugin_id: str) -> bool:
        """True when the installed copy was found not to be the reviewed one: asking again never helps."""
        return plugin_id in self._tampered

    def __call__(
        self, plugin_id: str, manifest: Manifest, dist: importlib.metadata.Distribution
    ) -> str | None:
        if plugin_id in self._tampered:
            return self._tampered[plugin_id]
        try:
            return self._refusal(plugin_id, manifest, dist)
        except (RegistryError, CoreError, SQLAlchemyError, OSError, msgspec.ValidationError) as exc:
            self.unreadable = f"{type(exc).__name__}: {exc}"
            return (
                f"cannot read the registry before importing the plugin: {exc}; "
                "fix: migrate the database (`fulcrum db upgrade`); asked again on the next registry poll"
            )
