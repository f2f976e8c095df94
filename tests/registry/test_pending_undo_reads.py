"""Reading half-agreed undos in a listing costs one query, however many releases the page holds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fulcrum_registry import RegistryService
from sqlalchemy import Engine, event

_HIGH = {"slot:home.notice": "show notices", "pension:read": "read the pension balance"}


def test_the_suspended_queue_reads_pending_resumes_in_one_query(
    registry: RegistryService,
    submit: Callable[..., Any],
    approve: Callable[..., Any],
    manifest: Callable[..., Any],
    engine: Engine,
) -> None:
    """A page of one and a page of four suspended, half-resumed releases take as many statements."""
    for patch in range(4):
        rid = int(submit(version=f"1.0.{patch}", manifest=manifest(scopes={"required": _HIGH})).id)
        approve(rid, "bob")
        approve(rid, "carol")
        registry.suspend(rid, actor="ops", reason="incident")
        registry.resume(rid, actor="dave", reason="patched")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    counts = []
    for limit in (1, 4):
        statements.clear()
        page = registry.list_releases({"state": "suspended", "limit": limit})
        assert [r.pending_resume.agreed[0].by for r in page.items if r.pending_resume] == ["dave"] * limit
        counts.append(len(statements))
    assert counts[0] == counts[1]
    assert sum("registry_audit" in s for s in statements) == 1
