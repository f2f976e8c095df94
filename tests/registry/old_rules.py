"""Releases as an older registry filed them: their stored manifest rewritten straight in the database.

The manifest rules tighten over time (ids refuse ``--``, display text bidi overrides, redirect URIs all
but printable ASCII); a release filed before keeps the manifest it was filed with. These helpers write
such rows, so the tests can show every read of the registry copes with them.
"""

from __future__ import annotations

from typing import Any

from fulcrum_registry.models import Plugin, Release
from sqlalchemy import Engine
from sqlalchemy.orm import Session

OLD_ROWS: dict[str, tuple[dict[str, Any], str, str]] = {
    "an id with two hyphens in a row": ({"id": "city--coupons"}, "id", "no two hyphens in a row"),
    "a name with a right-to-left override": (
        {"name": {"zh-CN": "优惠\u202e券", "en": "Coupons"}},
        "name.zh-CN",
        "U+202E RIGHT-TO-LEFT OVERRIDE at index 2 is not allowed in display text",
    ),
    "a redirect URI with a space": (
        {"oauth": {"redirect_uris": ["https://coupons.example/call back"]}},
        "oauth.redirect_uris.0",
        "must be visible ASCII only",
    ),
}
"""What an older registry accepted: the manifest keys, then the key today's rules name and words of the
problem they give."""


def file_under_old_rules(engine: Engine, release_id: int, **changes: Any) -> None:
    """Rewrite release ``release_id``'s stored manifest with ``changes``; a changed ``id`` is claimed by
    the release's publisher and becomes the release's plugin, as it was filed then."""
    with Session(engine) as session, session.begin():
        row = session.get(Release, release_id)
        assert row is not None
        assert row.manifest is not None
        manifest = {**row.manifest, **changes}
        if manifest["id"] != row.plugin_id:
            if session.get(Plugin, manifest["id"]) is None:
                session.add(
                    Plugin(id=manifest["id"], publisher_id=row.publisher_id, name="旧插件",
                           created_at=row.submitted_at)
                )
                session.flush()
            row.plugin_id = manifest["id"]
        row.manifest = manifest
