"""Is the installed plugin the release reviewers approved? Its manifest, then its files, byte for byte.

``manifest_mismatch`` names the first manifest field where the installed ``fulcrum-plugin.toml``
differs from the registry's snapshot. ``files_mismatch`` hashes the installed distribution's files
(their bytes, never the installed RECORD's say) and names the first one that differs from the approved
wheel's contents (``RegistryService.release_contents``). What installers legitimately add is accepted:
RECORD, INSTALLER, REQUESTED and ``direct_url.json`` (pip, uv), ``uv_cache.json`` / ``uv_build.json``
(uv), bytecode compiled from a verified source (checked by compiling it), and, for an editable install,
its path-only ``.pth`` file (the approved files are then looked up in the directories it names).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import marshal
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import msgspec
from fulcrum_sdk.manifest import Manifest

__all__ = ["files_mismatch", "manifest_mismatch"]

_INSTALLER_FILES = frozenset(
    {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json", "uv_build.json"}
)
_RELOCATED = ("purelib", "platlib")  # wheel ``.data`` schemes installed at the distribution's root


def _first_difference(installed: Any, approved: Any, key: str) -> str | None:
    if isinstance(installed, dict) and isinstance(approved, dict):
        for name in sorted(set(installed) | set(approved), key=str):
            found = _first_difference(
                installed.get(name), approved.get(name), f"{key}.{name}" if key else name
            )
            if found is not None:
                return found
        return None
    return None if installed == approved else key


def manifest_mismatch(installed: Manifest, approved: Manifest) -> str | None:
    """The dotted key of the first field where ``installed`` differs from the approved snapshot."""
    mine = msgspec.to_builtins(msgspec.structs.replace(installed, version=approved.version))
    return _first_difference(mine, msgspec.to_builtins(approved), "")


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 16):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _expected(approved: Mapping[str, str]) -> dict[str, str]:
    """The approved wheel's members by their path once installed (``.data/purelib/x`` → ``x``)."""
    expected: dict[str, str] = {}
    for name, digest in approved.items():
        parts = PurePosixPath(name).parts
        if len(parts) > 2 and parts[0].endswith(".data"):
            if parts[1] in _RELOCATED:
                expected[PurePosixPath(*parts[2:]).as_posix()] = digest
            continue  # scripts, headers, data: installed outside the import path, never run by the host
        expected[name] = digest
    return expected


def _editable_roots(dist: importlib.metadata.Distribution) -> list[Path] | None:
    """The directories an editable install's ``.pth`` files put on sys.path; None if not editable or if
    a ``.pth`` does more than name directories (``import`` lines run code at interpreter start)."""
    raw = dist.read_text("direct_url.json")
    try:
        editable = bool(raw) and bool(msgspec.json.decode(raw or "{}").get("dir_info", {}).get("editable"))
    except (msgspec.DecodeError, AttributeError):
        return None
    if not editable:
        return None
    roots: list[Path] = []
    for file in dist.files or ():
        if file.suffix != ".pth" or len(file.parts) != 1:
            continue
        pth = Path(str(dist.locate_file(file)))
        for line in pth.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(("import ", "import\t")):
                return None
            roots.append(pth.parent / line)  # site.py reads a relative line from the .pth's directory
    return roots


def _bytecode_source(path: PurePosixPath) -> tuple[PurePosixPath, int] | None:
    """For ``pkg/__pycache__/mod.<this interpreter's tag>[.opt-N].pyc``: (``pkg/mod.py``, N)."""
    if path.suffix != ".pyc" or len(path.parts) < 2 or path.parts[-2] != "__pycache__":
        return None
    stem, _, rest = path.name.partition(".")
    tag = sys.implementation.cache_tag
    if rest == f"{tag}.pyc":
        return path.parent.parent / f"{stem}.py", 0
    for level in (1, 2):
        if rest == f"{tag}.opt-{level}.pyc":
            return path.parent.parent / f"{stem}.py", level
    return None


def _bytecode_matches(pyc: Path, source: Path, optimize: int) -> bool:
    """True when the cached code object equals the one compiled from ``source`` (a verified file)."""
    try:
        data = pyc.read_bytes()
        code = marshal.loads(data[16:])  # noqa: S302 - the import system would load these same bytes
        compiled = compile(source.read_bytes(), str(source), "exec", dont_inherit=True, optimize=optimize)
    except (OSError, ValueError, EOFError, TypeError, SyntaxError):
        return False
    return data[:4] == importlib.util.MAGIC_NUMBER and bool(code == compiled)


def _installed(dist: importlib.metadata.Distribution) -> Iterator[tuple[str, Path]]:
    for file in dist.files or ():
        if file.parts and file.parts[0] == "..":
            continue  # installed outside site-packages (scripts, data): never imported by the host
        yield PurePosixPath(*file.parts).as_posix(), Path(str(dist.locate_file(file)))


def files_mismatch(dist: importlib.metadata.Distribution, approved: Mapping[str, str]) -> str | None:
    """Why ``dist``'s installed files are not the approved wheel's, naming the first file (None: they are)."""
    expected = _expected(approved)
    installed = dict(_installed(dist))
    roots = _editable_roots(dist)
    extra: list[str] = []
    for name in sorted(installed):
        path = PurePosixPath(name)
        if name in expected:
            continue
        if path.parent.name.endswith(".dist-info") and len(path.parts) == 2 and path.name in _INSTALLER_FILES:
            continue
        if roots is not None and path.suffix == ".pth" and len(path.parts) == 1:
            continue
        extra.append(name)
    for name, digest in sorted(expected.items()):
        found = installed.get(name)
        if found is None and roots is not None and ".dist-info/" not in name:
            found = next((r / name for r in roots if (r / name).is_file()), None)
        if found is None:
            return f"{name} of the approved wheel is not installed"
        actual = _sha256(found)
        if actual is None:
            return f"{name} of the approved wheel is not installed"
        if actual != digest:
            return f"{name} differs from the approved wheel"
    for name in extra:
        source = _bytecode_source(PurePosixPath(name))
        if source is not None and source[0].as_posix() in expected:
            if _bytecode_matches(installed[name], installed[source[0].as_posix()], source[1]):
                continue
            return f"{name} is not the bytecode of the approved {source[0].as_posix()}"
        if source is None and PurePosixPath(name).suffix == ".pyc" and "__pycache__" in name:
            continue  # another interpreter's bytecode: this one never loads it
        return f"{name} is installed but not in the approved wheel"
    if roots is not None:
        return _editable_extra(roots, expected)
    return None


def _editable_extra(roots: list[Path], expected: Mapping[str, str]) -> str | None:
    """In an editable install's source directories, a file under an approved package that is not in the
    approved wheel (bytecode caches aside) would be importable too."""
    packages = {PurePosixPath(n).parts[0] for n in expected if "/" in n and ".dist-info/" not in n}
    for root in roots:
        for package in sorted(packages):
            base = root / package
            if not base.is_dir():
                continue
            for file in sorted(base.rglob("*")):
                relative = file.relative_to(root).as_posix()
                if file.is_file() and "__pycache__" not in file.parts and relative not in expected:
                    return f"{relative} is in the editable source but not in the approved wheel"
    return None
