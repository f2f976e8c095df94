"""Checking branch files as a set, the way ``fulcrum branch check`` and CI do, without a running host.

A branch file is judged together with the ``hq.toml`` beside it (when there is one), because
switching off a mandatory plugin or fighting over a pinned position is only visible against HQ.
That HQ file's own problems are reported too: the pair is what will run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from fulcrum_core.branches.loader import branch_code_of, not_read, parse_branch, parse_hq
from fulcrum_core.branches.model import HQ_FILE, ApprovedPlugin, HqFile
from fulcrum_core.branches.problems import BranchProblem
from fulcrum_core.branches.validate import SlotInventory, inert_entries, validate_branch, validate_hq

__all__ = ["check_files"]


def _read(path: Path, problems: list[BranchProblem]) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as exc:
        problems.append(BranchProblem(str(path), "", f"cannot read: {exc.strerror or exc}"))
        return None


def check_files(
    paths: Iterable[str | Path], *, approved: Mapping[str, ApprovedPlugin], inventory: SlotInventory
) -> list[BranchProblem]:
    """Every problem in ``paths`` (and in the ``hq.toml`` beside each branch file), in file order, then
    the files beside them that the host would not read."""
    given = [Path(raw) for raw in paths]
    problems: list[BranchProblem] = []
    hq_files: dict[Path, HqFile] = {}

    def hq_for(hq_path: Path) -> HqFile:
        key = hq_path.resolve()
        if key not in hq_files:
            hq_files[key] = HqFile()
            content = _read(hq_path, problems) if hq_path.exists() else None
            if content is not None:
                parsed, found = parse_hq(content, str(hq_path))
                if parsed is not None:
                    found += validate_hq(parsed, file=str(hq_path), approved=approved, inventory=inventory)
                    hq_files[key] = parsed
                problems.extend(found)
        return hq_files[key]

    for path in given:
        try:
            code = branch_code_of(path)
        except ValueError as exc:
            problems.append(BranchProblem(str(path), "", str(exc)))
            continue
        if code is None:
            hq_for(path)
            continue
        hq = hq_for(path.parent / HQ_FILE)
        content = _read(path, problems)
        if content is None:
            continue
        parsed, found = parse_branch(content, str(path))
        if parsed is not None:
            found += validate_branch(
                code, parsed, file=str(path), hq=hq, approved=approved, inventory=inventory
            )
            flagged = {p.key for p in found}  # an unknown plugin is that, not also an entry doing nothing
            found += [p for p in inert_entries(parsed, file=str(path), hq=hq) if p.key not in flagged]
        problems.extend(found)
    # ``branches/*.toml`` does not match 0755.TOML, which the host would skip: name such files beside.
    named = {path.resolve() for path in given}
    for directory in dict.fromkeys(path.parent for path in given):
        try:
            beside = not_read(directory)
        except OSError:
            continue
        problems += [p for p in beside if Path(p.file).resolve() not in named]
    return problems
