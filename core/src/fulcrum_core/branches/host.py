"""Wiring the branch layer into the host: the approved set it validates against, and the store itself.

The approved set is a callable so either source serves: the registry's approved releases when the
host has them, or (as ``fulcrum branch check`` does) the plugins installed here. The default,
:func:`approved_from_plugins`, reads the host's :class:`~fulcrum_core.plugins.PluginSet`: with no
registry policy every loaded plugin counts as approved at its installed version; once the registry
sets a policy, only the plugins it lets run do (in development mode, also those it does not know).
A suspended plugin therefore makes the branch files naming it invalid: the last good configuration
keeps serving and ``/readyz`` says why. A plugin quarantined on this host (it fails to import, say)
stays known by its manifest, approved as the registry says: the files naming it stay valid and it
simply does not run, where before one broken partner wheel made ``hq.toml`` invalid and, on a fresh
start, switched off every plugin HQ enables. A plugin not installed here at all is absent from the set:
the store leaves the entries naming it out and reports them (``absent.py``), for the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fulcrum_sdk.manifest import Manifest

from fulcrum_core.branches.model import ApprovedPlugin
from fulcrum_core.branches.store import ApprovedProvider, BranchConfigStore
from fulcrum_core.plugins import PluginPolicy, PluginSet
from fulcrum_core.settings import Settings

if TYPE_CHECKING:
    from fulcrum_core.runtime import Runtime

__all__ = ["approved_from_plugins", "attach_branches", "branch_store_of", "open_branch_store"]

log = logging.getLogger("fulcrum.branches")
_EXTRA = "branches"


def _approved(manifest: Manifest, decision: PluginPolicy | None, *, approved: bool) -> ApprovedPlugin:
    """``manifest``'s entry; not approved, it carries the registry's reason (``/readyz`` shows it)."""
    return ApprovedPlugin(
        kind=manifest.kind,
        publisher=manifest.publisher,
        versions=(manifest.version or "0",) if approved else (),
        slots=tuple(manifest.slots),
        why_not=decision.reason if decision is not None and not approved and decision.reason else None,
    )


def _is_approved(policy: Mapping[str, PluginPolicy] | None, plugin_id: str, dev_mode: bool) -> bool:
    if policy is None:
        return True
    decision = policy.get(plugin_id)
    return decision.active if decision is not None else dev_mode


def approved_from_plugins(plugins: PluginSet, *, dev_mode: bool = False) -> ApprovedProvider:
    """A provider of the approved set read from ``plugins``, rebuilt only when its snapshot changes."""
    cache: list[tuple[object, Mapping[str, ApprovedPlugin]]] = []

    def provide() -> Mapping[str, ApprovedPlugin]:
        loaded, policy = plugins.loaded, plugins.policy
        if cache and cache[0][0] is loaded:
            return cache[0][1]
        manifests = {**plugins.quarantined_manifests, **{pid: p.manifest for pid, p in loaded.items()}}
        out = {
            pid: _approved(
                m, None if policy is None else policy.get(pid), approved=_is_approved(policy, pid, dev_mode)
            )
            for pid, m in manifests.items()
        }
        cache[:] = [(loaded, out)]
        return out

    return provide


def open_branch_store(
    settings: Settings, approved: ApprovedProvider, *, known_branches: Collection[str] | None = None
) -> BranchConfigStore | None:
    """The loaded store over ``settings.branches_dir``; None (no branch layer) when there is no directory.
    ``known_branches``: the branches customers are in, where the data provider can list them.

    The first load happens here, so a host serves its branch configuration from the first request
    even before its lifespan starts the reload poller.
    """
    directory = Path(settings.branches_dir)
    if not directory.is_dir():
        log.info("no branch directory at %s: every approved plugin is on for every customer", directory)
        return None
    store = BranchConfigStore(
        directory,
        approved,
        {slot: config.capacity for slot, config in settings.slots.items()},
        poll_interval=settings.branches_poll_seconds,
        known_branches=known_branches,
    )
    store.refresh()
    return store


def attach_branches(runtime: Runtime, store: BranchConfigStore | None) -> None:
    """Keep ``store`` in ``runtime.extras`` for the admin and readiness routes."""
    runtime.extras[_EXTRA] = store


def branch_store_of(runtime: Runtime) -> BranchConfigStore | None:
    """The runtime's branch store; None when the host runs without a branch layer."""
    store = runtime.extras.get(_EXTRA)
    return store if isinstance(store, BranchConfigStore) else None
