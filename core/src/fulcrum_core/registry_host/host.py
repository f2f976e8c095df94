"""``RegistryHost``: the registry service of one running host, and the watcher that makes it obeyed.

``attach_registry(runtime, obey=...)`` opens the service on the host's database (artifacts under
``registry_artifacts_dir``) and keeps it in ``runtime.extras``; with ``obey`` the plugin set runs only
what the registry approved. ``build_runtime`` obeys by default whenever it loads the installed entry
points; tests that hand-pick plugin objects get the service without the watcher unless they ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fulcrum_registry import RegistryService
from sqlalchemy.orm import sessionmaker

from fulcrum_core.data.db import Database
from fulcrum_core.registry_host.admission import AdmissionGate
from fulcrum_core.registry_host.verify import ReleaseVerifier
from fulcrum_core.registry_host.watcher import PolicyWatcher
from fulcrum_core.settings import Settings

if TYPE_CHECKING:
    from fulcrum_core.runtime import Runtime

__all__ = [
    "RegistryHost", "admission_gate", "artifacts_dir", "attach_registry", "open_registry", "registry_of",
    "watcher_of",
]

_EXTRA = "registry"


def artifacts_dir(settings: Settings) -> Path:
    """Where submitted wheels are stored: ``registry_artifacts_dir`` or ``<state_dir>/artifacts``."""
    return Path(settings.registry_artifacts_dir or Path(settings.state_dir) / "artifacts")


def open_registry(settings: Settings, db: Database) -> RegistryService:
    """A ``RegistryService`` on ``db`` (writes take the lock up front; reads on SQLite do not)."""
    return RegistryService(
        sessionmaker(bind=db.engine, expire_on_commit=False),
        artifacts_dir(settings),
        read_session_factory=sessionmaker(bind=db.reader, expire_on_commit=False),
    )


@dataclass
class RegistryHost:
    """The registry as one host sees it: the service, and the watcher when the host obeys it."""

    service: RegistryService
    watcher: PolicyWatcher | None = None

    async def start(self) -> None:
        """Apply the policy before the first request, then poll (``on_startup``)."""
        if self.watcher is not None:
            await self.watcher.start()

    async def stop(self) -> None:
        """Stop polling (``on_shutdown``)."""
        if self.watcher is not None:
            await self.watcher.stop()


def admission_gate(settings: Settings, db: Database) -> AdmissionGate:
    """The check ``get_plugin_manager`` asks before importing an entry point; pass it to
    ``attach_registry`` as ``gate`` so the watcher reuses its service and verdicts (files hashed once)."""
    service = open_registry(settings, db)
    return AdmissionGate(service, db, ReleaseVerifier(service))


def attach_registry(runtime: Runtime, *, obey: bool, gate: AdmissionGate | None = None) -> RegistryHost:
    """Give ``runtime`` its registry (once); ``obey`` makes the plugin set follow the registry's policy."""
    found = runtime.extras.get(_EXTRA)
    if isinstance(found, RegistryHost):
        return found
    settings = runtime.settings
    service = gate.service if gate is not None else open_registry(settings, runtime.db)
    watcher = (
        PolicyWatcher(
            service,
            runtime.db,
            runtime.plugins,
            poll_seconds=settings.registry_poll_seconds,
            dev_mode=settings.dev_mode,
            verifier=gate.verifier if gate is not None else None,
            admission=gate,
        )
        if obey
        else None
    )
    host = RegistryHost(service, watcher)
    runtime.extras[_EXTRA] = host
    return host


def registry_of(runtime: Runtime) -> RegistryHost:
    """The runtime's registry, attached (not obeyed) on first use when ``build_runtime`` did not."""
    return attach_registry(runtime, obey=False)


def watcher_of(runtime: Runtime) -> PolicyWatcher | None:
    """The runtime's registry watcher, if it obeys a registry; attaches nothing (for read-only views)."""
    found = runtime.extras.get(_EXTRA)
    return found.watcher if isinstance(found, RegistryHost) else None
