"""The content-addressed artifact store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from fulcrum_registry import InvalidInput, NotFound, RegistryUnavailable
from fulcrum_registry.artifacts import ArtifactStore


def test_stored_under_its_hash(tmp_path: Path) -> None:
    """Bytes land at <root>/sha256/<aa>/<hash>.whl and read back verified."""
    store = ArtifactStore(tmp_path)
    data = b"wheel bytes"
    digest = hashlib.sha256(data).hexdigest()
    stored = store.put(data)
    assert stored.path == tmp_path / "sha256" / digest[:2] / f"{digest}.whl"
    assert (stored.sha256, stored.size) == (digest, len(data))
    assert store.read(digest) == data


def test_same_bytes_once_and_no_temp_files_left(tmp_path: Path) -> None:
    """Storing the same bytes twice keeps one file and no partial files."""
    store = ArtifactStore(tmp_path)
    store.put(b"a")
    store.put(b"a")
    store.put(b"b")
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert len(files) == 2
    assert all(f.endswith(".whl") for f in files)


def test_a_corrupted_file_is_refused_and_repaired(tmp_path: Path) -> None:
    """A file whose bytes no longer match its name is refused on read and replaced on the next put."""
    store = ArtifactStore(tmp_path)
    stored = store.put(b"original")
    stored.path.write_bytes(b"ORIGINAL")
    with pytest.raises(RegistryUnavailable, match="corrupted"):
        store.read(stored.sha256)
    store.put(b"original")
    assert store.read(stored.sha256) == b"original"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ABC", "g" * 64, ""])
def test_only_hex_digests_address_files(tmp_path: Path, bad: str) -> None:
    """Anything but 64 lowercase hex digits is refused, so no path can escape the root."""
    with pytest.raises(InvalidInput):
        ArtifactStore(tmp_path).get(bad)


def test_missing_artifact_is_not_found(tmp_path: Path) -> None:
    """An unknown hash is NotFound."""
    with pytest.raises(NotFound):
        ArtifactStore(tmp_path).get("0" * 64)


def test_unwritable_root_is_unavailable(tmp_path: Path) -> None:
    """A root that cannot be written raises RegistryUnavailable, not an OSError."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RegistryUnavailable):
        ArtifactStore(blocker).put(b"data")
