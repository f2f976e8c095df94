"""The template's placeholder description is flagged (a warning), never a failed check."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from fulcrum_registry.placeholders import TEMPLATE_PLACEHOLDERS, placeholder_warnings
from fulcrum_sdk.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]


def _manifest(zh: str, en: str | None) -> Manifest:
    return msgspec.convert(
        {
            "id": "demo",
            "name": {"zh-CN": "演示"},
            "description": {"zh-CN": zh, "en": en},
            "publisher": "test-bank",
            "kind": "department",
            "sdk": ">=0.1,<1",
            "hooks": ["search"],
            "scopes": {"required": {"search:contribute": "to be found"}},
            "owner": {"name": "T", "email": "t@example.com"},
            "version": "1.0.0",
        },
        Manifest,
    )


def test_the_placeholders_are_the_templates_defaults() -> None:
    """The registry knows exactly the text ``template/cookiecutter.json`` bakes in by default."""
    defaults = json.loads((ROOT / "template" / "cookiecutter.json").read_text(encoding="utf-8"))
    assert {
        "description.zh-CN": defaults["description"],
        "description.en": defaults["description_en"],
    } == TEMPLATE_PLACEHOLDERS


def test_a_placeholder_description_is_named_per_language() -> None:
    """Each language still holding the placeholder gets a line naming its key; written text gets none."""
    zh, en = TEMPLATE_PLACEHOLDERS["description.zh-CN"], TEMPLATE_PLACEHOLDERS["description.en"]
    both = placeholder_warnings(_manifest(zh, en))
    assert [line.split(" ", 1)[0] for line in both] == ["description.zh-CN", "description.en"]
    assert all("template's placeholder" in line for line in both)
    assert placeholder_warnings(_manifest("为客户体检财富", f" {en} ")) == (both[1],)
    assert placeholder_warnings(_manifest("为客户体检财富", None)) == ()
    assert placeholder_warnings(_manifest("为客户体检财富", "Checks your wealth")) == ()
    assert placeholder_warnings(None) == ()
