"""Branch configuration: which approved plugins each branch's customers get, and how.

``hq.toml`` applies to every branch; ``<code>.toml`` adds to or narrows it for one branch. This
package parses and validates those files (``loader``, ``validate``), layers them into one immutable
effective configuration per branch (``layering``), decides gray-release membership (``rollout``),
keeps secrets as references (``secrets``) and hot-reloads the directory (``store``, ``watcher``).
"""

from fulcrum_core.branches.layering import (
    EffectiveConfig,
    EffectivePlugin,
    RedactedConfig,
    RedactedPlugin,
    Sourced,
)
from fulcrum_core.branches.loader import branch_code_of, parse_branch, parse_hq
from fulcrum_core.branches.model import HQ_FILE, ApprovedPlugin, BranchFile, HqFile
from fulcrum_core.branches.problems import BranchProblem
from fulcrum_core.branches.rollout import bucket, in_rollout
from fulcrum_core.branches.store import ApprovedProvider, BranchConfigStore
from fulcrum_core.branches.validate import SlotInventory, validate_branch, validate_hq

__all__ = [
    "HQ_FILE",
    "ApprovedPlugin",
    "ApprovedProvider",
    "BranchConfigStore",
    "BranchFile",
    "BranchProblem",
    "EffectiveConfig",
    "EffectivePlugin",
    "HqFile",
    "RedactedConfig",
    "RedactedPlugin",
    "SlotInventory",
    "Sourced",
    "branch_code_of",
    "bucket",
    "in_rollout",
    "parse_branch",
    "parse_hq",
    "validate_branch",
    "validate_hq",
]
