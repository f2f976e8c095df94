"""The catalogue: search by name, publisher, kind, scope and state, with keyset pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fulcrum_registry import CatalogueQuery, InvalidInput, RegistryService

Submit = Callable[..., Any]
Approve = Callable[..., Any]
Manifest = Callable[..., dict[str, Any]]


def _plugin(submit: Submit, manifest: Manifest, pid: str, publisher: str, kind: str, **overrides: Any) -> Any:
    body = manifest(pid, publisher, kind=kind, **overrides)
    package = "fulcrum_" + pid.replace("-", "_")
    return submit(
        publisher=publisher,
        manifest=body,
        dist=package,
        package=package,
        entry_points=f"[fulcrum]\n{pid} = {package}.plugin\n",
    )


@pytest.fixture
def shelf(registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest) -> RegistryService:
    """Four plugins from three publishers in different states."""
    pension = _plugin(
        submit, manifest, "pension", "pension-dept", "department", name={"zh-CN": "养老规划", "en": "Pension"}
    )
    approve(pension.id)
    _plugin(
        submit,
        manifest,
        "sz-deals",
        "branch-0755",
        "branch",
        name={"zh-CN": "深圳优惠", "en": "Shenzhen deals"},
    )
    fund = _plugin(
        submit,
        manifest,
        "fund-news",
        "fund-partner",
        "partner",
        name={"zh-CN": "基金资讯", "en": "Fund News"},
        scopes={"required": {"slot:home.notice": "notices"}, "optional": {"location:city": "local"}},
    )
    approve(fund.id)
    registry.suspend(fund.id, actor="ops", reason="incident")
    wealth = _plugin(
        submit,
        manifest,
        "wealth",
        "pension-dept",
        "department",
        name={"zh-CN": "财富体检", "en": "Wealth check-up"},
    )
    registry.reject(wealth.id, reviewer="bob", reasons=["incomplete"])
    return registry


def ids(registry: RegistryService, **query: Any) -> list[str]:
    """Plugin ids matching a catalogue query."""
    return [p.id for p in registry.catalogue(query).items]


def test_lists_everything_by_id(shelf: RegistryService) -> None:
    """No filter: every plugin, ordered by id, with its latest release and approved versions."""
    page = shelf.catalogue()
    assert [p.id for p in page.items] == ["fund-news", "pension", "sz-deals", "wealth"]
    assert page.total == 4
    assert page.next_cursor is None
    pension = page.items[1]
    assert pension.approved_versions == ("1.0.0",)
    assert pension.latest is not None
    assert pension.latest.state == "approved"
    assert pension.kind == "department"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"text": "养老"}, ["pension"]),
        ({"text": "shenzhen"}, ["sz-deals"]),
        ({"text": "FUND"}, ["fund-news"]),
        ({"text": "%"}, []),
        ({"publisher": "pension-dept"}, ["pension", "wealth"]),
        ({"kind": "partner"}, ["fund-news"]),
        ({"scope": "location:city"}, ["fund-news"]),
        ({"scope": "slot:home.notice"}, ["fund-news", "pension", "sz-deals"]),
        ({"state": "in_review"}, ["sz-deals"]),
        ({"state": "suspended"}, ["fund-news"]),
        ({"state": "rejected", "publisher": "pension-dept"}, ["wealth"]),
        ({"kind": "branch", "state": "approved"}, []),
    ],
)
def test_filters(shelf: RegistryService, query: dict[str, Any], expected: list[str]) -> None:
    """Each filter narrows the catalogue; filters combine with AND; LIKE wildcards are literal."""
    assert ids(shelf, **query) == expected


def test_withheld_scopes_do_not_match(
    registry: RegistryService, submit: Submit, approve: Approve, manifest: Manifest
) -> None:
    """A plugin whose optional scope was withheld is not listed as holding it."""
    body = manifest(
        scopes={"required": {"slot:home.notice": "notices"}, "optional": {"location:city": "local"}}
    )
    approve(submit(manifest=body).id, grant=["slot:home.notice"])
    assert ids(registry, scope="location:city") == []


def test_pages_follow_the_cursor_without_repeats(shelf: RegistryService) -> None:
    """Walking pages of one gives every plugin once, and the total stays the full count."""
    seen, cursor = [], None
    while True:
        page = shelf.catalogue(CatalogueQuery(limit=1, cursor=cursor))
        assert page.total == 4
        seen += [p.id for p in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ["fund-news", "pension", "sz-deals", "wealth"]


def test_a_full_last_page_has_no_cursor(shelf: RegistryService) -> None:
    """When the last page is exactly full there is no next cursor."""
    assert shelf.catalogue({"limit": 2, "cursor": "pension"}).next_cursor is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"kind": "bank"}, "kind"),
        ({"state": "live"}, "state"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_queries_name_the_field(registry: RegistryService, query: dict[str, Any], field: str) -> None:
    """An invalid filter is refused with the field it concerns."""
    with pytest.raises(InvalidInput) as caught:
        registry.catalogue(query)
    assert caught.value.field == field


def test_release_listing_pages_the_review_queue(
    registry: RegistryService, submit: Submit, approve: Approve
) -> None:
    """Releases list oldest first, filter by state and page by cursor."""
    first = submit().id
    second = submit(version="1.1.0").id
    approve(first)
    queue = registry.list_releases({"state": "in_review"})
    assert [r.id for r in queue.items] == [second]
    page = registry.list_releases({"limit": 1})
    assert [r.id for r in page.items] == [first]
    assert page.total == 2
    assert page.next_cursor is not None
    assert [r.id for r in registry.list_releases({"cursor": page.next_cursor}).items] == [second]
    with pytest.raises(InvalidInput) as refused:
        registry.list_releases({"cursor": "abc"})
    # what a cursor is, in words, not msgspec's regular expression
    assert (refused.value.field, refused.value.problem) == (
        "cursor", "must be a release id of 1 to 12 digits: the next_cursor of the previous page"
    )
