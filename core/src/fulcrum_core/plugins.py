"""Loading plugins: discover, judge by manifest before import, register, quarantine what is broken.

``get_plugin_manager(settings)`` reads every ``fulcrum`` entry point's ``fulcrum-plugin.toml``
*before* importing the plugin, registers what passes on a pluggy manager, runs ``check_pending()``,
and returns a :class:`PluginSet`. A broken plugin — unreadable or invalid manifest, manifest id not
the entry-point name, incompatible SDK range, import error, unknown or undeclared hook — is
quarantined with one log line naming the plugin, the cause and the fix; the host keeps starting.
When the host obeys a registry, each entry point is also checked against its approved release (the
``admission`` check) before import: a plugin not approved, or not the reviewed copy, is never imported.
Such an entry point is held: :meth:`PluginSet.admit_held` asks again later (the registry watcher does,
on each policy change and on a backoff between them) and imports it once it is admitted, so approval
needs no restart.

What runs per request is decided at runtime by :meth:`PluginSet.set_policy` (the registry's
approval, suspension and scope grants): the set swaps one immutable snapshot, so a request sees
either the old state or the new one, never a mix.
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
import threading
import traceback
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

import fulcrum_sdk
import msgspec
import pluggy
from fulcrum_sdk._declared import type_problem
from fulcrum_sdk._validate import account_fields_problem
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.hookspecs import HOOK_NAMES, NONBLOCKING_ATTR, PROJECT_NAME
from fulcrum_sdk.manifest import (
    Manifest,
    manifest_from_distribution,
    sdk_mismatch,
    semantic_problems,
    validation_problem,
)
from fulcrum_sdk.models import TransactionType
from fulcrum_sdk.scopes import PLUGIN_GRANTABLE_KINDS, SCOPES
from fulcrum_sdk.testing import load_manifest_beside, make_plugin_manager
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from fulcrum_core.settings import Settings

__all__ = [
    "AdmissionCheck", "HookCall", "LoadedPlugin", "PluginPolicy", "PluginSet", "get_plugin_manager",
    "import_failure",
]

AdmissionCheck = Callable[[str, Manifest, importlib.metadata.Distribution], str | None]
"""Asked before an entry point is imported: why not to import it (None: import it)."""

log = logging.getLogger("fulcrum.plugins")


@dataclass(frozen=True, slots=True)
class HookCall:
    """One plugin's implementation of one hook, resolved once at load time for the dispatcher."""

    function: Callable[..., Any]
    # The hook arguments the implementation declares (pluggy passes only those).
    argnames: tuple[str, ...]
    is_async: bool
    # A plain function declared ``@nonblocking``: called inline rather than in a worker thread.
    inline: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class LoadedPlugin:
    """A plugin that passed loading, with its effective grant. Compared and hashed by identity."""

    id: str
    manifest: Manifest
    plugin: object
    granted: frozenset[str]
    # Read-only: every request's context hands this very mapping to the plugin (ctx.settings).
    settings: Mapping[str, str]
    hooks: frozenset[str]
    kind: str
    impls: Mapping[str, HookCall] = field(default_factory=dict)
    # The installed distribution it was loaded from (None for objects handed in by tests): the host
    # verifies its files against the approved wheel.
    dist: importlib.metadata.Distribution | None = None

    @property
    def version(self) -> str:
        """The distribution's version ('0' when the plugin was not installed as a distribution)."""
        return self.manifest.version or "0"


class PluginPolicy(msgspec.Struct, frozen=True):
    """The registry's decision for one plugin: whether it runs, and the scopes it may use."""

    active: bool
    granted_scopes: frozenset[str]
    reason: str = ""
    # The kind the registry approved it as (its publisher's kind); the installed manifest's is not trusted.
    kind: str | None = None
    # Why the installed copy is not the approved release (manifest or files differ): it never runs.
    quarantine: str = ""


