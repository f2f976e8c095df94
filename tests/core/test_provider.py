"""The demo data provider: a valid, varied seed of synthetic customers, and ``fulcrum demo customers``."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from fulcrum_core.cli import main
from fulcrum_core.cli.demo_data import customers as customers_command
from fulcrum_core.data.provider import BRANCH_NAMES, DemoDataProvider, SeedError
from fulcrum_sdk.data import DataProvider
from fulcrum_sdk.models import risk_allows

PERSONAS = {"young_professional", "young_family", "affluent", "retiree", "business_owner"}
TOLERANCE = {"young_professional": "C3", "young_family": "C2", "affluent": "C4", "retiree": "C1",
             "business_owner": "C4"}
CITY_OF_BRANCH = {"0755": "440300", "021": "310000", "028": "510100"}
TODAY = date(2026, 11, 28)


@pytest.fixture(scope="module")
def provider() -> DemoDataProvider:
    """The packaged demo provider."""
    return DemoDataProvider.from_seed()


def test_is_a_data_provider(provider: DemoDataProvider) -> None:
    """The demo provider answers the SDK's ``DataProvider`` protocol, and None for strangers."""
    p: DataProvider = provider
    assert p.profile("c-0755-001") is not None
    assert p.profile("nobody") is None
    assert p.holdings("nobody") is None


def test_at_least_twelve_customers_in_three_branches(provider: DemoDataProvider) -> None:
    """Fifteen customers: every persona in each of 0755, 021 and 028, with ids like c-0755-001."""
    records = provider.customers()
    assert len(records) >= 12
    assert {r.profile.branch for r in records} == set(BRANCH_NAMES) == {"0755", "021", "028"}
    for branch in BRANCH_NAMES:
        assert {r.persona for r in records if r.profile.branch == branch} == PERSONAS
    for r in records:
        assert re.fullmatch(rf"c-{r.profile.branch}-\d{{3}}", r.id), r.id
    assert len({r.id for r in records}) == len(records)


def test_customers_are_listed_by_branch_then_id(provider: DemoDataProvider) -> None:
    """``customers()`` lists 0755, then 021, then 028, each by id."""
    branches = [r.profile.branch for r in provider.customers()]
    assert branches == sorted(branches, key=list(BRANCH_NAMES).index)


def test_personas_carry_their_risk_tolerance(provider: DemoDataProvider) -> None:
    """Each persona has the tolerance the domain brief gives it."""
    for r in provider.customers():
        assert r.risk is not None
        assert r.risk.tolerance == TOLERANCE[r.persona], r.id


def test_some_retirees_assessments_have_expired(provider: DemoDataProvider) -> None:
    """At least one retiree must redo the questionnaire, and most customers need not."""
    expired = [r for r in provider.customers() if r.risk and r.risk.is_expired(TODAY)]
    assert expired
    assert any(r.persona == "retiree" for r in expired)
    assert len(expired) < len(provider.customers()) // 2


def test_some_holdings_are_above_tolerance(provider: DemoDataProvider) -> None:
    """Suitability findings exist in the demo: some customers hold products above their tolerance."""
    mismatched = {
        r.id for r in provider.customers() for h in (r.holdings.items if r.holdings else ())
        if r.risk and not risk_allows(r.risk.tolerance, h.risk_level)
    }
    assert len(mismatched) >= 3


def test_every_customer_has_the_data_plugins_read(provider: DemoDataProvider) -> None:
    """Accounts, holdings, pension, city; a deposit, a wealth product and a fund appear across the seed."""
    kinds: Counter[str] = Counter()
    for r in provider.customers():
        assert r.accounts, r.id
        assert r.accounts.items, r.id
        assert r.holdings, r.id
        assert r.holdings.items, r.id
        assert r.pension, r.id
        assert r.pension.social_security, r.id
        assert r.city, r.id
        assert r.city.code == CITY_OF_BRANCH[r.profile.branch], r.id
        kinds.update(h.product_type for h in r.holdings.items)
    assert {"time_deposit", "wealth_product", "money_market_fund", "equity_fund", "bond_fund"} <= set(kinds)
    assert any(r.pension and r.pension.housing_fund for r in provider.customers())


def test_affluent_customers_are_concentrated(provider: DemoDataProvider) -> None:
    """Every affluent customer has one position of at least 40 % of their holdings."""
    for r in provider.customers():
        if r.persona == "affluent" and r.holdings:
            values = [h.market_value_fen for h in r.holdings.items]
            assert max(values) * 100 >= 40 * sum(values), r.id


def test_money_is_integer_fen_and_personal_pension_within_the_cap(provider: DemoDataProvider) -> None:
    """Every amount is an int; this year's personal-pension contributions respect 12,000 CNY."""
    for r in provider.customers():
        amounts = [a.balance_fen for a in r.accounts.items] if r.accounts else []
        amounts += [h.market_value_fen for h in r.holdings.items] if r.holdings else []
        assert all(type(x) is int for x in amounts), r.id
        assert all(h.market_value_fen > 0 for h in r.holdings.items) if r.holdings else True
        pp = r.pension.personal_pension if r.pension else None
        if pp:
            assert type(pp.contributions_this_year_fen) is int
            assert 0 <= pp.contributions_this_year_fen <= 1_200_000


def test_seed_errors_name_the_problem(tmp_path: Path) -> None:
    """A seed with a wrong value fails loudly naming the key; a missing file names the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[customers]]\nid = "x"\nname = "n"\npersona = "p"\nprofile = { segment = "s", branch = 755 }\n',
        encoding="utf-8",
    )
    with pytest.raises(SeedError, match="branch"):
        DemoDataProvider.from_seed(bad)
    with pytest.raises(SeedError, match=r"missing\.toml"):
        DemoDataProvider.from_seed(tmp_path / "missing.toml")


def test_seed_with_duplicate_ids_is_refused(tmp_path: Path) -> None:
    """The same customer id twice is an error, not a silent overwrite."""
    one = '[[customers]]\nid = "x"\nname = "n"\npersona = "p"\nprofile = { segment = "s", branch = "021" }\n'
    dup = tmp_path / "dup.toml"
    dup.write_text(one + one, encoding="utf-8")
    with pytest.raises(SeedError, match="twice"):
        DemoDataProvider.from_seed(dup)


def test_cli_lists_customers_as_a_table_and_as_json(provider: DemoDataProvider) -> None:
    """``fulcrum demo customers`` prints id, name, branch and persona; ``--json`` prints the same as JSON."""
    runner = CliRunner()
    table = runner.invoke(customers_command, [])
    assert table.exit_code == 0, table.output
    lines = table.output.strip().splitlines()
    assert len(lines) == len(provider.customers())
    for expected in ("c-0755-001", "深圳分行", "young_professional"):
        assert expected in lines[0]
    as_json = runner.invoke(customers_command, ["--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    assert [r["id"] for r in rows] == [c.id for c in provider.customers()]
    assert {"id", "name", "branch", "persona"} <= set(rows[0])


@pytest.mark.parametrize("option", [["--port", "8124"], ["--no-serve"], ["--host", "127.0.0.2"]])
def test_serving_options_before_customers_are_refused_not_ignored(option: list[str]) -> None:
    """``demo --port N customers`` used to list the customers and drop the option: now a usage error."""
    result = CliRunner().invoke(main, ["demo", *option, "customers"])
    assert result.exit_code == 2, result.output
    assert f"{option[0]}: an option of `" in result.output
    assert "demo` itself, which" in result.output
    assert "c-0755-001" not in result.output
