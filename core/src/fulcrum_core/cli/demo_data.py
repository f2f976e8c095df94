"""``fulcrum demo customers``: the seeded demo customers, to pick one for a token."""

from __future__ import annotations

import click
import msgspec

from fulcrum_core.data.provider import BRANCH_NAMES, DemoDataProvider

__all__ = ["CustomerSummary", "customers"]

PERSONA_NAMES: dict[str, str] = {
    "young_professional": "年轻白领",
    "young_family": "年轻家庭",
    "affluent": "富裕专业人士",
    "retiree": "退休人士",
    "business_owner": "小微企业主",
}


class CustomerSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the listing."""

    id: str
    name: str
    branch: str
    branch_name: str
    persona: str
    risk_tolerance: str | None
    city: str | None


def _summaries() -> list[CustomerSummary]:
    return [
        CustomerSummary(
            id=c.id, name=c.name, branch=c.profile.branch, branch_name=BRANCH_NAMES.get(c.profile.branch, ""),
            persona=c.persona, risk_tolerance=c.risk.tolerance if c.risk else None,
            city=c.city.name.zh_CN if c.city else None,
        )
        for c in DemoDataProvider.from_seed().customers()
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def customers(as_json: bool) -> None:
    """List the demo customers: id, name, branch and persona."""
    rows = _summaries()
    if as_json:
        click.echo(msgspec.json.encode(rows).decode())
        return
    for r in rows:
        persona = f"{r.persona} ({PERSONA_NAMES.get(r.persona, r.persona)})"
        tolerance = r.risk_tolerance or "-"
        click.echo(f"{r.id:<12} {r.name:<4}\t{r.branch:<5} {r.branch_name}\t{persona:<32} {tolerance}")
