"""Display text the plugin template fills in as a placeholder, and the warnings a release carrying it gets.

The template's description prompts default to an instruction ("one sentence on what the plugin does"),
which is valid text: every check passes on it, so it is a warning for the author (``fulcrum plugin
check``) and the reviewer (``fulcrum registry review``), never a failure of a freshly baked project.
"""

from __future__ import annotations

from fulcrum_sdk.manifest import Manifest

__all__ = ["TEMPLATE_PLACEHOLDERS", "placeholder_warnings"]

TEMPLATE_PLACEHOLDERS: dict[str, str] = {
    "description.zh-CN": "一句话说明插件为客户做什么",
    "description.en": "One sentence on what the plugin does for the customer.",
}
"""Manifest key → the template's default for it (``template/cookiecutter.json``; a test keeps them equal)."""


def placeholder_warnings(manifest: Manifest | None) -> tuple[str, ...]:
    """One line for each display text of ``manifest`` still holding the template's placeholder."""
    if manifest is None:
        return ()
    written = {"description.zh-CN": manifest.description.zh_CN, "description.en": manifest.description.en}
    return tuple(
        f"{key} is still the template's placeholder {placeholder!r}: say in one sentence what "
        "the plugin does for the customer"
        for key, placeholder in TEMPLATE_PLACEHOLDERS.items()
        if (written.get(key) or "").strip() == placeholder
    )
