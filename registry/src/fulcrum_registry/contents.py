"""A wheel's contents as ``path -> sha256 hex`` of the bytes each member holds: what hosts compare with.

A host verifies that an installed plugin is the reviewed wheel by hashing its installed files and
comparing them with this map, so the map is computed from the archive's actual bytes (never copied
from its RECORD) and leaves out only ``RECORD`` and its signatures, which installers rewrite.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path, PurePosixPath

from fulcrum_registry._wheel import MAX_UNCOMPRESSED

__all__ = ["wheel_contents"]

_REWRITTEN = frozenset({"RECORD", "RECORD.jws", "RECORD.p7s"})


def wheel_contents(path: str | Path) -> dict[str, str] | None:
    """``{member path: sha256 hex}`` of the wheel at ``path``; None when it is not a safe, readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
                return None
            contents: dict[str, str] = {}
            for info in infos:
                parts = PurePosixPath(info.filename).parts
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] in _REWRITTEN:
                    continue
                digest = hashlib.sha256()
                with zf.open(info) as member:
                    while chunk := member.read(1 << 16):
                        digest.update(chunk)
                contents[info.filename] = digest.hexdigest()
            return contents
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError, ValueError):
        return None
