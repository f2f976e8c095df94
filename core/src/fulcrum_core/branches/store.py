"""``BranchConfigStore``: loads the branch directory, keeps the last good configuration, hot-reloads.

Each refresh reads every file and asks the registry what is approved; when nothing changed it stops
there. Otherwise it parses and validates everything and swaps in a new immutable state in one
assignment, so readers on other threads see either the old state or the new one, never a mix.

What an invalid edit does:

- a broken ``hq.toml`` keeps the last good HQ file in force (branch edits still apply on top of it);
- a broken branch file keeps that branch's last good file when it still fits the HQ file and the
  approved set, else the branch's last effective configuration; a branch never loaded successfully
  gets HQ's configuration only;
- a deleted branch file is a valid edit: the branch falls back to HQ's configuration;
- an entry that does nothing (a plugin HQ has off, configured without ``enabled = true``) is
  reported, and the file still applies;
- an entry naming a plugin not installed on this host is left out here and reported, and the rest of
  the file applies (``absent.py``);
- a file for a branch no customer is in (``0775.toml`` for ``0755``) is reported when the store was
  told the branches customers are in (a provider holding its customers knows; the bank's systems
  answer per customer only, so a host on them cannot tell);
- every problem stays in ``errors()`` (for ``/readyz``) and is logged once when it appears.

Resolved setting values (secrets included) are held apart from the effective configuration, which is
what staff views are built from, so no view can show them by accident.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from fulcrum_core.branches.absent import without_absent
from fulcrum_core.branches.layering import EffectiveConfig, layer
from fulcrum_core.branches.loader import branch_code_of, parse_branch, parse_hq, read_directory
from fulcrum_core.branches.model import HQ_FILE, ApprovedPlugin, BranchFile, HqFile
from fulcrum_core.branches.problems import BranchProblem, toml_key
from fulcrum_core.branches.secrets import SecretUnavailableError, parse_reference, resolve
from fulcrum_core.branches.validate import SlotInventory, inert_entries, validate_branch, validate_hq
from fulcrum_core.branches.watcher import Poller

__all__ = ["ApprovedProvider", "BranchConfigStore"]

ApprovedProvider = Callable[[], Mapping[str, ApprovedPlugin]]
"""Returns what the registry approved; called on every poll, so it should read a cached snapshot."""

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class _State:
    hq: HqFile = field(default_factory=HqFile)
    branch_files: Mapping[str, BranchFile] = field(default_factory=dict)
    configs: Mapping[str, EffectiveConfig] = field(default_factory=dict)
    # (branch code, plugin id) → resolved settings; "" as the code holds HQ-only settings.
    settings: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    problems: tuple[BranchProblem, ...] = ()
    # HQ-only configurations for branches without a file, built on first use.
    hq_only: dict[str, EffectiveConfig] = field(default_factory=dict)
    # Plugin id → its distinct resolved settings across HQ and the branches, built on first use.
    variants: dict[str, tuple[Mapping[str, str], ...]] = field(default_factory=dict)
    # Branch code → its settings token (see BranchConfigStore.settings_token), made on first use.
    tokens: dict[str, object] = field(default_factory=dict)


class BranchConfigStore:
    """The effective branch configuration of one worker, reloaded when files or approvals change."""

    def __init__(
        self,
        directory: str | Path,
        approved_provider: ApprovedProvider,
        inventory: SlotInventory,
        *,
        environ: Mapping[str, str] | None = None,
        poll_interval: float = 1.0,
        logger: logging.Logger | None = None,
        known_branches: Collection[str] | None = None,
    ) -> None:
        """``known_branches``: the codes of the branches customers are in, when the data provider can
        say; a branch file for any other code is then reported as applying to nobody."""
        self._dir = Path(directory)
        self._known = None if known_branches is None else frozenset(known_branches)
        self._approved = approved_provider
        self._inventory = dict(inventory)
        self._environ = environ
        self._log = logger or logging.getLogger("fulcrum.branches")
        self._lock = threading.Lock()
        self._state = _State()
        self._fingerprint: object = None
        self._source_problem: BranchProblem | None = None
        self._generation = 0
        self._poller = Poller(
            self.refresh, interval=poll_interval, name="fulcrum-branch-reload", logger=self._log
        )

    # -- reading (any thread, per request) ------------------------------------------------------

    @property
    def generation(self) -> int:
        """How many configurations have been applied; 0 before the first ``refresh()``."""
        return self._generation

    def effective(self, branch_code: str) -> EffectiveConfig:
        """The effective configuration of ``branch_code``; HQ's alone when the branch has no file."""
        state = self._state
        config = state.configs.get(branch_code)
        if config is None:
            config = state.hq_only.get(branch_code)
            if config is None:
                config = state.hq_only.setdefault(branch_code, layer(branch_code, state.hq, None))
        return config

    def branches(self) -> tuple[str, ...]:
        """Codes of the branches that have a file, sorted."""
        return tuple(sorted(self._state.configs))

    def settings_for(self, branch_code: str, plugin_id: str) -> Mapping[str, str]:
        """The plugin's resolved settings for this branch (secrets resolved): for its context only."""
        settings = self._state.settings
        found = settings.get((branch_code, plugin_id))
        if found is None and branch_code not in self._state.configs:
            found = settings.get(("", plugin_id))
        return found if found is not None else _EMPTY

    def settings_token(self, branch_code: str) -> object:
        """An object that stands for every :meth:`settings_for` answer of ``branch_code`` under the
        configuration applied now: the same object (``is``) until a reload applies a new one, so a
        caller may keep what it derived from those settings under it."""
        tokens = self._state.tokens
        token = tokens.get(branch_code)
        if token is None:
            token = tokens.setdefault(branch_code, object())
        return token

    def settings_variants(self, plugin_id: str) -> tuple[Mapping[str, str], ...]:
        """Every distinct resolved settings the plugin has where it is on (HQ's for branches without a
        file, and each branch's), in a fixed order: what its audience-level calls are made with."""
        state = self._state
        found = state.variants.get(plugin_id)
        if found is None:
            distinct = {
                frozenset(values.items()): values
                for (_, pid), values in state.settings.items() if pid == plugin_id
            }
            found = tuple(distinct[k] for k in sorted(distinct, key=sorted))
            state.variants[plugin_id] = found
        return found

    def errors(self) -> list[BranchProblem]:
        """Every current problem: invalid files, unresolvable secrets, an unreachable registry."""
        problems = list(self._state.problems)
        if self._source_problem is not None:
            problems.append(self._source_problem)
        return problems

    # -- reloading --------------------------------------------------------------------------------

    def start(self) -> None:
        """Load now, then poll for changes every ``poll_interval`` seconds on a background thread."""
        self.refresh()
        self._poller.start()

    def stop(self) -> None:
        """Stop polling (the current configuration keeps serving)."""
        self._poller.stop()

    def refresh(self) -> bool:
        """Reload if the files or the approved set changed; True when a new state was applied."""
        with self._lock:
            try:
                files, read_problems = read_directory(self._dir)
                approved = dict(self._approved())
            except Exception as exc:  # the directory or the registry is unreachable: keep serving
                self._report_source_problem(exc)
                return False
            self._report_source_problem(None)
            # A rotated $file: secret changes no branch file: its file's stamp is part of the state too.
            # The read problems too: a 0755.TOML appearing changes no file read, yet must be reported.
            fingerprint = (
                tuple(files.items()), tuple(read_problems), approved, self._secret_stamps(self._state)
            )
            if fingerprint == self._fingerprint:
                return False
            previous = self._state
            self._state = self._build(files, read_problems, approved, previous)
            self._fingerprint = fingerprint
            self._generation += 1
            self._announce(previous, self._state)
            return True

    def _secret_stamps(self, state: _State) -> tuple[tuple[str, int, int], ...]:
        """(path, mtime, size) of every ``$file:`` secret the applied configuration refers to."""
        targets: set[str] = set()
        for config in (layer("", state.hq, None), *state.configs.values()):
            for plugin in config.plugins.values():
                for value in plugin.settings.values():
                    ref = parse_reference(value)
                    if ref is not None and ref.scheme == "file":
                        targets.add(ref.target)
        stamps = []
        for target in sorted(targets):
            try:
                stat = (self._dir / target).stat()
                stamps.append((target, stat.st_mtime_ns, stat.st_size))
            except OSError:
                stamps.append((target, -1, -1))
        return tuple(stamps)

    def _report_source_problem(self, exc: Exception | None) -> None:
        if exc is None:
            if self._source_problem is not None:
                self._log.info("branch configuration sources reachable again")
            self._source_problem = None
            return
        problem = BranchProblem(str(self._dir), "", f"cannot reload: {type(exc).__name__}: {exc}")
        if problem != self._source_problem:
            self._log.warning("%s; the last good branch configuration keeps serving", problem.line)
        self._source_problem = problem

    def _display(self, name: str) -> str:
        return str(self._dir / name)

    def _build(
        self,
        files: Mapping[str, bytes | None],
        read_problems: list[BranchProblem],
        approved: Mapping[str, ApprovedPlugin],
        previous: _State,
    ) -> _State:
        problems = list(read_problems)
        hq = self._load_hq(files, approved, previous, problems)
        branch_files: dict[str, BranchFile] = {}
        configs: dict[str, EffectiveConfig] = {}
        for name, content in files.items():
            if name == HQ_FILE:
                continue
            try:
                code = branch_code_of(name)
            except ValueError as exc:
                problems.append(BranchProblem(self._display(name), "", str(exc)))
                continue
            if code is None:  # pragma: no cover - only hq.toml has no code, and it was skipped
                continue
            if self._known is not None and code not in self._known:
                problems.append(self._nobody(name, code))
            good = self._load_branch(code, name, content, hq, approved, previous, problems)
            if good is not None:
                branch_files[code] = good
                configs[code] = layer(code, hq, good)
                # Reported, not refused: refusing would keep a plugin HQ just switched off on here.
                problems += inert_entries(good, file=self._display(name), hq=hq)
            elif code in previous.configs:
                configs[code] = previous.configs[code]
            else:
                configs[code] = layer(code, hq, None)
        settings = self._resolve_all(hq, configs, problems, previous)
        return _State(
            hq=hq, branch_files=branch_files, configs=configs, settings=settings, problems=tuple(problems)
        )

    def _nobody(self, name: str, code: str) -> BranchProblem:
        known = sorted(self._known or ())
        near = difflib.get_close_matches(code, known, n=1, cutoff=0.7)
        meant = f" (did you mean {near[0]}?)" if near else ""
        return BranchProblem(
            self._display(name), "",
            f"no customer of the data provider is in branch {code}, so this file applies to nobody{meant}; "
            f"branches with customers: {', '.join(known) or 'none'}",
        )

    def _load_hq(
        self,
        files: Mapping[str, bytes | None],
        approved: Mapping[str, ApprovedPlugin],
        previous: _State,
        problems: list[BranchProblem],
    ) -> HqFile:
        if HQ_FILE not in files:
            if previous.hq != HqFile():
                # It was there and is gone: switching off every mandatory plugin at once is not a thing
                # to do by accident. An hq.toml holding only a comment says it on purpose.
                problems.append(BranchProblem(
                    self._display(HQ_FILE), "",
                    "disappeared; the last good HQ configuration keeps serving (an hq.toml holding only a "
                    "comment clears it)",
                ))
                return previous.hq
            return HqFile()  # no HQ file: nothing is platform-wide
        content = files[HQ_FILE]
        if content is None:
            return previous.hq
        display = self._display(HQ_FILE)
        if not content.strip() and previous.hq != HqFile():
            # Emptied, most likely caught while an editor rewrote it: as for a branch file, but every
            # branch's mandatory plugins would go at once.
            problems.append(BranchProblem(
                display, "", "the file is empty (read while being saved?): the last good HQ configuration "
                "keeps serving; an hq.toml holding only a comment clears it",
            ))
            return previous.hq
        parsed, found = parse_hq(content, display)
        if parsed is not None:
            parsed, absent = without_absent(parsed, approved, file=display)
            problems += absent  # reported, not refused: they can do nothing on this host
            found += validate_hq(parsed, file=display, approved=approved, inventory=self._inventory)
        problems += found
        return parsed if parsed is not None and not found else previous.hq

    def _load_branch(
        self,
        code: str,
        name: str,
        content: bytes | None,
        hq: HqFile,
        approved: Mapping[str, ApprovedPlugin],
        previous: _State,
        problems: list[BranchProblem],
    ) -> BranchFile | None:
        """The branch file to apply: the new one if valid, else the last good one if it still fits."""
        display = self._display(name)
        last = previous.branch_files.get(code)
        if content is not None and not content.strip() and last is not None and last.plugins:
            # Emptied: most likely read while an editor rewrote it in place. Taking it would switch off
            # the branch's own plugins until the next read; deleting the file is how to clear it.
            problems.append(BranchProblem(
                display, "", "the file is empty (read while being saved?): its last good configuration "
                "stays; to give the branch HQ's configuration alone, delete the file or leave a comment "
                "in it",
            ))
            content = None
        if content is not None:
            parsed, found = parse_branch(content, display)
            if parsed is not None:
                parsed, absent = without_absent(parsed, approved, file=display)
                problems += absent
                found += validate_branch(
                    code, parsed, file=display, hq=hq, approved=approved, inventory=self._inventory
                )
            problems += found
            if parsed is not None and not found:
                return parsed
        if last is not None and not validate_branch(
            code, last, file=display, hq=hq, approved=approved, inventory=self._inventory
        ):
            return last
        return None

    def _resolve_all(
        self,
        hq: HqFile,
        configs: Mapping[str, EffectiveConfig],
        problems: list[BranchProblem],
        previous: _State,
    ) -> dict[tuple[str, str], Mapping[str, str]]:
        """Resolve every enabled plugin's settings once. An unresolvable one is reported and keeps the
        value it resolved to before (an edit pointing a credential at an unset variable must not leave
        the plugin without one); never resolved before, it is left out."""
        environ = os.environ if self._environ is None else self._environ
        out: dict[tuple[str, str], Mapping[str, str]] = {}
        targets = [("", layer("", hq, None)), *configs.items()]
        for code, config in targets:
            for pid in config.enabled_ids:
                plugin = config.plugins[pid]
                resolved: dict[str, str] = {}
                for key, value in plugin.settings.items():
                    try:
                        resolved[key] = resolve(value, environ=environ, base_dir=self._dir)
                    except SecretUnavailableError as exc:
                        source = plugin.setting_sources[key]
                        file = self._display(HQ_FILE if source == "hq" else f"{code}.toml")
                        last = previous.settings.get((code, pid), {}).get(key)
                        why = str(exc)
                        if last is not None:
                            resolved[key] = last
                            why += "; the last good value keeps serving"
                        problem = BranchProblem(file, toml_key("plugins", pid, "settings", key), why)
                        if problem not in problems:
                            problems.append(problem)
                out[(code, pid)] = MappingProxyType(resolved)
        return out

    def _announce(self, previous: _State, current: _State) -> None:
        """Log the reload, and each problem once, when it first appears."""
        old = set(previous.problems)
        for problem in current.problems:
            if problem not in old:
                self._log.warning("%s", problem.line)
        self._log.info(
            "branch configuration %d applied: %d branch file(s), %d problem(s)%s",
            self._generation,
            len(current.configs),
            len(current.problems),
            "; the last good configuration keeps serving where files are invalid" if current.problems else "",
        )
