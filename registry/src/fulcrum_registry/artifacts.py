"""A content-addressed artifact store: ``<root>/sha256/<aa>/<hash>.whl``, written atomically, once.

The same bytes are stored once however often they are submitted; a file is only ever renamed into
place complete, so a reader never sees half a wheel and a crash leaves at most a stray temp file.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import msgspec

from fulcrum_registry.errors import InvalidInput, NotFound, RegistryUnavailable

__all__ = ["ArtifactStore", "StoredArtifact"]

_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


class StoredArtifact(msgspec.Struct, frozen=True):
    """Where an artifact lives and what it is."""

    sha256: str
    size: int
    path: Path


class ArtifactStore:
    """Wheels on the local file system, addressed by their SHA-256."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        """The path an artifact with this hash has (or would have); refuses anything not a hex digest."""
        if not _HEX64.match(sha256):
            raise InvalidInput("sha256", "must be 64 lowercase hex digits")
        return self.root / "sha256" / sha256[:2] / f"{sha256}.whl"

    def put(self, data: bytes) -> StoredArtifact:
        """Store ``data`` (once) and return its address."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.path_for(sha256)
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            return StoredArtifact(sha256, len(data), path)  # already there and intact
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise RegistryUnavailable(f"cannot write artifact {sha256}: {exc.strerror or exc}") from exc
        return StoredArtifact(sha256, len(data), path)

    def get(self, sha256: str) -> StoredArtifact:
        """The stored artifact with this hash, or ``NotFound``."""
        path = self.path_for(sha256)
        if not path.is_file():
            raise NotFound("artifact", sha256)
        return StoredArtifact(sha256, path.stat().st_size, path)

    def read(self, sha256: str) -> bytes:
        """The artifact's bytes, verified against its address (a corrupted file is refused)."""
        data = self.get(sha256).path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RegistryUnavailable(f"artifact {sha256} is corrupted on disk")
        return data
