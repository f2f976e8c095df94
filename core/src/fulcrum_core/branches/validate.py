"""Validation of parsed branch files against what the registry approved and the slot inventory.

Every problem is reported, each with the file, the TOML key path and what is wrong:
unknown plugin, not approved, a version range matching no approved release, rollout out of range,
unknown or unoffered slot, pin position out of range or taken, literal secret, a ``branch``-kind
plugin enabled by anyone but its publishing branch, a mandatory plugin switched off or overridden.

``inert_entries`` finds branch entries that change nothing (a plugin HQ has off, configured but not
switched on). They are kept apart: ``branch check`` refuses them, while the host applies the file and
only reports them, so HQ switching a plugin off never leaves a branch on its old configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from msgspec import UNSET
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion

from fulcrum_core.branches.layering import EffectiveConfig, layer
from fulcrum_core.branches.model import (
    HQ_FILE,
    ApprovedPlugin,
    BranchFile,
    BranchPluginEntry,
    HqFile,
    branch_publisher,
)
from fulcrum_core.branches.problems import BranchProblem, toml_key
from fulcrum_core.branches.secrets import reference_problem

__all__ = ["SlotInventory", "inert_entries", "validate_branch", "validate_hq"]

SlotInventory = Mapping[str, int]
"""The platform's slots: id → capacity (``{"home.banner/v1": 5, ...}``)."""

_LISTED = 8  # how many known names a "did you mean" list shows


def _names(names: Iterable[str]) -> str:
    items = sorted(names)
    more = f", … ({len(items) - _LISTED} more)" if len(items) > _LISTED else ""
    return ", ".join(items[:_LISTED]) + more if items else "none"


def _matching(spec: SpecifierSet, versions: tuple[str, ...]) -> list[str]:
    out = []
    for version in versions:
        try:
            if spec.contains(version, prereleases=True):
                out.append(version)
        except InvalidVersion:
            continue
    return out


def _entry_problems(
    file: str,
    plugin_id: str,
    entry: BranchPluginEntry,
    approved: Mapping[str, ApprovedPlugin],
    inventory: SlotInventory,
) -> list[BranchProblem]:
    """Problems of one entry that need no other file: registry, ranges, slots, secrets."""
    out: list[BranchProblem] = []

    def add(problem: str, *key: str) -> None:
        out.append(BranchProblem(file, toml_key("plugins", plugin_id, *key), problem))

    known = approved.get(plugin_id)
    if known is None:
        add(f"unknown plugin {plugin_id!r}; known plugins: {_names(approved)}")
    elif not known.versions:
        add(f"plugin {plugin_id!r} is not approved here: {known.why_not}" if known.why_not else
            f"plugin {plugin_id!r} has no approved release")
    if isinstance(entry.version, str):
        try:
            spec = SpecifierSet(entry.version)
        except InvalidSpecifier:
            add(f"{entry.version!r} is not a PEP 440 version range (e.g. \">=1.2,<2\")", "version")
        else:
            if known is not None and known.versions and not _matching(spec, known.versions):
                add(
                    f"{entry.version!r} matches no approved release (approved: {_names(known.versions)})",
                    "version",
                )
    if isinstance(entry.rollout, int) and not 0 <= entry.rollout <= 100:
        add(f"{entry.rollout} is out of range 0–100", "rollout")
    if isinstance(entry.allow, tuple):
        seen: set[str] = set()
        for customer_id in entry.allow:
            if customer_id in seen:
                add(f"customer {customer_id!r} is listed twice", "allow")
            seen.add(customer_id)
    for slot, position in entry.pin.items():
        if slot not in inventory:
            add(f"unknown slot {slot!r}; slots: {_names(inventory)}", "pin", slot)
            continue
        if known is not None and known.versions and slot not in known.slots:
            offers = _names(known.slots)
            add(f"plugin {plugin_id!r} does not offer slot {slot!r} (it offers: {offers})", "pin", slot)
        if not 1 <= position <= inventory[slot]:
            add(f"position {position} is out of range 1–{inventory[slot]}", "pin", slot)
    for key, value in entry.settings.items():
        problem = reference_problem(key, value)
        if problem is not None:
            add(problem, "settings", key)
    return out


def _no_branch_publishes(plugin_id: str, known: ApprovedPlugin, example: str) -> str | None:
    """Why no branch file can enable branch plugin ``plugin_id``: its publisher is no branch's id."""
    if known.publisher.startswith(branch_publisher("")):
        return None
    return (
        f"{plugin_id!r} is a branch plugin of {known.publisher!r}, which is no branch's publisher id: "
        f"a branch publishes as {branch_publisher('<code>')} ({example}), so no branch file can enable it"
    )


