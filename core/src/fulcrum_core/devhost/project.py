"""Find the plugin under development in a project directory, without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.manifest import MANIFEST_FILE, Manifest, parse_manifest

__all__ = ["DevError", "DevPlugin", "find_dev_plugin"]


class DevError(Exception):
    """The directory holds no runnable plugin; the message says what was expected."""


@dataclass(frozen=True)
class DevPlugin:
    """A plugin project: the import root (``src``), the package name and the manifest."""

    project: Path
    source_root: Path
    package: str
    manifest: Manifest

    @property
    def package_dir(self) -> Path:
        """The package's directory, which ``fulcrum dev`` watches for changes."""
        return self.source_root / self.package


def find_dev_plugin(path: str | Path) -> DevPlugin:
    """The plugin package in ``path`` (``src/<package>/fulcrum-plugin.toml``, or a flat layout), or
    ``path`` itself when it is the package (it holds the manifest: ``fulcrum dev`` run inside it)."""
    project = Path(path).resolve()
    if not project.is_dir():
        raise DevError(f"{path} is not a directory: pass the plugin project's directory")
    found = (
        [project / MANIFEST_FILE] if (project / MANIFEST_FILE).is_file()
        else sorted(project.glob(f"src/*/{MANIFEST_FILE}")) or sorted(project.glob(f"*/{MANIFEST_FILE}"))
    )
    if not found:
        raise DevError(
            f"no {MANIFEST_FILE} under {project}/src/<package>/: pass a plugin project's directory "
            "(one made by `fulcrum plugin new`)"
        )
    if len(found) > 1:
        listed = ", ".join(str(p.parent.relative_to(project)) for p in found)
        raise DevError(f"{project} holds several plugin packages ({listed}): pass one project")
    manifest_path = found[0]
    try:
        manifest = parse_manifest(manifest_path.read_bytes(), file=str(manifest_path))
    except ManifestError as exc:
        raise DevError(str(exc)) from None
    package_dir = manifest_path.parent
    if not (package_dir / "__init__.py").is_file():
        raise DevError(f"{package_dir} has no __init__.py: the plugin must be a package")
    return DevPlugin(
        project=project, source_root=package_dir.parent, package=package_dir.name, manifest=manifest
    )
