"""The OpenAPI document's schemas say what each item is: no ``{}`` (anything) among an item's choices."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any


def _choices_with_anything(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key in ("oneOf", "anyOf"):
            if any(choice == {} for choice in node.get(key, ())):
                yield f"{path}/{key}"
        for key, value in node.items():
            yield from _choices_with_anything(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _choices_with_anything(value, f"{path}[{i}]")


def test_no_schema_lets_an_item_be_anything(make_app: Any) -> None:
    """A length-limited ``tuple[X, ...]`` (a page's sections, a section's lines) is an array of X with
    its limit; litestar listed the ellipsis as a second, empty item schema."""
    spec = make_app().client.get("/schema/openapi.json").json()
    assert list(_choices_with_anything(spec)) == []
    schemas = spec["components"]["schemas"]
    sections = schemas["Page"]["properties"]["sections"]
    assert sections["items"] == {"$ref": "#/components/schemas/PageSection"}
    assert (sections["type"], sections["maxItems"]) == ("array", 20)
    lines = schemas["PageSection"]["properties"]["lines"]
    assert lines["items"] == {"$ref": "#/components/schemas/PageLine"}
    assert (lines["type"], lines["maxItems"]) == ("array", 50)


def test_a_half_agreed_undo_is_described(make_app: Any) -> None:
    """A release's ``pending_resume`` and a publisher's ``pending_reinstatement`` are a PendingUndo or
    null: who agreed (by, at, reason), how many are needed and who suspended it."""
    schemas = make_app().client.get("/schema/openapi.json").json()["components"]["schemas"]
    either = {"oneOf": [{"$ref": "#/components/schemas/PendingUndo"}, {"type": "null"}]}
    assert schemas["ReleaseRead"]["properties"]["pending_resume"] == either
    assert schemas["PublisherRead"]["properties"]["pending_reinstatement"] == either
    pending = schemas["PendingUndo"]
    assert pending["properties"]["agreed"]["items"] == {"$ref": "#/components/schemas/UndoAgreement"}
    assert set(pending["required"]) == {"agreed", "needed", "suspended_by"}
    agreement = schemas["UndoAgreement"]
    assert agreement["properties"]["at"] == {"type": "string", "format": "date-time"}
    assert set(agreement["required"]) == {"by", "at"}


def test_links_are_described_as_printable_ascii(make_app: Any) -> None:
    """The published schemas carry the result types' own pattern for a link, printable ASCII: a tool
    checking a payload against it refuses what the host does. (Targeting is applied, never sent.)"""
    schemas = make_app().client.get("/schema/openapi.json").json()["components"]["schemas"]
    link = schemas["Action"]["properties"]["uri"]["pattern"]
    assert link == "^(fulcrum|https)://[!-~]+(?!\\n)$"
    assert re.search(link, "https://bank.example/%E5%85%BB")
    assert not re.search(link, "https://bank.example\u202e/")
    assert "Targeting" not in schemas
