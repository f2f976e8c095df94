"""sdk/CHANGELOG.md names the running version; its upgrade example is what the host accepts and refuses."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import fulcrum_sdk
import msgspec
import pytest
from fulcrum_sdk import LocalizedText, TransactionType
from fulcrum_sdk._declared import type_problem
from fulcrum_sdk._validate import account_fields_problem
from fulcrum_sdk.manifest import Manifest, declaration_problems, parse_manifest, semantic_problems
from packaging.specifiers import SpecifierSet

SDK = Path(__file__).resolve().parents[2] / "sdk"
CHANGELOG = (SDK / "CHANGELOG.md").read_text(encoding="utf-8")

BASE = """
id = "city-coupons"
publisher = "city-coupons"
kind = "partner"
hooks = ["register_transaction_types", "execute_transaction"]
name = { "zh-CN" = "城市优惠", en = "City Coupons" }
description = { "zh-CN" = "订购服务", en = "Orders plans" }
owner = { name = "City Coupons", email = "dev@city-coupons.example" }
"""
SCOPES = """
[scopes.required]
"transactions:write" = "orders plans for the customer"
"accounts:read" = "lets the customer choose the account to pay from"
"""


class OrderParams(msgspec.Struct, frozen=True):
    """The example's parameters: a plan, its price and the account paying it."""

    plan: str
    amount_fen: int
    from_account: str


def _upgrade_blocks(language: str) -> tuple[str, str]:
    """The (before, after) code blocks in ``language`` of the section on upgrading a 0.1 plugin."""
    section = CHANGELOG.split("### Upgrading a 0.1 plugin", 1)[1].split("\n## ", 1)[0]
    before, after = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return before, after


def _manifest(block: str) -> Manifest:
    """The example's manifest: its keys and tables added to a partner's manifest owning one type."""
    top, bracket, tables = block.partition("\n[")
    return parse_manifest(BASE + top + SCOPES + bracket + tables, file="changelog", version="1.0.0")


def _tx_type(block: str) -> TransactionType:
    value = eval(block, {"TransactionType": TransactionType, "LocalizedText": LocalizedText,  # noqa: S307
                         "OrderParams": OrderParams})
    assert isinstance(value, TransactionType)
    return value


def test_the_running_version_has_an_entry() -> None:
    """Each version of the SDK says what it changed: the heading of the running one is there."""
    assert f"\n## [{fulcrum_sdk.__version__}] - " in CHANGELOG
    project = tomllib.loads((SDK / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == fulcrum_sdk.__version__


def test_the_upgraded_type_and_manifest_are_accepted() -> None:
    """The 'after' example runs on this SDK: its range includes it and the host registers the type."""
    code, toml = (_upgrade_blocks("python")[1], _upgrade_blocks("toml")[1])
    manifest = _manifest(toml)
    tx_type = _tx_type(code)
    assert fulcrum_sdk.__version__ in SpecifierSet(manifest.sdk)
    assert semantic_problems(manifest) == declaration_problems(manifest) == []
    assert type_problem(tx_type, manifest) is None
    assert account_fields_problem(tx_type) is None


def test_the_01_type_and_manifest_are_refused() -> None:
    """The 'before' example is what the host refuses: its range excludes this SDK, the type states no
    amount field (no longer defaulted), and the manifest's bare list of keys declares nothing."""
    code, toml = _upgrade_blocks("python")[0], _upgrade_blocks("toml")[0]
    manifest = _manifest(toml)
    assert fulcrum_sdk.__version__ not in SpecifierSet(manifest.sdk)
    problems = declaration_problems(manifest)
    assert [p.key for p in problems] == ["transaction_types.city_coupons.order"]
    with pytest.raises(TypeError, match="amount_field"):
        _tx_type(code)
