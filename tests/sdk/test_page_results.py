"""``check_page``: what the host and the harness accept from the ``page`` hook."""

from __future__ import annotations

from typing import Any

import pytest
from fulcrum_sdk import Action, LocalizedText, Page, PageLine, PageSection
from fulcrum_sdk._validate import ResultError, check_page

T = LocalizedText(zh_CN="页")


def test_none_means_no_page_and_a_valid_page_passes() -> None:
    """``None`` stays ``None``; a valid page comes back equal."""
    page = Page(title=T, sections=(PageSection(key="a", title=T, lines=(PageLine(label=T, action=Action(
        uri="fulcrum://x/y")),)),))
    assert check_page(None) is None
    assert check_page(page) == page


@pytest.mark.parametrize("value", [[], {"title": {"zh-CN": "页"}}, "page", PageSection(key="a", title=T)])
def test_anything_else_is_refused_naming_its_type(value: Any) -> None:
    """A list, a dict, a string or another Struct is a ResultError naming what came back."""
    with pytest.raises(ResultError, match=type(value).__name__):
        check_page(value)


@pytest.mark.parametrize(
    "page",
    [
        Page(title=T, sections=tuple(PageSection(key=f"s{i}", title=T) for i in range(21))),
        Page(title=T, sections=(PageSection(key="a", title=T, lines=(PageLine(label=T),) * 51),)),
        Page(title=T, sections=(PageSection(key="bad key", title=T),)),
        Page(title=LocalizedText(zh_CN="")),
        Page(title=T, sections=(PageSection(key="a", title=T, lines=(PageLine(label=T, action=Action(
            uri="javascript:alert(1)")),)),)),
    ],
    ids=["21-sections", "51-lines", "bad-key", "empty-title", "script-uri"],
)
def test_a_page_breaking_its_constraints_is_refused(page: Page) -> None:
    """Struct constructors do not check constraints; the host does, as for every result."""
    with pytest.raises(ResultError, match="page result is invalid"):
        check_page(page)


def test_two_sections_with_one_key_are_refused_naming_it() -> None:
    """A section's key is how the page's sections are told apart (a link's ``?part=`` opens on one): a
    page whose sections share a key is invalid, named, on the host and in the harness alike."""
    page = Page(title=T, sections=(PageSection(key="mix", title=T), PageSection(key="advice", title=T),
                                   PageSection(key="mix", title=T)))
    with pytest.raises(ResultError, match=r"page result is invalid: .*'mix'"):
        check_page(page)
    with pytest.raises(ResultError, match="'mix'"):  # a page seen before is checked again
        check_page(page)
