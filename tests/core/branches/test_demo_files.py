"""The shipped demo files: valid, and they give each demo branch the merchant banner as the issue says."""

from __future__ import annotations

from pathlib import Path

import pytest
from fulcrum_core.branches import ApprovedPlugin, BranchConfigStore
from fulcrum_core.branches.check import check_files
from fulcrum_core.cli.branch import installed_plugins

DEMO_DIR = Path(__file__).resolve().parents[3] / "branches"
DEMO_FILES = sorted(DEMO_DIR.glob("*.toml"))
CUSTOMERS = [f"demo-{n:05d}" for n in range(10_000)]
ALL_SLOTS = ("home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1")


@pytest.fixture
def demo_approved() -> dict[str, ApprovedPlugin]:
    """The three first-party plugins as the demo registry approves them."""
    return {
        "wealth-checkup": ApprovedPlugin(
            kind="department", publisher="wealth-dept", versions=("0.2.0",), slots=ALL_SLOTS
        ),
        "pension": ApprovedPlugin(
            kind="department", publisher="pension-dept", versions=("0.2.0",), slots=ALL_SLOTS
        ),
        "merchant-promo": ApprovedPlugin(
            kind="partner", publisher="citylife", versions=("0.2.0",), slots=("home.banner/v1",)
        ),
    }


@pytest.fixture
def demo_store(demo_approved: dict[str, ApprovedPlugin], inventory: dict[str, int]) -> BranchConfigStore:
    """A store over the shipped ``branches/`` directory."""
    store = BranchConfigStore(DEMO_DIR, lambda: demo_approved, inventory, environ={})
    store.refresh()
    return store


def test_demo_directory_has_hq_and_three_branches() -> None:
    """The demo ships hq.toml and the files of 深圳 0755, 上海 021 and 成都 028."""
    assert [p.name for p in DEMO_FILES] == ["021.toml", "028.toml", "0755.toml", "hq.toml"]


def test_demo_files_are_valid(demo_approved: dict[str, ApprovedPlugin], inventory: dict[str, int]) -> None:
    """``fulcrum branch check branches/*.toml`` finds nothing wrong with the demo."""
    assert check_files(DEMO_FILES, approved=demo_approved, inventory=inventory) == []


def test_demo_store_loads_without_errors(demo_store: BranchConfigStore) -> None:
    """The store serves the demo with no problems (no secret references left unresolved)."""
    assert demo_store.errors() == []
    assert demo_store.branches() == ("021", "028", "0755")


def _share(store: BranchConfigStore, code: str, plugin_id: str) -> float:
    config = store.effective(code)
    return 100 * sum(plugin_id in config.plugins_for(c) for c in CUSTOMERS) / len(CUSTOMERS)


def test_merchant_promo_per_branch(demo_store: BranchConfigStore) -> None:
    """Merchant promotions reach all of 0755, about 30 % of 021 and none of 028."""
    assert _share(demo_store, "0755", "merchant-promo") == 100
    assert abs(_share(demo_store, "021", "merchant-promo") - 30) <= 2
    assert _share(demo_store, "028", "merchant-promo") == 0
    assert demo_store.effective("0755").plugins["merchant-promo"].pin == {"home.banner/v1": 2}


@pytest.mark.parametrize("code", ["0755", "021", "028", "0571"])
def test_wealth_checkup_and_pension_everywhere(demo_store: BranchConfigStore, code: str) -> None:
    """Every branch, including one without a file, gets the wealth check-up (mandatory) and pension."""
    config = demo_store.effective(code)
    assert {"wealth-checkup", "pension"} <= set(config.enabled_ids)
    assert config.plugins["wealth-checkup"].mandatory
    assert all(config.plugins[p].rollout == 100 for p in ("wealth-checkup", "pension"))


def test_demo_files_fit_the_installed_plugins(inventory: dict[str, int]) -> None:
    """When the three first-party plugins are installed, the demo files also pass against their manifests."""
    approved, _ = installed_plugins()
    missing = {"wealth-checkup", "pension", "merchant-promo"} - set(approved)
    if missing:
        pytest.skip(f"first-party plugins not installed in this environment: {', '.join(sorted(missing))}")
    assert check_files(DEMO_FILES, approved=approved, inventory=inventory) == []


def test_the_readme_example_passes_the_check_beside_the_shipped_hq(
    demo_approved: dict[str, ApprovedPlugin], inventory: dict[str, int], tmp_path: Path
) -> None:
    """The entry branches/README.md shows a branch team is valid with the shipped hq.toml, and its rollout
    alone (without ``enabled = true``) is refused, as the README says."""
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "hq.toml").write_bytes((DEMO_DIR / "hq.toml").read_bytes())
    branch_file = tmp_path / "021.toml"
    branch_file.write_text(example, encoding="utf-8")
    assert check_files([branch_file], approved=demo_approved, inventory=inventory) == []
    branch_file.write_text(example.replace("enabled = true\n", ""), encoding="utf-8")
    [problem] = check_files([branch_file], approved=demo_approved, inventory=inventory)
    assert "add `enabled = true`" in problem.problem
