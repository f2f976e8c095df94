"""``PolicyWatcher``: keep the running host's plugin policy in step with the registry, without restart.

At startup, and then every ``registry_poll_seconds``, the watcher reads ``policy_version()`` (one
indexed query). Only when that number moved (or a plugin held back is due another check, below) does it
read the approved releases and swap the plugin set's policy. Database calls run in a worker thread so
the event loop keeps serving. Until the first successful read the host runs nothing (``fail closed``);
after that, a failed read keeps the last policy in force (a registry outage must not switch every
plugin off) and is retried on the next tick.
Each applied change first asks the ``admission`` gate again about every entry point it refused at
startup (registry unreadable, unknown, not approved yet, release not readable); between changes each
poll asks about those whose backoff is over (``recheck.py``), so a passing failure needs no unrelated
registry change; a loaded plugin whose release could not be read (development mode imports unchecked)
is verified again on the same kind of backoff. One admitted now is imported, then the policy switches
it on like any other; once the registry was read, the worker is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from fulcrum_registry import ActiveRelease, LeftOut, RegistryError, RegistryService
from fulcrum_registry.models import Plugin, Publisher, Release
from fulcrum_sdk.manifest import Manifest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from fulcrum_core import host_threads
from fulcrum_core.data.db import Database
from fulcrum_core.dispatch.leftovers import host_task
from fulcrum_core.errors import CoreError
from fulcrum_core.oauth.plugin_clients import sync_plugin_clients
from fulcrum_core.plugins import AdmissionCheck, PluginSet
from fulcrum_core.registry_host.admission import AdmissionGate
from fulcrum_core.registry_host.clients import client_policy
from fulcrum_core.registry_host.policy import plugin_policy, refused_reason
from fulcrum_core.registry_host.recheck import HeldStatus, RecheckSchedule
from fulcrum_core.registry_host.verify import ReleaseVerifier

__all__ = ["PolicyWatcher"]

log = logging.getLogger("fulcrum.registry")

RECHECK_CAP_SECONDS = 300.0
"""The longest wait between two questions about a held-back entry point (at least one poll interval)."""


class PolicyWatcher:
    """Polls the registry and applies its policy to ``plugins``; one per worker."""

    def __init__(
        self,
        service: RegistryService,
        db: Database,
        plugins: PluginSet,
        *,
        poll_seconds: float,
        dev_mode: bool = False,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        verifier: ReleaseVerifier | None = None,
        admission: AdmissionGate | None = None,
        clock: Callable[[], float] = time.monotonic,
        recheck_cap_seconds: float = RECHECK_CAP_SECONDS,
    ) -> None:
        self.service = service
        self.db = db
        self.plugins = plugins
        self.poll_seconds = poll_seconds
        self.dev_mode = dev_mode
        self.version: int | None = None  # the policy version now applied; None before the first read
        self._failing: str | None = None  # why the last poll could not read the policy, while it lasts
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._warned: set[str] = set()
        self._left_out: set[int] = set()  # releases said to be left out (today's rules refuse them)
        self._verifier = verifier if verifier is not None else ReleaseVerifier(service)
        self._admission = admission
        # Seconds, monotonic; tests move it by hand and call ``refresh`` for each poll.
        self.clock = clock
        self._recheck = RecheckSchedule(base=poll_seconds, cap=recheck_cap_seconds)
        self._reverify = RecheckSchedule(base=poll_seconds, cap=recheck_cap_seconds)  # loaded, unverified
        plugins.set_policy({})  # fail closed until the first read (dev mode still runs unknown plugins)

    def _states(self, plugin_ids: list[str]) -> list[tuple[str, str, str]]:
        if not plugin_ids:
            return []
        with self.db.read_session() as session:
            rows = session.execute(
                select(Release.plugin_id, Release.version, Release.state).where(
                    Release.plugin_id.in_(plugin_ids)
                )
            )
            return [(str(p), str(v), str(s)) for p, v, s in rows]

    def _suspended_publishers(self, plugin_ids: list[str]) -> dict[str, str]:
        """Installed plugin id → its publisher, for the plugins whose publisher is suspended."""
        if not plugin_ids:
            return {}
        with self.db.read_session() as session:
            rows = session.execute(
                select(Plugin.id, Plugin.publisher_id)
                .join(Publisher, Publisher.id == Plugin.publisher_id)
                .where(Plugin.id.in_(plugin_ids), Publisher.suspended.is_(True))
            )
            return {str(p): str(pub) for p, pub in rows}

    def refresh(self, *, force: bool = False) -> bool:
        """Apply the registry's policy if its version moved (or ``force``); True when it was applied."""
        version = self.service.policy_version()
        changed = force or version != self.version
        admitted = self._admit_held(every=changed)
        # A loaded plugin whose release could not be read last time is verified again once its wait is over.
        unverified = bool(self._reverify.due(self._verifier.unverified, self.clock()))
        if not (changed or admitted or unverified):
            return False
        installed = {pid: plugin.version for pid, plugin in self.plugins.loaded.items()}
        left_out: list[LeftOut] = []
        active = self.service.active_policy(left_out=left_out)
        self._warn_left_out(left_out)
        ids = sorted(installed)
        policy = plugin_policy(
            installed, active, self._states(ids), self._suspended_publishers(ids), left_out
        )
        # Only the reviewed copy runs: an approved version installed from other files is quarantined.
        policy = self._verifier.apply(policy, self.plugins.loaded, active)
        now = self.clock()
        for pid in self._verifier.unverified:
            self._reverify.refused(pid, policy[pid].reason, now, fresh=changed)
        self._reverify.keep(self._verifier.unverified)
        # Credentials first: a suspended plugin's backend loses its client before its hooks stop.
        self._sync_clients(active)
        self.plugins.set_policy(policy)
        self.version = version
        self._warn_unknown(installed, policy)
        running = sorted(pid for pid in installed if self.plugins.is_active(pid))
        log.info("registry policy %d applied: running %s", version, ", ".join(running) or "no plugins")
        return True

    def _admit_held(self, *, every: bool) -> bool:
        """Import the held entry points the registry admits now: ``every`` one (after a registry
        change), else those whose backoff is over. True when one was imported."""
        gate = self._admission
        if gate is None:
            return False
        now = self.clock()
        held = self.plugins.held
        ask = sorted(held) if every else self._recheck.due(held, now)
        admitted: list[str] = []
        if ask:
            gate.reread()
            admitted = self.plugins.admit_held(self._asking(gate, now, fresh=every), only=ask)
            self._recheck.keep(self.plugins.held)
        if gate.unreadable is None:
            self.plugins.unready_reason = None  # the registry was read: every entry point was judged
        return bool(admitted)

    def _asking(self, gate: AdmissionGate, now: float, *, fresh: bool) -> AdmissionCheck:
        """``gate``, recording each refusal in the schedule and saying in the log when it asks next."""

        def ask(plugin_id: str, manifest: Manifest, dist: importlib.metadata.Distribution) -> str | None:
            refused = gate(plugin_id, manifest, dist)
            if refused is None:
                return None
            before = self._recheck.status().get(plugin_id)
            status = self._recheck.refused(
                plugin_id, refused, now, final=gate.refused_for_good(plugin_id), fresh=fresh
            )
            if status.next_check is None:
                if before is None or before.next_check is not None:
                    # The reason may carry its own fix already ("...; fix: reinstall the approved wheel").
                    fix = ", then" if "; fix: " in refused else "; fix: reinstall the approved wheel and"
                    log.error(
                        "plugin %r held back for good: %s%s restart the worker", plugin_id, refused, fix
                    )
            else:
                # A new reason is a warning; the same one again (its wait doubled) only information.
                level = logging.INFO if before is not None and before.reason == refused else logging.WARNING
                log.log(level, "plugin %r held back (check %d): %s; next check in %.0f s",
                        plugin_id, status.checks, refused, status.next_check - now)
            return refused

        return ask

    def held_status(self) -> dict[str, HeldStatus]:
        """Each held-back entry point the watcher asked about: why it is held, when it is asked next
        (``next_check`` on ``clock``)."""
        return self._recheck.status()

    def _sync_clients(self, active: Mapping[str, Mapping[str, ActiveRelease]]) -> None:
        """Each approved plugin's OAuth client holds exactly its newest release's grant; others are disabled.

        From the registry alone, installed here or not: the clients are shared by every host, and a
        policy that differed by host flipped them (``clients.py``). A failure is logged and never stops
        the policy.
        """
        try:
            clients = client_policy(active)
            changes = sync_plugin_clients(self.db, clients, complete=True, isolate=True)
        except (CoreError, SQLAlchemyError, ValueError) as exc:
            log.error("cannot bring plugin OAuth clients in step with the registry: %s", exc)
            return
        for change in changes:
            if change.action == "refused":
                log.error("plugin %r's OAuth client is disabled: %s", change.plugin_id, change.problem)

    def _warn_left_out(self, left_out: list[LeftOut]) -> None:
        """Say once per release which approved release the policy leaves out and why (installed here or
        not: its OAuth client is disabled too); every other plugin runs."""
        for release in left_out:
            if release.release_id not in self._left_out:
                self._left_out.add(release.release_id)
                log.error("left out of the policy: %s", refused_reason(release))

    def _warn_unknown(self, installed: Mapping[str, str], policy: Mapping[str, object]) -> None:
        for pid in sorted(set(installed) - set(policy) - self._warned):
            self._warned.add(pid)
            if self.dev_mode:
                log.warning("plugin %r is unknown to the registry; it runs only because dev_mode is on", pid)
            else:
                log.warning("plugin %r is installed but unknown to the registry; it does not run", pid)

    async def poll_once(self) -> bool:
        """One refresh in a worker thread; a failure is logged and leaves the current policy in force.

        A failure is logged as an error when it starts or changes, then quietly (debug) while it lasts,
        and its end is logged: a worker on a database nobody migrated yet wrote the same error every
        poll (every 2 seconds)."""
        try:
            applied = await host_threads.run_sync(self.refresh)
        except (RegistryError, CoreError, SQLAlchemyError, OSError) as exc:
            problem = str(exc)
            if problem != self._failing:
                log.error("cannot read the registry policy (keeping the current one): %s", problem)
                self._failing = problem
            else:
                log.debug("still cannot read the registry policy: %s", problem)
            return False
        if self._failing is not None:
            log.info("the registry policy can be read again")
            self._failing = None
        return applied

    async def _run(self) -> None:
        while True:
            await self._sleep(self.poll_seconds)
            await self.poll_once()

    async def start(self) -> None:
        """Read the policy once, then poll in the background (an app's ``on_startup``)."""
        await self.poll_once()
        if self._task is None:
            self._task = host_task(self._run(), name="fulcrum-registry-watcher")

    async def stop(self) -> None:
        """Stop polling (an app's ``on_shutdown``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
