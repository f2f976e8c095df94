"""The shapes of branch configuration: the HQ file, a branch file, and what the registry approved.

A branch team keeps ``branches/<code>.toml``; HQ keeps ``branches/hq.toml`` which applies to every
branch. Every per-plugin field is optional (``UNSET``) so layering can tell "the branch said so" from
"the branch said nothing" and record where each effective setting came from. Range and cross-file
rules (rollout 0–100, known slots, approved versions, secrets) live in ``validate.py`` so that one
pass reports every problem rather than the first.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec
from fulcrum_sdk.manifest import ID_PATTERN
from fulcrum_sdk.models import LocalizedText
from msgspec import UNSET, UnsetType

__all__ = [
    "BRANCH_CODE_PATTERN",
    "HQ_FILE",
    "PLUGIN_ID_PATTERN",
    "ApprovedPlugin",
    "BranchFile",
    "BranchPluginEntry",
    "HqFile",
    "HqPluginEntry",
    "SettingValue",
    "branch_publisher",
]

HQ_FILE = "hq.toml"
"""The HQ file's name; any other ``<code>.toml`` in the directory is a branch file."""

BRANCH_CODE_PATTERN = re.compile(r"^[0-9a-z][0-9a-z-]{0,30}\Z")
PLUGIN_ID_PATTERN = re.compile(ID_PATTERN)
"""A plugin id as its manifest must write it (the SDK's pattern: no ``--``)."""

SettingValue = str | int | bool
"""A plugin setting as written; the plugin receives it as text. Floats are refused (money is fen)."""

_CustomerId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class BranchPluginEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.<id>]`` in a branch file: what the branch says about one plugin."""

    enabled: bool | UnsetType = UNSET
    # PEP 440 range, e.g. ">=1.2,<2"; must match at least one approved release.
    version: str | UnsetType = UNSET
    # Share of the branch's customers (0–100) who get the plugin, by a stable hash.
    rollout: int | UnsetType = UNSET
    # Pilot customers who get the plugin whatever the rollout percentage.
    allow: tuple[_CustomerId, ...] | UnsetType = UNSET
    # Slot id → 1-based position the plugin's first offer is pinned to, e.g. {"home.banner/v1" = 2}.
    pin: dict[str, int] = {}
    # Plugin settings; secret-looking keys take references only: "$env:NAME" or "$file:PATH".
    settings: dict[str, SettingValue] = {}


class HqPluginEntry(BranchPluginEntry, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.<id>]`` in ``hq.toml``: as a branch entry, plus whether branches may switch it off."""

    mandatory: bool = False


class BranchFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A whole branch file; its code is the file name's stem (``0755.toml`` → ``0755``)."""

    name: LocalizedText | None = None
    plugins: dict[str, BranchPluginEntry] = {}


class HqFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole HQ file: plugins enabled (or configured by default) for every branch."""

    name: LocalizedText | None = None
    plugins: dict[str, HqPluginEntry] = {}


class ApprovedPlugin(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the registry says about one known plugin; ``versions`` are its approved, live releases.

    A plugin the registry knows but has no approved release for is present with ``versions=()``
    ("not approved"); a plugin absent from the mapping is unknown. ``why_not`` is the registry's
    reason when it is known (the installed version suspended while another stays approved, say).
    """

    kind: Literal["department", "branch", "partner"]
    publisher: str
    versions: tuple[str, ...] = ()
    slots: tuple[str, ...] = ()
    why_not: str | None = None


def branch_publisher(code: str) -> str:
    """The publisher id a branch publishes under: ``0755`` → ``branch-0755``."""
    return f"branch-{code}"
