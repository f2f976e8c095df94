"""Read what the checks need out of a wheel file, never importing or unpacking any of its code.

``inspect_wheel`` opens the archive once and records facts (name, versions, RECORD problems, entry
points, the manifest or why it could not be read); the checks in ``checks.py`` are pure functions of
those facts. Filenames come from ``packaging.utils``, entry points from ``importlib.metadata`` reading
the dist-info straight out of the zip, the manifest from ``fulcrum_sdk.manifest``.
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import importlib.metadata
import io
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import msgspec
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.manifest import MANIFEST_FILE, Manifest, manifest_from_wheel, parse_manifest
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

__all__ = ["MAX_UNCOMPRESSED", "EntryPoint", "WheelFacts", "inspect_wheel"]

MAX_UNCOMPRESSED = 256 * 1024 * 1024
"""A wheel that unpacks to more than this is refused before anything is read (zip bombs)."""

_SIGNATURES = ("RECORD.jws", "RECORD.p7s")
_CORRUPT = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    OSError,
    UnicodeDecodeError,
)
"""What reading a damaged member raises: a bad CRC or stream, an unsupported method, encryption."""
_ALLOWED_HASHES = frozenset({"sha256", "sha384", "sha512", "blake2b", "sha3_256", "sha3_384", "sha3_512"})


class EntryPoint(msgspec.Struct, frozen=True):
    """One line of the wheel's ``entry_points.txt``."""

    group: str
    name: str
    value: str


class WheelFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the checks look at, gathered in one pass over the archive."""

    path: Path
    filename: str
    name: str | None = None  # canonical distribution name from the filename
    version: str | None = None  # from the filename
    readable: bool = False  # the file opened as a zip archive
    problems: tuple[str, ...] = ()  # why it is not a well-formed wheel, one line each
    dist_info: str | None = None
    metadata_name: str | None = None
    metadata_version: str | None = None
    entry_points: tuple[EntryPoint, ...] = ()
    manifest: Manifest | None = None
    manifest_key: str | None = None  # where the manifest went wrong, when it did
    manifest_problem: str | None = None
    manifest_declared_version: str | None = None  # ``version`` written in the manifest itself, if any
    manifest_package: str | None = None  # the top-level package the manifest was found in


def _unsafe(name: str) -> bool:
    path = PurePosixPath(name)
    return name.startswith(("/", "\\")) or ".." in path.parts or ":" in (path.parts[0] if path.parts else "")


def _digest(zf: zipfile.ZipFile, info: zipfile.ZipInfo, algorithm: str) -> tuple[str, int]:
    """The urlsafe-base64 digest (no padding) and the true size of one member, read in chunks."""
    h = hashlib.new(algorithm)
    size = 0
    with zf.open(info) as member:
        while chunk := member.read(1 << 16):
            size += len(chunk)
            if size > info.file_size:
                break  # the header lied; the size comparison below reports it
            h.update(chunk)
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii"), size


def _record_problems(zf: zipfile.ZipFile, dist_info: str) -> list[str]:
    """Every way RECORD and the archive disagree (PEP 376 / 427 rules)."""
    record_name = f"{dist_info}/RECORD"
    try:
        rows = list(csv.reader(io.StringIO(zf.read(record_name).decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        return [f"RECORD cannot be parsed: {exc}"]
    problems: list[str] = []
    members = {i.filename: i for i in zf.infolist() if not i.is_dir()}
    listed: set[str] = set()
    for number, row in enumerate(rows, start=1):
        if not row:
            continue
        if len(row) != 3:
            problems.append(f"RECORD line {number}: expected path,hash,size")
            continue
        name, hash_field, size_field = row
        listed.add(name)
        if name == record_name or name in (f"{dist_info}/{s}" for s in _SIGNATURES):
            continue
        info = members.get(name)
        if info is None:
            problems.append(f"RECORD lists {name} but the wheel does not contain it")
            continue
        algorithm, _, expected = hash_field.partition("=")
        if algorithm not in _ALLOWED_HASHES or not expected:
            problems.append(f"{name}: RECORD hash must be sha256 or stronger, got {hash_field or 'none'!r}")
            continue
        digest, size = _digest(zf, info, algorithm)
        if digest != expected:
            problems.append(f"{name}: content does not match its RECORD hash")
        if size_field != str(size):
            problems.append(f"{name}: size {size} does not match RECORD size {size_field or 'none'}")
    unlisted = sorted(set(members) - listed - {f"{dist_info}/{s}" for s in _SIGNATURES})
    problems.extend(f"{name} is in the wheel but not in RECORD" for name in unlisted)
    return problems


class _Structure(msgspec.Struct, frozen=True):
    dist_info: str | None
    problems: list[str]
    safe: bool  # no unsafe paths, duplicates or excessive size: members may be read and hashed


def _structure(zf: zipfile.ZipFile) -> _Structure:
    """The one ``*.dist-info`` directory and structural problems (paths, sizes, required files)."""
    infos = zf.infolist()
    names = [i.filename for i in infos]
    problems = [f"unsafe path in archive: {n!r}" for n in names if _unsafe(n)]
    if len(set(names)) != len(names):
        problems.append("the archive holds the same path more than once")
    if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
        problems.append(f"unpacks to more than {MAX_UNCOMPRESSED} bytes")
        return _Structure(None, problems, safe=False)
    safe = not problems
    tops = {n.split("/", 1)[0] for n in names if "/" in n}
    dist_infos = sorted(t for t in tops if t.endswith(".dist-info"))
    if len(dist_infos) != 1:
        problems.append(f"expected exactly one *.dist-info directory, found {len(dist_infos)}")
        return _Structure(None, problems, safe)
    dist_info = dist_infos[0]
    missing = [f for f in ("WHEEL", "METADATA", "RECORD") if f"{dist_info}/{f}" not in names]
    problems.extend(f"{dist_info}/{f} is missing" for f in missing)
    if f"{dist_info}/WHEEL" in names:
        wheel = email.parser.BytesParser().parsebytes(zf.read(f"{dist_info}/WHEEL"))
        if not str(wheel.get("Wheel-Version", "")).startswith("1."):
            problems.append("WHEEL must declare Wheel-Version 1.x")
    return _Structure(dist_info, problems, safe)


class _ManifestFacts(msgspec.Struct, frozen=True):
    manifest: Manifest | None = None
    key: str | None = None
    problem: str | None = None
    declared_version: str | None = None


def _nul_key(value: object, key: str = "") -> str | None:
    """The key of the first text holding a NUL character ("" for ``value`` itself), or None."""
    if isinstance(value, str):
        return key if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        if isinstance(name, str) and "\x00" in name:
            return key  # a table's own key: name the table
        found = _nul_key(item, f"{key}.{name}" if key else str(name))
        if found is not None:
            return found
    return None


def _without_nul(facts: _ManifestFacts) -> _ManifestFacts:
    """Refuse a manifest holding a NUL character: no text column can store it (PostgreSQL refuses)."""
    key = _nul_key(msgspec.to_builtins(facts.manifest)) if facts.manifest is not None else None
    if key is None:
        return facts
    return _ManifestFacts(None, key or None, "must not contain NUL characters")


def _manifest_facts(path: Path) -> _ManifestFacts:
    """The manifest, or where and why it failed; for a version clash, also the version it declares."""
    try:
        return _without_nul(_ManifestFacts(manifest_from_wheel(path)))
    except ManifestError as exc:
        failed = _ManifestFacts(None, exc.key, exc.problem)
    if failed.key != "version":
        return failed
    # Otherwise readable: keep the manifest (without the wheel's version) so the other checks still
    # run and the clash is reported by manifest.version_matches_wheel alone.
    try:
        with zipfile.ZipFile(path) as zf:
            inner = next(n for n in zf.namelist() if n.endswith("/" + MANIFEST_FILE) and n.count("/") == 1)
            manifest = parse_manifest(zf.read(inner), file=f"{path.name}!{inner}")
    except (ManifestError, StopIteration, zipfile.BadZipFile, OSError):
        return failed
    return _without_nul(_ManifestFacts(manifest, declared_version=manifest.version))


def _entry_points(dist: importlib.metadata.Distribution) -> tuple[tuple[EntryPoint, ...], str | None]:
    try:
        return tuple(EntryPoint(e.group, e.name, e.value) for e in dist.entry_points), None
    except ValueError as exc:
        return (), f"entry_points.txt cannot be parsed: {exc}"


def inspect_wheel(path: str | Path, *, filename: str | None = None) -> WheelFacts:
    """Gather the facts about the wheel at ``path``; ``filename`` is its name as uploaded."""
    path = Path(path)
    filename = filename or path.name
    problems: list[str] = []
    name = version = None
    try:
        parsed_name, parsed_version, _build, _tags = parse_wheel_filename(filename)
        name, version = str(parsed_name), str(parsed_version)
    except InvalidWheelFilename as exc:
        problems.append(f"not a wheel filename: {exc}")
    try:
        zf = zipfile.ZipFile(path)
    except _CORRUPT as exc:
        problems.append(f"not a zip archive: {exc}")
        return _unreadable(path, filename, name, version, problems)
    try:
        return _inspect_archive(zf, path, filename, name, version, problems)
    except _CORRUPT as exc:
        problems.append(f"the archive is damaged: {exc}")
        return _unreadable(path, filename, name, version, problems)


def _unreadable(
    path: Path, filename: str, name: str | None, version: str | None, problems: list[str]
) -> WheelFacts:
    """The facts of an artifact whose archive cannot be read (every check but the first is skipped)."""
    return WheelFacts(
        path=path,
        filename=filename,
        name=name,
        version=version,
        problems=tuple(problems),
        manifest_problem="the artifact is not a readable zip archive",
    )


def _inspect_archive(
    zf: zipfile.ZipFile, path: Path, filename: str, name: str | None, version: str | None, problems: list[str]
) -> WheelFacts:
    """``inspect_wheel`` once the archive opened; reading a damaged member raises one of ``_CORRUPT``."""
    metadata_name = metadata_version = None
    entry_points: tuple[EntryPoint, ...] = ()
    with zf:
        # Every manifest the host could read once installed (it takes the first RECORD lists).
        manifests = [
            n for n in zf.namelist() if PurePosixPath(n).name == MANIFEST_FILE and ".dist-info" not in n
        ]
        structure = _structure(zf)
        dist_info = structure.dist_info
        problems += structure.problems
        if dist_info and structure.safe and f"{dist_info}/RECORD" in zf.namelist():
            problems += _record_problems(zf, dist_info)
        if dist_info:
            dist = importlib.metadata.PathDistribution(zipfile.Path(zf, f"{dist_info}/"))
            meta = dist.metadata
            # A missing header read with [] is None with a DeprecationWarning (3.13), later a KeyError.
            if meta is not None and "Name" in meta and meta["Name"]:
                metadata_name = canonicalize_name(meta["Name"])
            if meta is not None and "Version" in meta:
                metadata_version = meta["Version"] or None
            entry_points, ep_problem = _entry_points(dist)
            problems += [ep_problem] if ep_problem else []
            if name and metadata_name and metadata_name != name:
                problems.append(f"METADATA names {metadata_name!r} but the filename says {name!r}")
    manifest = (
        _manifest_facts(path) if dist_info else _ManifestFacts(problem="no single *.dist-info in the wheel")
    )
    if manifest.manifest is not None and len(manifests) > 1:
        manifest = _ManifestFacts(
            problem=f"the wheel holds {len(manifests)} {MANIFEST_FILE} files ({', '.join(manifests)});"
            " the host reads whichever it finds first: ship exactly one, in the top-level package"
        )
    tops = [PurePosixPath(n).parent for n in manifests]
    package = str(tops[0]) if len(tops) == 1 and len(tops[0].parts) == 1 else None
    return WheelFacts(
        path=path,
        filename=filename,
        name=name,
        version=version,
        readable=True,
        manifest_package=package,
        problems=tuple(problems),
        dist_info=dist_info,
        metadata_name=metadata_name,
        metadata_version=metadata_version,
        entry_points=entry_points,
        manifest=manifest.manifest,
        manifest_key=manifest.key,
        manifest_problem=manifest.problem,
        manifest_declared_version=manifest.declared_version,
    )