@dataclass(frozen=True, slots=True)
class _Snapshot:
    loaded: dict[str, LoadedPlugin]
    inactive: dict[str, str]
    quarantined: dict[str, str]
    by_hook: dict[str, list[LoadedPlugin]]
    transaction_types: dict[str, tuple[LoadedPlugin, TransactionType]]
    all_transaction_types: dict[str, tuple[LoadedPlugin, TransactionType]]


class PluginSet:
    """The loaded plugins and the current, atomically swapped view of which are active.

    ``loaded`` holds every plugin that passed loading (with its current grant), ``quarantined`` maps
    the id of every broken plugin to the reason, ``skipped`` those switched off in settings.
    ``quarantined_manifests`` keeps the manifest of each quarantined plugin whose manifest could be
    read: the branch layer still knows such a plugin (it is broken here, not unknown to the registry).
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        plugins: Iterable[LoadedPlugin],
        *,
        quarantined: Mapping[str, str],
        skipped: Mapping[str, str] | None = None,
        types: Mapping[str, Sequence[tuple[str, TransactionType]]] | None = None,
        rejected_types: Mapping[str, str] | None = None,
        dev_mode: bool = False,
        quarantined_manifests: Mapping[str, Manifest] | None = None,
        held: Mapping[str, tuple[importlib.metadata.EntryPoint, Manifest]] | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.pm = pm
        # Entry points the admission check refused, never imported: asked again by ``admit_held``.
        self._held: dict[str, tuple[importlib.metadata.EntryPoint, Manifest]] = dict(held or {})
        self._settings = settings
        self._load_quarantined: dict[str, str] = dict(quarantined)
        self.quarantined_manifests: dict[str, Manifest] = {
            pid: m for pid, m in (quarantined_manifests or {}).items() if pid in self._load_quarantined
        }
        self.skipped: dict[str, str] = dict(skipped or {})
        self.rejected_types: dict[str, str] = dict(rejected_types or {})
        self._base: dict[str, LoadedPlugin] = {p.id: p for p in plugins}
        # Type key → every plugin that registered it, by plugin id: the owner is the first one running.
        self._types: dict[str, tuple[tuple[str, TransactionType], ...]] = {
            key: tuple(claims) for key, claims in (types or {}).items()
        }
        self._dev_mode = dev_mode
        self._policy: Mapping[str, PluginPolicy] | None = None
        self._state = self._build(None)
        self.ready = True
        # Set when the plugins could not be loaded as they must be (the registry could not be read
        # before importing them): /readyz names it until the worker is restarted.
        self.unready_reason: str | None = None

    # --- the current view (read once per request) --------------------------------------------------

    @property
    def loaded(self) -> dict[str, LoadedPlugin]:
        """Every loaded plugin by id, with the grant now in force (active or not)."""
        return self._state.loaded

    @property
    def quarantined(self) -> dict[str, str]:
        """Broken plugins by id with the reason: at load, or found not to be the approved release."""
        return self._state.quarantined

    @property
    def inactive(self) -> dict[str, str]:
        """Loaded plugins that do not run now, with the reason (suspended, not approved, …)."""
        return self._state.inactive

    @property
    def transaction_types(self) -> dict[str, tuple[LoadedPlugin, TransactionType]]:
        """Transaction types of active plugins, by type key."""
        return self._state.transaction_types

    @property
    def all_transaction_types(self) -> dict[str, tuple[LoadedPlugin, TransactionType]]:
        """Transaction types of every loaded plugin, active or not, by type key."""
        return self._state.all_transaction_types

    @property
    def held(self) -> frozenset[str]:
        """Ids of the entry points the admission check refused and that were not imported since."""
        return frozenset(self._held)

    @property
    def policy(self) -> Mapping[str, PluginPolicy] | None:
        """The policy last set (``None``: no registry, every loaded plugin active)."""
        return self._policy

    def enabled_for(self, hook: str) -> list[LoadedPlugin]:
        """Active plugins implementing ``hook``, in id order. Shared: do not mutate the list."""
        return self._state.by_hook.get(hook, [])

    def is_active(self, plugin_id: str) -> bool:
        """True when the plugin is loaded and may run now."""
        return plugin_id in self._state.loaded and plugin_id not in self._state.inactive

    def set_policy(self, policy: Mapping[str, PluginPolicy] | None) -> None:
        """Switch plugins on/off and narrow grants without restart; affects the next request.

        A plugin's grant becomes the policy's ``granted_scopes`` intersected with its host-level grant
        (settings can only narrow further). A loaded plugin the policy does not mention is inactive,
        unless ``dev_mode`` is on. ``None`` removes the policy.
        """
        state = self._build(policy)
        self._policy = dict(policy) if policy is not None else None
        self._state = state  # one assignment: readers see the old snapshot or the new one

    def admit_held(self, admission: AdmissionCheck, *, only: Collection[str] | None = None) -> list[str]:
        """Ask ``admission`` again about each held entry point (or those in ``only``); import and
        register those it admits now.

        An admitted plugin joins the set (its hooks and transaction types) inactive until a policy
        names it; one it still refuses stays held with the new reason. Returns the ids now loaded.
        """
        asked = sorted(pid for pid in self._held if only is None or pid in only)
        if not asked or self._settings is None:
            return []
        loader = _Loader(self._settings, pm=self.pm)
        quarantined = dict(self._load_quarantined)
        for pid in asked:
            ep, manifest = self._held[pid]
            refused = admission(pid, manifest, ep.dist) if ep.dist is not None else "no distribution"
            if refused is not None:
                quarantined[pid] = refused
                continue
            quarantined.pop(pid, None)
            loader.admit(pid, manifest, ep.load)
            if pid in loader.manifests and ep.dist is not None:
                loader.dists[pid] = ep.dist
        tried = set(loader.seen)  # imported, or failed to import: never asked again
        loader.check_pending()
        resolved = (_resolve(loader, pid, m) for pid, m in sorted(loader.manifests.items()))
        plugins = [p for p in resolved if p is not None]
        types, rejected = _collect_types(plugins, claimed=self._types)
        for plugin in plugins:
            log.info("plugin %r %s admitted by the registry and loaded: hooks %s", plugin.id,
                     plugin.version, ", ".join(sorted(plugin.hooks)) or "-")
        quarantined.update(loader.quarantined)
        self._held = {pid: held for pid, held in self._held.items() if pid not in tried}
        self._base = {**self._base, **{p.id: p for p in plugins}}
        self._types = {key: tuple(claims) for key, claims in types.items()}
        self.rejected_types = {**self.rejected_types, **rejected}
        self._load_quarantined = quarantined
        self.quarantined_manifests = {
            pid: m for pid, m in self.quarantined_manifests.items() if pid not in self._base
        }
        self.set_policy(self._policy)  # a new snapshot: the newcomers are off until a policy names them
        return [p.id for p in plugins]

    # --- building a snapshot ---------------------------------------------------------------------------

    def _build(self, policy: Mapping[str, PluginPolicy] | None) -> _Snapshot:
        loaded: dict[str, LoadedPlugin] = {}
        inactive: dict[str, str] = {}
        quarantined = dict(self._load_quarantined)
        for pid, base in sorted(self._base.items()):
            plugin, reason = base, ""
            if policy is not None:
                decision = policy.get(pid)
                if decision is not None:
                    plugin = _with_grant(base, base.granted & decision.granted_scopes, decision.kind)
                    if decision.quarantine:
                        quarantined[pid] = decision.quarantine
                        reason = f"quarantined: {decision.quarantine}"
                    elif not decision.active:
                        reason = decision.reason or "switched off in the registry"
                elif not self._dev_mode:
                    reason = "not approved in the registry"
            loaded[pid] = plugin
            if reason:
                inactive[pid] = reason
        by_hook: dict[str, list[LoadedPlugin]] = {h: [] for h in HOOK_NAMES}
        for pid, plugin in loaded.items():
            if pid not in inactive:
                for hook in plugin.hooks:
                    by_hook.setdefault(hook, []).append(plugin)
        # An inactive plugin (not approved, suspended) never owns a type, so it cannot take over one
        # that an approved plugin registered too; a type nobody running claims names its first claimant.
        all_types: dict[str, tuple[LoadedPlugin, TransactionType]] = {}
        active_types: dict[str, tuple[LoadedPlugin, TransactionType]] = {}
        for key, claims in self._types.items():
            running = [(pid, t) for pid, t in claims if pid not in inactive]
            pid, tx_type = running[0] if running else claims[0]
            all_types[key] = (loaded[pid], tx_type)
            if running:
                active_types[key] = all_types[key]
        return _Snapshot(loaded, inactive, quarantined, by_hook, active_types, all_types)


def _with_grant(plugin: LoadedPlugin, granted: frozenset[str], kind: str | None = None) -> LoadedPlugin:
    kind = kind or plugin.kind
    if granted == plugin.granted and kind == plugin.kind:
        return plugin
    return LoadedPlugin(
        id=plugin.id, manifest=plugin.manifest, plugin=plugin.plugin, granted=granted,
        settings=plugin.settings, hooks=plugin.hooks, kind=kind, impls=plugin.impls, dist=plugin.dist,
    )


# --- loading ------------------------------------------------------------------------------------------


class _RejectedError(Exception):
    """A plugin failed a loading check: ``cause`` says what, ``fix`` what to do about it."""

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}; fix: {fix}")


@dataclass
class _Loader:
    settings: Settings
    pm: pluggy.PluginManager = field(default_factory=make_plugin_manager)
    manifests: dict[str, Manifest] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # Every manifest read, loaded or not: a quarantined plugin's stays known to the branch layer.
    seen: dict[str, Manifest] = field(default_factory=dict)
    dists: dict[str, importlib.metadata.Distribution] = field(default_factory=dict)
    held: dict[str, tuple[importlib.metadata.EntryPoint, Manifest]] = field(default_factory=dict)

    def quarantine(self, plugin_id: str, reason: str) -> None:
        log.error("plugin %r quarantined: %s", plugin_id, reason)
        self.quarantined[plugin_id] = reason

    def skip_reason(self, plugin_id: str) -> str | None:
        if plugin_id in self.settings.disabled_plugins:
            return "listed in settings.disabled_plugins"
        conf = self.settings.plugins.get(plugin_id)
        if conf is not None and not conf.enabled:
            return f"settings.plugins.{plugin_id}.enabled is false"
        return None

    def admit(self, plugin_id: str, manifest: Manifest, load: Callable[[], object]) -> None:
        """Check the manifest, then import (``load``) and register; quarantine on any failure."""
        if plugin_id in self.manifests or plugin_id in self.quarantined:
            self.quarantine(f"{plugin_id} (duplicate)", f"a second plugin claims id {plugin_id!r}; "
                            "fix: uninstall one of them or give each its own id")
            return
        self.seen[plugin_id] = manifest
        try:
            _check_manifest(manifest)
            obj = load()
        except _RejectedError as exc:
            self.quarantine(plugin_id, str(exc))
            return
        except BaseException as exc:  # sys.exit() or a BaseException of its own must not stop the host
            if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise  # may be a real one (the host starting); in a registry poll's thread, the plugin's
            self.quarantine(plugin_id, f"{import_failure(exc)}; "
                            "fix: install the plugin's dependencies or correct its code")
            return
        try:
            self.pm.register(obj, name=plugin_id)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self.quarantine(plugin_id, f"cannot register: {exc}; fix: match each hookimpl's "
                            "arguments to the spec in fulcrum_sdk.hookspecs")
            return
        self.manifests[plugin_id] = manifest

    def check_pending(self) -> None:
        """pluggy's ``check_pending()``, unregistering (and quarantining) one offender at a time."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
                self.pm.unregister(exc.plugin)
                self.manifests.pop(name, None)
                self.quarantine(name, f"{exc}; fix: rename the function to one of {', '.join(HOOK_NAMES)}")