def _pin_conflicts(file: str, effective: EffectiveConfig, blame: str) -> list[BranchProblem]:
    """Two enabled plugins pinned to one position of one slot; reported where ``blame`` set the pin."""
    out: list[BranchProblem] = []
    taken: dict[tuple[str, int], str] = {}
    for pid in effective.enabled_ids:
        plugin = effective.plugins[pid]
        for slot, position in sorted(plugin.pin.items()):
            other = taken.setdefault((slot, position), pid)
            if other == pid:
                continue
            # Blame the pin this file set, whichever of the two plugins comes first by id.
            if plugin.pin_sources[slot] == blame:
                culprit, holder = pid, other
            elif effective.plugins[other].pin_sources[slot] == blame:
                culprit, holder = other, pid
            else:
                continue
            key = toml_key("plugins", culprit, "pin", slot)
            out.append(BranchProblem(file, key, f"position {position} is already pinned by {holder!r}"))
    return out


def validate_hq(
    hq: HqFile, *, file: str, approved: Mapping[str, ApprovedPlugin], inventory: SlotInventory
) -> list[BranchProblem]:
    """Every problem of the HQ file on its own."""
    out: list[BranchProblem] = []
    for pid, entry in hq.plugins.items():
        out += _entry_problems(file, pid, entry, approved, inventory)
        if entry.mandatory and entry.enabled is False:
            key = toml_key("plugins", pid, "enabled")
            out.append(BranchProblem(file, key, "a mandatory plugin must be enabled"))
        known = approved.get(pid)
        if known is not None and known.kind == "branch" and entry.enabled is not False:
            problem = _no_branch_publishes(pid, known, f"e.g. {branch_publisher('0755')}") or (
                f"{pid!r} is a branch plugin of {known.publisher!r}; only that branch can enable it"
            )
            out.append(BranchProblem(file, toml_key("plugins", pid), problem))
    out += _pin_conflicts(file, layer("hq", hq, None), "hq")
    return out


def validate_branch(
    code: str,
    branch: BranchFile,
    *,
    file: str,
    hq: HqFile,
    approved: Mapping[str, ApprovedPlugin],
    inventory: SlotInventory,
) -> list[BranchProblem]:
    """Every problem of branch ``code``'s file, judged with the HQ file it is layered on."""
    out: list[BranchProblem] = []
    effective = layer(code, hq, branch)
    for pid, entry in branch.plugins.items():
        out += _entry_problems(file, pid, entry, approved, inventory)
        hq_entry = hq.plugins.get(pid)
        if hq_entry is not None and hq_entry.mandatory:
            if entry.enabled is False:
                out.append(
                    BranchProblem(
                        file, toml_key("plugins", pid, "enabled"),
                        f"{pid!r} is mandatory in {HQ_FILE} and cannot be switched off",
                    )
                )
            for field in ("version", "rollout", "allow"):
                if getattr(entry, field) is not UNSET:
                    out.append(
                        BranchProblem(
                            file, toml_key("plugins", pid, field),
                            f"{pid!r} is mandatory in {HQ_FILE}; a branch may set only pin and settings",
                        )
                    )
        known = approved.get(pid)
        if (
            known is not None
            and known.kind == "branch"
            and effective.plugins[pid].enabled
            and known.publisher != branch_publisher(code)
        ):
            problem = _no_branch_publishes(pid, known, f"{branch_publisher(code)} for {code}") or (
                f"{pid!r} is a branch plugin of {known.publisher!r}; branch {code} cannot enable it"
            )
            out.append(BranchProblem(file, toml_key("plugins", pid), problem))
    out += _pin_conflicts(file, effective, "branch")
    return out



def inert_entries(branch: BranchFile, *, file: str, hq: HqFile) -> list[BranchProblem]:
    """Entries of ``branch`` that do nothing: the plugin is off in ``hq`` (or not named there) and the
    entry omits ``enabled``."""
    out: list[BranchProblem] = []
    for pid, entry in branch.plugins.items():
        hq_entry = hq.plugins.get(pid)
        if (hq_entry is not None and hq_entry.enabled is not False) or entry.enabled is not UNSET:
            continue
        fields = [f for f in ("version", "rollout", "allow") if getattr(entry, f) is not UNSET]
        fields += [f for f in ("pin", "settings") if getattr(entry, f)]
        what = "this entry does nothing"
        if fields:
            what = f"{', '.join(fields)} {'has' if len(fields) == 1 else 'have'} no effect"
        off = f"is off in {HQ_FILE}" if hq_entry is not None else f"is not in {HQ_FILE} (so it is off)"
        problem = (
            f"{what}: {pid!r} {off} and this entry does not switch it on; "
            "add `enabled = true` to give it to this branch's customers "
            "(or `enabled = false` to say it stays off)"
        )
        out.append(BranchProblem(file, toml_key("plugins", pid), problem))
    return out
