"""The branch package's public surface is exactly what the host and tools are meant to use."""

from __future__ import annotations

import fulcrum_core.branches as branches


def test_exported_members() -> None:
    """``__all__`` lists exactly the public names, and each one exists."""
    assert set(branches.__all__) == {
        "HQ_FILE", "ApprovedPlugin", "ApprovedProvider", "BranchConfigStore", "BranchFile", "BranchProblem",
        "EffectiveConfig", "EffectivePlugin", "HqFile", "RedactedConfig", "RedactedPlugin", "SlotInventory",
        "Sourced", "branch_code_of", "bucket", "in_rollout", "parse_branch", "parse_hq", "validate_branch",
        "validate_hq",
    }
    assert all(hasattr(branches, name) for name in branches.__all__)