def import_failure(exc: BaseException) -> str:
    """``import failed: <type>: <message> (at <file>, line <n>)``: the line that raised, for the fix.

    The place is the innermost frame of real source (importlib's frozen frames are skipped), so a
    plugin raising at import time is pointed at its own line, and a missing dependency at its import.
    """
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    where = f" (at {frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"import failed: {type(exc).__name__}: {exc}{where}"


def _check_manifest(manifest: Manifest) -> None:
    problems = semantic_problems(manifest)
    if problems:
        listed = "; ".join(f"{p.key}: {p.problem}" for p in problems)
        raise _RejectedError(f"fulcrum-plugin.toml is invalid ({listed})", "correct those keys")
    try:
        compatible = SpecifierSet(manifest.sdk).contains(fulcrum_sdk.__version__, prereleases=True)
    except InvalidSpecifier as exc:
        raise _RejectedError(f"sdk range {manifest.sdk!r} is invalid: {exc}", "use a PEP 440 range") from None
    if not compatible:
        raise _RejectedError(
            sdk_mismatch(manifest.sdk, fulcrum_sdk.__version__, runner="the host"),
            "make the changes the CHANGELOG lists, then release a build whose sdk range (in "
            "fulcrum-plugin.toml and the fulcrum-sdk dependency) includes this SDK",
        )


