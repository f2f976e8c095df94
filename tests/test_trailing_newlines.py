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
