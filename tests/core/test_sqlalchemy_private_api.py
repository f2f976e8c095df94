"""SQLAlchemy's private API is used in one place, ``PreparedRead``, bounded by the requirement and checked
at import: a release that changes it fails at start, naming what is missing, not on a customer's page."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import sqlalchemy
from fulcrum_core.data import prepared
from packaging.requirements import Requirement
from packaging.version import Version
from sqlalchemy import Connection

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "core" / "src" / "fulcrum_core", ROOT / "registry" / "src" / "fulcrum_registry"]

# Each ``obj._name`` read in the host's and the registry's code (bar ``self``, ``cls`` and ``super()``),
# and why it may be.
KNOWN_PRIVATE = {
    "_cursor_execute": "SQLAlchemy's Connection: PreparedRead, checked at import",
    "_handle_dbapi_exception": "SQLAlchemy's Connection: PreparedRead, checked at import",
    "_mapping": "SQLAlchemy's Row._mapping, public (underscored to keep clear of column names)",
    "_replace": "namedtuple's, public",
    "_make": "fulcrum's own TaskWatch._make",
    "_current_frames": "sys._current_frames, documented",
    "_state": "fulcrum's own breaker, read by its resilience guard",
    "_active": "fulcrum's own bulkhead",
    "_max": "fulcrum's own bulkhead",
    "_shared": "fulcrum's own SqlPluginStorage, building its fresh twin",
    "_fresh": "fulcrum's own SqlPluginStorage",
    "_other": "fulcrum's own SqlPluginStorage",
    "_Hash": "hashlib._Hash in annotations only (the type of hashlib.sha256()), never read at run time",
    "_exit": "os._exit, documented",
    "_shutdown": "concurrent.futures.thread's, exit_threads: checked at import, skipped where missing",
    "_global_shutdown_lock": "concurrent.futures.thread's, exit_threads: checked at import",
    "_threads_queues": "concurrent.futures.thread's, exit_threads: checked at import",
}


def _own(owner: ast.expr) -> bool:
    """Whether ``owner`` is the object's own (``self``, ``cls``, ``super()``)."""
    if isinstance(owner, ast.Call):
        owner = owner.func
        return isinstance(owner, ast.Name) and owner.id == "super"
    return isinstance(owner, ast.Name) and owner.id in ("self", "cls")


def _private_reads() -> set[tuple[str, int, str]]:
    found: set[tuple[str, int, str]] = set()
    for source in SOURCES:
        for path in source.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
                    continue
                if node.attr.startswith("__"):
                    continue
                if _own(node.value):
                    continue
                found.add((str(path.relative_to(ROOT)), node.lineno, node.attr))
    return found


def test_no_other_private_attribute_is_read() -> None:
    """A private attribute of another library's object (as the pre-ping's ``dialect._do_ping_w_event``
    was) breaks without warning on its upgrade: use a public API, or add it here with a check at import."""
    unknown = sorted(read for read in _private_reads() if read[2] not in KNOWN_PRIVATE)
    assert unknown == []


def test_the_requirement_stops_below_the_next_minor_release() -> None:
    """fulcrum-core admits the SQLAlchemy it is tested with and no later minor release."""
    project = tomllib.loads((ROOT / "core" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (wanted,) = [r for r in map(Requirement, project["dependencies"]) if r.name == "sqlalchemy"]
    tested = Version(sqlalchemy.__version__)
    assert wanted.specifier.contains(tested)
    assert not wanted.specifier.contains(f"{tested.major}.{tested.minor + 1}.0", prereleases=True)


def test_the_installed_sqlalchemy_has_the_private_methods() -> None:
    """The check passes on the SQLAlchemy installed (else the module would not have imported)."""
    assert prepared._private_api_problem(Connection) is None


def test_a_changed_private_method_is_named() -> None:
    """A method gone, or with other parameters, is named with the version and the requirement."""

    class Gone(Connection):
        _cursor_execute = None  # type: ignore[assignment]

    class Changed(Connection):
        def _handle_dbapi_exception(  # type: ignore[override]
            self, error: BaseException, statement: str
        ) -> None:
            raise error

    requires = map(Requirement, importlib.metadata.requires("fulcrum-core") or ())
    wanted = f"install {next(r for r in requires if r.name == 'sqlalchemy')}"
    gone = prepared._private_api_problem(Gone)
    assert gone == (
        f"SQLAlchemy {sqlalchemy.__version__} has no Connection._cursor_execute, which "
        f"fulcrum_core.data.prepared calls for the request path's reads: {wanted}"
    )
    changed = prepared._private_api_problem(Changed)
    assert changed is not None
    said = "has Connection._handle_dbapi_exception(error, statement), not (e, statement, parameters, cursor"
    assert said in changed


def test_the_host_does_not_start_on_a_sqlalchemy_without_them() -> None:
    """Importing the app on a SQLAlchemy whose Connection lacks one of them fails at once, saying so."""
    script = (
        "import sqlalchemy.engine.base as base\n"
        "del base.Connection._handle_dbapi_exception\n"
        "import fulcrum_core.app\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: SQLAlchemy ")
    assert "has no Connection._handle_dbapi_exception" in last