def _entry_point_loader(
    ep: importlib.metadata.EntryPoint, loader: _Loader, admission: AdmissionCheck | None
) -> None:
    dist = ep.dist
    if dist is None:
        loader.quarantine(ep.name, "entry point has no distribution; fix: install the plugin as a package")
        return
    try:
        manifest = manifest_from_distribution(dist)
    except ManifestError as exc:
        loader.quarantine(ep.name, f"{exc}; fix: ship a valid fulcrum-plugin.toml inside the package")
        return
    if manifest.id != ep.name:
        loader.quarantine(ep.name, f"manifest id {manifest.id!r} differs from entry-point name {ep.name!r}; "
                          "fix: make [project.entry-points.fulcrum] use the manifest id as the name")
        return
    refused = admission(ep.name, manifest, dist) if admission is not None else None
    if refused is not None:  # never imported: its module body must not run either
        loader.seen.setdefault(ep.name, manifest)
        loader.quarantine(ep.name, refused)
        loader.held[ep.name] = (ep, manifest)
        return
    loader.admit(ep.name, manifest, ep.load)
    if ep.name in loader.manifests:
        loader.dists.setdefault(ep.name, dist)


def _extra_manifest(obj: object) -> Manifest:
    manifest = getattr(obj, "MANIFEST", None)
    if isinstance(manifest, Manifest):
        # Struct constructors skip constraint checks; a round trip applies them as the TOML loader does.
        try:
            return msgspec.convert(msgspec.to_builtins(manifest), Manifest)
        except msgspec.ValidationError as exc:
            raise ManifestError(f"{_extra_name(obj)}.MANIFEST", *validation_problem(str(exc))) from None
    if isinstance(obj, ModuleType):
        return load_manifest_beside(obj)
    raise ManifestError(repr(obj), "MANIFEST",
                        "no MANIFEST attribute and not a module beside fulcrum-plugin.toml")


