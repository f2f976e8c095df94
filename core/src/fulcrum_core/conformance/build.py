"""Build a plugin project's wheel exactly as its publisher will: ``uv build --wheel``."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

__all__ = ["BuildError", "build_wheel", "unpack_wheel"]


class BuildError(Exception):
    """The project could not be built into one wheel; the message says why and what to do."""


def build_wheel(project: Path, out_dir: Path, *, timeout_s: float = 300) -> Path:
    """Build ``project`` into ``out_dir`` and return the one wheel made there."""
    if not (project / "pyproject.toml").is_file():
        raise BuildError(f"{project} has no pyproject.toml: pass the plugin project's directory")
    uv = shutil.which("uv")
    if uv is None:
        raise BuildError("uv is not on PATH; install uv to build the wheel the registry will receive")
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["UV_NO_PROGRESS"] = "1"
    try:
        built = subprocess.run(  # noqa: S603 - a fixed command: uv, with a directory we were given
            [uv, "build", "--wheel", "--quiet", "--out-dir", str(out_dir), str(project)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"uv build did not finish within {timeout_s:.0f} s") from None
    if built.returncode != 0:
        tail = "\n".join((built.stderr or built.stdout).strip().splitlines()[-15:])
        raise BuildError(f"uv build failed:\n{tail}")
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"uv build made {len(wheels)} wheels, expected one")
    return wheels[0]


def unpack_wheel(wheel: Path, target: Path) -> Path:
    """Unpack a pure-Python wheel into ``target``, which then works as a ``sys.path`` entry."""
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            # RECORD is checked by the registry's checks; still, never write outside the target.
            if name.startswith("/") or ".." in Path(name).parts:
                raise BuildError(f"{wheel.name} holds an unsafe path {name!r}")
        archive.extractall(target)  # every member was checked above
    return target
