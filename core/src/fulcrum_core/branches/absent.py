"""Entries naming a plugin the host does not have: left out on that host, reported, never fatal.

The host validates branch files against the plugins installed on it (``host.approved_from_plugins``),
while ``fulcrum branch check`` validates them against the registry. A plugin the registry approved
can be named in ``hq.toml`` before every host has its wheel (a rolling deployment, a host restarted
before the install): refusing the file for that made a freshly started host run none of HQ's plugins,
the mandatory ones included. Such an entry can do nothing on this host anyway, so it is left out of
the file here and reported on ``/readyz``; the rest of the file applies as usual.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

import msgspec

from fulcrum_core.branches.model import ApprovedPlugin, BranchFile, HqFile
from fulcrum_core.branches.problems import BranchProblem, toml_key

__all__ = ["without_absent"]

F = TypeVar("F", BranchFile, HqFile)


def without_absent(
    parsed: F, approved: Mapping[str, ApprovedPlugin], *, file: str
) -> tuple[F, list[BranchProblem]]:
    """``parsed`` without its entries for plugins missing from ``approved``, and one report for each."""
    absent = [pid for pid in parsed.plugins if pid not in approved]
    if not absent:
        return parsed, []
    reports = []
    for pid in absent:
        near = difflib.get_close_matches(pid, sorted(approved), n=1, cutoff=0.7)
        meant = f" (did you mean {near[0]}?)" if near else ""
        problem = (
            f"plugin {pid!r} is not installed on this host{meant}, so this entry is left out here and the "
            "rest of the file applies; if the registry approved it, install its approved wheel and restart "
            "the host (`fulcrum branch check` checks the entry against the registry)"
        )
        reports.append(BranchProblem(file, toml_key("plugins", pid), problem))
    kept = {pid: entry for pid, entry in parsed.plugins.items() if pid in approved}
    return msgspec.structs.replace(parsed, plugins=kept), reports