def _identity(obj: object) -> object:
    return obj


def _extra_name(obj: object) -> str:
    return obj.__name__ if isinstance(obj, ModuleType) else type(obj).__name__


def _resolve(loader: _Loader, plugin_id: str, manifest: Manifest) -> LoadedPlugin | None:
    """The plugin's hook implementations and host-level grant; quarantines what does not fit."""
    obj = loader.pm.get_plugin(plugin_id)
    impls: dict[str, HookCall] = {}
    for hook in HOOK_NAMES:
        for impl in getattr(loader.pm.hook, hook).get_hookimpls():
            if impl.plugin_name != plugin_id:
                continue
            if impl.wrapper or impl.hookwrapper or hook in impls:
                reason = (f"hook {hook!r} is implemented twice or as a wrapper; "
                          "fix: implement each hook once, as a plain hookimpl")
                loader.pm.unregister(name=plugin_id)
                loader.quarantine(plugin_id, reason)
                return None
            fn = impl.function
            inline = bool(getattr(fn, NONBLOCKING_ATTR, False))
            impls[hook] = HookCall(fn, tuple(impl.argnames), inspect.iscoroutinefunction(fn), inline)
    undeclared = sorted(set(impls) - set(manifest.hooks))
    if undeclared:
        loader.pm.unregister(name=plugin_id)
        listed = ", ".join(undeclared)
        loader.quarantine(plugin_id, f"implements hooks missing from fulcrum-plugin.toml: {listed}; "
                          "fix: list them under hooks so reviewers see them")
        return None
    for hook in sorted(set(manifest.hooks) - set(impls)):
        log.warning("plugin %r declares hook %r but does not implement it", plugin_id, hook)
    conf = loader.settings.plugins.get(plugin_id)
    requested = manifest.scopes.all
    granted = requested if conf is None or conf.scopes is None else conf.scopes & requested
    if conf is not None and conf.scopes is not None and conf.scopes - requested:
        log.warning("plugin %r: settings grant scopes its manifest does not request, ignored: %s",
                    plugin_id, ", ".join(sorted(conf.scopes - requested)))
    granted = frozenset(s for s in granted if s in SCOPES and SCOPES[s].kind in PLUGIN_GRANTABLE_KINDS)
    return LoadedPlugin(
        id=plugin_id, manifest=manifest, plugin=obj, granted=granted,
        settings=MappingProxyType(dict(conf.settings) if conf is not None else {}),
        hooks=frozenset(impls), kind=manifest.kind, impls=impls, dist=loader.dists.get(plugin_id),
    )


