"""Identifiers end where they seem to: no pattern takes a value with one more trailing newline.

Python's ``re`` (msgspec's too) matches ``$`` before a final newline, so a pattern ending in ``$``
took ``"weather\\n"`` as a plugin id, ``"dev@partner.example\\n"`` as an e-mail and ``"42\\n"`` as a
cursor: a second spelling of one name, which reads the same in a log and differs in the database.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from fulcrum_core.branches.model import BRANCH_CODE_PATTERN, PLUGIN_ID_PATTERN
from fulcrum_core.settings import Settings
from fulcrum_core.transactions.checks import check_idempotency_key
from fulcrum_registry.schemas import RELEASE_CURSOR_PATTERN, Slug
from fulcrum_sdk.manifest import PluginId, PublisherId
from fulcrum_sdk.oauth_client import _URI_CHARS


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (PluginId, "weather"),
        (PublisherId, "city-coupons"),
        (Slug, "city-coupons"),
    ],
    ids=["plugin-id", "publisher-id", "registry-slug"],
)
def test_a_typed_identifier_with_a_trailing_newline_is_refused(kind: Any, value: str) -> None:
    assert msgspec.convert(value, kind) == value
    with pytest.raises(msgspec.ValidationError, match="matching regex"):
        msgspec.convert(value + "\n", kind)


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        (PLUGIN_ID_PATTERN, "branch-0755"),
        (BRANCH_CODE_PATTERN, "0755"),
        (_URI_CHARS, "https://partner.example/callback"),
    ],
    ids=["branch-plugin-id", "branch-code", "redirect-uri"],
)
def test_a_checked_name_with_a_trailing_newline_does_not_match(pattern: Any, value: str) -> None:
    assert pattern.match(value)
    assert not pattern.match(value + "\n")


def test_other_patterns_refuse_a_trailing_newline() -> None:
    """The manifest's e-mail, the registry's cursor, an idempotency key and the settings' log level."""
    import re

    from fulcrum_core.errors import CoreError
    from fulcrum_sdk.manifest import Owner

    assert re.match(RELEASE_CURSOR_PATTERN, "42")
    assert not re.match(RELEASE_CURSOR_PATTERN, "42\n")
    assert msgspec.convert({"name": "P", "email": "a@b.example"}, Owner)
    with pytest.raises(msgspec.ValidationError, match="email"):
        msgspec.convert({"name": "P", "email": "a@b.example\n"}, Owner)
    assert check_idempotency_key("demo-1") == "demo-1"
    with pytest.raises(CoreError):
        check_idempotency_key("demo-1\n")
    with pytest.raises(msgspec.ValidationError, match="log_level"):
        msgspec.convert({"log_level": "info\n"}, Settings)


_SOURCES = ("core/src", "sdk/src", "registry/src", "plugins", "template/hooks")

_BARE_END_KEPT = {
    # Parsing msgspec's and the settings loader's own one-line error messages, never a client's value.
    ("core/src/fulcrum_core/errors.py", "missing required field"),
    ("core/src/fulcrum_core/errors.py", "contains unknown field"),
    ("core/src/fulcrum_core/settings.py", "(?: - at `"),
    ("core/src/fulcrum_core/settings.py", "(?P<rest>"),
    ("core/src/fulcrum_core/settings.py", "(?P<problem>"),
    ("core/src/fulcrum_core/branches/loader.py", " - at `"),
    ("core/src/fulcrum_core/branches/loader.py", "missing required field"),
    ("sdk/src/fulcrum_sdk/_in_words.py", " - at `"),
    ("sdk/src/fulcrum_sdk/_in_words.py", "unknown) field"),
    ("sdk/src/fulcrum_sdk/_in_words.py", "Invalid enum value"),
    ("sdk/src/fulcrum_sdk/_in_words.py", "got `"),
    ("sdk/src/fulcrum_sdk/conformance.py", "(?P<message>"),
    ("sdk/src/fulcrum_sdk/manifest.py", " - at `"),
    ("registry/src/fulcrum_registry/schemas.py", "(?P<items>"),
    ("registry/src/fulcrum_registry/schemas.py", "of length"),
    ("registry/src/fulcrum_registry/schemas.py", " - at `"),
    ("registry/src/fulcrum_registry/schemas.py", "Invalid enum value"),
    # The host's own metric files, named by the host.
    ("core/src/fulcrum_core/observability/shared_metrics.py", r"\.db$"),
    # Text and requirement lists, where a newline is no second spelling of a name.
    ("registry/src/fulcrum_registry/schemas.py", r"[^\s\x00][^\x00]*$"),
    ("sdk/src/fulcrum_sdk/manifest.py", r"\s*$"),
    # A branch secret's reference: its target is read stripped, as the file or variable it names.
    ("core/src/fulcrum_core/branches/secrets.py", "(?P<target>"),
}
"""Literals ending in a bare ``$`` that are not a name's pattern, each with why it may."""


def _bare_ends() -> set[tuple[str, str]]:
    """(file, literal) for each string literal in the shipped code that ends in ``$`` without
    ``(?!\\n)`` before it: a pattern that would take one more trailing newline."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    found = set()
    for top in _SOURCES:
        for path in (root / top).rglob("*.py"):
            if ".venv" in path.parts or "{{" in str(path):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                text = node.value if isinstance(node, ast.Constant) else None
                if isinstance(text, str) and len(text) > 1 and text.endswith("$") and not text.endswith(
                    ("(?!\\n)$", "\\$")
                ):
                    found.add((path.relative_to(root).as_posix(), text))
    return found


def test_no_new_pattern_ends_in_a_bare_dollar() -> None:
    """A new literal ending in ``$`` must end in ``(?!\\n)$`` (or use ``\\Z`` or ``fullmatch``), or be
    listed in ``_BARE_END_KEPT`` with why a trailing newline is harmless there."""
    unexplained = sorted(
        (path, text) for path, text in _bare_ends()
        if not any(path == kept and part in text for kept, part in _BARE_END_KEPT)
    )
    assert unexplained == []


def test_the_kept_list_names_only_literals_that_exist() -> None:
    """Each entry of ``_BARE_END_KEPT`` still matches a literal, so the list does not outlive its code."""
    found = _bare_ends()
    stale = [(kept, part) for kept, part in _BARE_END_KEPT if not any(
        path == kept and part in text for path, text in found
    )]
    assert stale == []
