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