def _collect_types(
    plugins: Sequence[LoadedPlugin],
    claimed: Mapping[str, Sequence[tuple[str, TransactionType]]] | None = None,
) -> tuple[dict[str, list[tuple[str, TransactionType]]], dict[str, str]]:
    """Call each plugin's ``register_transaction_types`` on its own; every valid claim of a key is
    kept, in plugin order after the ``claimed`` ones (the first running claimant owns it), and a second
    claim is reported."""
    types: dict[str, list[tuple[str, TransactionType]]] = {k: list(v) for k, v in (claimed or {}).items()}
    rejected: dict[str, str] = {}

    def reject(key: str, reason: str) -> None:
        log.error("transaction type %r rejected: %s", key, reason)
        rejected[key] = reason

    for plugin in plugins:
        impl = plugin.impls.get("register_transaction_types")
        if impl is None:
            continue
        found: list[TransactionType] = []

        def register(tx_type: TransactionType, _found: list[TransactionType] = found) -> None:
            if not isinstance(tx_type, TransactionType):
                raise TypeError(f"register() takes a TransactionType, got {type(tx_type).__name__}")
            _found.append(tx_type)

        try:
            if impl.is_async:
                raise TypeError("register_transaction_types must be a plain function, not async def")
            if impl.argnames:
                impl.function(register=register)
            else:
                impl.function()
        except BaseException as exc:  # SystemExit or its own too: this plugin's failure, not the host's
            if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise  # may be a real one (see _Loader.admit)
            reject(f"{plugin.id}:*", f"plugin {plugin.id!r} failed in register_transaction_types: "
                   f"{type(exc).__name__}: {exc}; fix: register TransactionType objects without doing I/O")
            continue
        for registered in found:
            if registered.key not in plugin.manifest.type_keys:
                reject(f"{plugin.id}:{registered.key}", f"plugin {plugin.id!r} registers a type its manifest "
                       "does not declare; "
                       "fix: add it to transaction_types in fulcrum-plugin.toml")
                continue
            problem, tx_type = _as_declared(plugin, registered)
            if tx_type is None:
                # Its risk level and amount field pick the suitability rule and the limits: as approved,
                # or not at all.
                reject(f"{plugin.id}:{registered.key}", f"plugin {plugin.id!r}: {problem}")
            elif tx_type.key in types:
                reject(f"{plugin.id}:{tx_type.key}", f"plugin {plugin.id!r} registers {tx_type.key!r}, "
                       f"already owned by {types[tx_type.key][0][0]!r} while that one runs; "
                       "fix: pick a key in the plugin's own namespace")
                types[tx_type.key].append((plugin.id, tx_type))
            else:
                types[tx_type.key] = [(plugin.id, tx_type)]
    return types, rejected


