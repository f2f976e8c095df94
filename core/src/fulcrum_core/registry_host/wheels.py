"""Build an installed plugin's wheel from its source tree, the way its publisher would (``uv build``).

The demo submits real wheels so they pass the same checks as any submission. A plugin installed in
development (editable) mode records its source directory in ``direct_url.json`` (PEP 610); the wheel
is built from there with ``uv build --wheel`` and cached under a hash of the files that go into it,
so re-running the demo (or building several demo databases in one process) builds each plugin once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import msgspec

__all__ = ["WheelBuildError", "build_wheel", "source_tree"]

_SKIP_DIRS = frozenset({"__pycache__", ".venv", "dist", "build", "tests", ".pytest_cache", ".mypy_cache"})
_BUILT: dict[str, tuple[str, bytes]] = {}  # content hash → (filename, wheel bytes), per process
_LOCK = threading.Lock()


class WheelBuildError(RuntimeError):
    """A plugin's wheel could not be built; the message says which plugin and why."""


class _DirectUrl(msgspec.Struct):
    url: str


def source_tree(distribution: str) -> Path | None:
    """The local source directory an installed distribution was installed from, if it has one."""
    try:
        raw = importlib.metadata.distribution(distribution).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    if not raw:
        return None
    try:
        url = urlparse(msgspec.json.decode(raw, type=_DirectUrl).url)
    except msgspec.DecodeError:
        return None
    if url.scheme != "file":
        return None
    path = Path(unquote(url.path))
    return path if (path / "pyproject.toml").is_file() else None


def _content_hash(project: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if not path.is_file() or any(p in _SKIP_DIRS or p.startswith(".") for p in relative.parts):
            continue
        digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_wheel(project: Path, cache_dir: Path) -> tuple[str, bytes]:
    """``(filename, bytes)`` of ``project``'s wheel, built once per content into ``cache_dir``."""
    key = _content_hash(project)
    with _LOCK:
        if key in _BUILT:
            return _BUILT[key]
        out = cache_dir / key[:16]
        found = sorted(out.glob("*.whl")) if out.is_dir() else []
        if len(found) != 1:
            uv = shutil.which("uv")
            if uv is None:
                raise WheelBuildError(f"cannot build {project.name}: the uv command is not on PATH")
            shutil.rmtree(out, ignore_errors=True)
            done = subprocess.run(  # noqa: S603 - a fixed command on a path we located ourselves
                [uv, "build", str(project), "--wheel", "--out-dir", str(out), "--quiet"],
                capture_output=True,
                text=True,
                check=False,
            )
            found = sorted(out.glob("*.whl"))
            if done.returncode != 0 or len(found) != 1:
                raise WheelBuildError(f"uv build {project.name} failed: {done.stderr.strip()[-500:]}")
        built = (found[0].name, found[0].read_bytes())
        _BUILT[key] = built
        return built
