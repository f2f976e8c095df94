"""``/admin/v1/branches``: staff views of the branch configuration in force on this worker.

Both need the staff scope ``branch:read``. What they show comes from the effective configuration
(HQ file layered with the branch file), never from resolved settings: a secret appears only as its
reference (``$env:NAME``) or ``***``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import PathParameter

from fulcrum_core.branches.host import branch_store_of
from fulcrum_core.branches.layering import RedactedConfig
from fulcrum_core.branches.store import BranchConfigStore
from fulcrum_core.errors import NotFound
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "BranchList", "BranchSummary", "branch_effective", "branch_list"]

_OPT = {"scopes": ["branch:read"]}


class BranchSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One branch with a file: its code and the digest of its effective configuration."""

    code: str
    digest: str


class BranchList(msgspec.Struct, frozen=True, kw_only=True):
    """The branches configured on this worker, and every current problem of the branch files."""

    branches: list[BranchSummary]
    problems: list[str]
    generation: int


def _store(request: Request[Any, Any, Any]) -> BranchConfigStore:
    store = branch_store_of(runtime_of(request))
    if store is None:
        raise NotFound(
            "this host runs without branch configuration: every approved plugin is on for everyone",
            code="branch.no-configuration",
        )
    return store


@get("/admin/v1/branches", opt=_OPT, tags=["admin"], summary="Configured branches and their problems")
async def branch_list(request: Request[Any, Any, Any]) -> BranchList:
    """Every branch that has a file, with its digest; the problems the last reload found."""
    store = _store(request)
    return BranchList(
        branches=[BranchSummary(code=c, digest=store.effective(c).digest) for c in store.branches()],
        problems=[p.line for p in store.errors()],
        generation=store.generation,
    )


@get(
    "/admin/v1/branches/{code:str}/effective",
    opt=_OPT,
    tags=["admin"],
    summary="A branch's effective plugin configuration",
)
async def branch_effective(
    request: Request[Any, Any, Any],
    code: Annotated[str, PathParameter(description="The branch code, e.g. 0755 (the file's name).")],
) -> RedactedConfig:
    """Each plugin HQ or the branch names, every value with its source (hq, branch, default)."""
    store = _store(request)
    if code not in store.branches():
        known = ", ".join(store.branches()) or "none"
        raise NotFound(
            f"no branch configuration for {echoed(code)}; configured branches: {known}",
            code="branch.unknown", field="code",
        )
    return store.effective(code).redacted()


ROUTES: list[Any] = [branch_list, branch_effective]
