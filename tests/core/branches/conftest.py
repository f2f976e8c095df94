"""Fixtures for branch-configuration tests: an approved set, the slot inventory, a file writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fulcrum_core.branches import ApprovedPlugin

BANNER, KINGKONG, POPUP, NOTICE = "home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1"


@pytest.fixture
def approved() -> dict[str, ApprovedPlugin]:
    """What the registry approved: the three demo plugins, a branch plugin of 021 and an unapproved one."""
    return {
        "wealth-checkup": ApprovedPlugin(
            kind="department",
            publisher="wealth-dept",
            versions=("1.0.0", "1.1.0"),
            slots=(BANNER, KINGKONG, POPUP),
        ),
        "pension": ApprovedPlugin(
            kind="department", publisher="pension-dept", versions=("0.3.0",), slots=(KINGKONG, NOTICE)
        ),
        "merchant-promo": ApprovedPlugin(
            kind="partner", publisher="citylife", versions=("0.1.0", "0.2.0"), slots=(BANNER,)
        ),
        "local-social": ApprovedPlugin(
            kind="branch", publisher="branch-021", versions=("1.0.0",), slots=(KINGKONG,)
        ),
        "draft-plugin": ApprovedPlugin(kind="partner", publisher="someone", versions=(), slots=(BANNER,)),
    }


@pytest.fixture
def inventory() -> dict[str, int]:
    """The platform's slots and capacities, as in the default settings."""
    return {BANNER: 5, KINGKONG: 10, POPUP: 1, NOTICE: 3}


@pytest.fixture
def branch_dir(tmp_path: Path) -> Path:
    """An empty branch directory."""
    directory = tmp_path / "branches"
    directory.mkdir()
    return directory


@pytest.fixture
def write(branch_dir: Path) -> Callable[[str, str], Path]:
    """Write ``text`` to ``branch_dir/name`` and return the path."""

    def _write(name: str, text: str) -> Path:
        path = branch_dir / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def hq_text() -> str:
    """A valid hq.toml: wealth-checkup mandatory, pension optional, merchant-promo off with a token ref."""
    return """
name = { "zh-CN" = "总行" }

[plugins.wealth-checkup]
mandatory = true

[plugins.pension]
enabled = true
pin = { "home.kingkong/v1" = 1 }

[plugins.merchant-promo]
enabled = false
settings = { api_token = "$env:FULCRUM_SECRET_PROMO_TOKEN", city_list = "all" }
"""