def _as_declared(plugin: LoadedPlugin, tx_type: TransactionType) -> tuple[str, TransactionType | None]:
    """``tx_type`` with its product levels frozen as checked against the manifest (a product the plugin
    adds to its own dict later stays unrated), or why it is refused. Reading the plugin's objects (its
    params class, its mapping) may run its code: whatever that raises refuses the type, not the host."""
    try:
        problem = type_problem(tx_type, plugin.manifest) or account_fields_problem(tx_type)
        if problem is not None:
            return problem, None
        levels = MappingProxyType(dict(tx_type.product_risks))
    except Exception as exc:
        return f"{tx_type.key}: its declaration could not be read: {type(exc).__name__}: {exc}", None
    return "", msgspec.structs.replace(tx_type, product_risks=levels)


def get_plugin_manager(
    settings: Settings,
    *,
    extra_plugins: Sequence[object] = (),
    load_entry_points: bool = True,
    admission: AdmissionCheck | None = None,
) -> PluginSet:
    """Load the ``fulcrum`` entry points (and ``extra_plugins``, for tests) into a :class:`PluginSet`.

    ``extra_plugins`` are modules or objects carrying a ``MANIFEST`` attribute, or modules beside
    their ``fulcrum-plugin.toml``. Nothing here raises for a broken plugin: it is quarantined.
    ``admission`` (the registry's check, when the host obeys one) is asked about each entry point
    before it is imported; one it refuses is quarantined with its answer and never imported.
    """
    loader = _Loader(settings)
    if load_entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=PROJECT_NAME), key=lambda e: e.name):
            reason = loader.skip_reason(ep.name)
            if reason is not None:
                loader.skipped[ep.name] = reason
                continue
            _entry_point_loader(ep, loader, admission)
    for obj in extra_plugins:
        try:
            manifest = _extra_manifest(obj)
        except (ManifestError, OSError) as exc:
            fix = "give the plugin a MANIFEST or a fulcrum-plugin.toml"
            loader.quarantine(_extra_name(obj), f"{exc}; fix: {fix}")
            continue
        reason = loader.skip_reason(manifest.id)
        if reason is not None:
            loader.skipped[manifest.id] = reason
            continue
        loader.admit(manifest.id, manifest, functools.partial(_identity, obj))
    loader.check_pending()
    resolved = (_resolve(loader, pid, manifest) for pid, manifest in sorted(loader.manifests.items()))
    plugins = [p for p in resolved if p is not None]
    types, rejected = _collect_types(plugins)
    for plugin in plugins:
        log.info("plugin %r %s loaded: hooks %s; granted %s", plugin.id, plugin.version,
                 ", ".join(sorted(plugin.hooks)) or "-", ", ".join(sorted(plugin.granted)) or "-")
    return PluginSet(
        loader.pm, plugins, quarantined=loader.quarantined, skipped=loader.skipped, types=types,
        rejected_types=rejected, dev_mode=settings.dev_mode, quarantined_manifests=loader.seen,
        held=loader.held, settings=settings,
    )
