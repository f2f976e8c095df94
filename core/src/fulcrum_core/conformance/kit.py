"""Run the conformance kit on a plugin project: build its wheel, check it, and call its hooks.

The wheel checks are :func:`fulcrum_registry.checks.check_wheel` — the very functions the registry
runs on submission — with no database: no earlier releases, and the submitter taken to be the
manifest's own publisher. The hook checks are :func:`fulcrum_sdk.conformance.run_conformance`, run in
a fresh interpreter on the unpacked wheel, so the plugin runs from the artifact the registry will
receive and a plugin that hangs or crashes cannot take the command with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec
from fulcrum_registry.checks import CheckContext, CheckResult, check_wheel
from fulcrum_registry.placeholders import placeholder_warnings
from fulcrum_sdk.conformance import DEFAULT_DEADLINES_MS, ConformanceResult
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.manifest import Manifest, manifest_from_wheel

from fulcrum_core.conformance.build import BuildError, build_wheel, unpack_wheel

__all__ = ["KitCheck", "KitError", "KitReport", "run_kit"]

Status = Literal["passed", "failed", "skipped"]
_GATES = ("wheel.well_formed", "manifest.present_and_valid", "entry_point.matches_id")


class KitError(Exception):
    """The kit could not run at all (no project, no uv, the build failed); the message says why."""


class KitCheck(msgspec.Struct, frozen=True, kw_only=True):
    """One check of the kit: ``source`` is ``registry`` (submission checks) or ``hooks`` (behaviour)."""

    source: Literal["registry", "hooks"]
    id: str
    status: Status
    message: str
    fix: str | None = None
    details: tuple[str, ...] = ()


class KitReport(msgspec.Struct, frozen=True, kw_only=True):
    """What ``fulcrum plugin check`` found: the wheel it built and every check in order."""

    project: str
    wheel: str
    plugin_id: str | None
    checks: tuple[KitCheck, ...]
    warnings: tuple[str, ...] = ()  # worth fixing before review, never a failure (placeholder text)

    @property
    def passed(self) -> bool:
        """True when no check failed (skipped checks do not fail the kit)."""
        return all(c.status != "failed" for c in self.checks)


def _kit_check(source: Literal["registry", "hooks"], r: CheckResult | ConformanceResult) -> KitCheck:
    return KitCheck(source=source, id=r.id, status=r.status, message=r.message, fix=r.fix, details=r.details)


def _hooks_failed(check_id: str, message: str, fix: str, details: list[str]) -> KitCheck:
    return KitCheck(
        source="hooks", id=check_id, status="failed", message=message, fix=fix, details=tuple(details)
    )


def _run_hooks(
    manifest: Manifest, site: Path, deadlines: Mapping[str, int], timeout_s: float
) -> tuple[KitCheck, ...]:
    command = [sys.executable, "-m", "fulcrum_sdk.conformance", manifest.id, "--path", str(site)]
    command += [f"--deadline={hook}={ms}" for hook, ms in sorted(deadlines.items())]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        ran = subprocess.run(  # noqa: S603 - this interpreter running the SDK's own module
            command, env=env, capture_output=True, timeout=timeout_s, check=False, cwd=site
        )
    except subprocess.TimeoutExpired:
        return (
            _hooks_failed(
                "plugin.loads",
                f"the hook checks did not finish within {timeout_s:.0f} s",
                "make sure importing the plugin and each hook call return promptly",
                [],
            ),
        )
    if ran.returncode != 0:
        tail = ran.stderr.decode(errors="replace").strip().splitlines()[-8:]
        return (
            _hooks_failed(
                "plugin.loads",
                "the plugin could not be imported and called from its wheel",
                "depend on fulcrum-sdk only (or vendor what you need) and make importing the package "
                "free of side effects; the details show the error",
                tail,
            ),
        )
    results = msgspec.json.decode(ran.stdout, type=tuple[ConformanceResult, ...])
    loads = KitCheck(
        source="hooks",
        id="plugin.loads",
        status="passed",
        message="the plugin imports from its wheel through its entry point",
    )
    return (loads, *(_kit_check("hooks", r) for r in results))


def _plugin_project(root: Path, named: str | Path) -> None:
    """``KitError`` unless ``root`` is a Python project that declares a ``fulcrum`` entry point: run from
    elsewhere (the repository's root, a plugin's ``src``), the kit tried to build it and failed with a
    build backend's error that never said the directory was the wrong one."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise KitError(
            f"{named} is not a plugin project: it has no pyproject.toml; pass the directory "
            "`fulcrum plugin new` made (the one holding pyproject.toml)"
        )
    try:
        declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KitError(f"{pyproject}: cannot be read as TOML: {exc}") from None
    project_table = declared.get("project")
    project_table = project_table if isinstance(project_table, dict) else {}
    entry_points = project_table.get("entry-points")
    dynamic = project_table.get("dynamic")
    tool = declared.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    poetry_plugins = poetry.get("plugins") if isinstance(poetry, dict) else None
    declares = (
        (isinstance(entry_points, dict) and "fulcrum" in entry_points)
        or (isinstance(dynamic, list) and "entry-points" in dynamic)  # setup.cfg or setup.py says
        or (isinstance(poetry_plugins, dict) and "fulcrum" in poetry_plugins)
        or (root / "setup.cfg").is_file()
        or (root / "setup.py").is_file()
    )
    if not declares:
        raise KitError(
            f"{named} is not a plugin project: its pyproject.toml declares no `fulcrum` entry point "
            "([project.entry-points.fulcrum]); pass a plugin's project directory"
        )


def run_kit(
    project: str | Path,
    *,
    deadlines: Mapping[str, int] | None = None,
    timeout_s: float = 300,
) -> KitReport:
    """Build ``project`` (a plugin project directory) and run every check; raises :class:`KitError`
    only when the kit cannot run — a failing plugin is a report with failed checks."""
    root = Path(project).resolve()
    if not root.is_dir():
        raise KitError(f"{project} is not a directory: pass the plugin project's directory")
    _plugin_project(root, project)
    with tempfile.TemporaryDirectory(prefix="fulcrum-check-") as tmp:
        try:
            wheel = build_wheel(root, Path(tmp) / "dist", timeout_s=timeout_s)
        except BuildError as exc:
            raise KitError(str(exc)) from None
        try:
            manifest: Manifest | None = manifest_from_wheel(wheel)
        except ManifestError:
            manifest = None  # the registry's checks say what is wrong with it
        context = (
            CheckContext(publisher_id=manifest.publisher, publisher_kind=manifest.kind)
            if manifest is not None
            else CheckContext()
        )
        registry = tuple(_kit_check("registry", r) for r in check_wheel(wheel, context))
        gates_failed = [c.id for c in registry if c.id in _GATES and c.status != "passed"]
        if manifest is None or gates_failed:
            why = "the wheel failed " + (", ".join(gates_failed) or "manifest.present_and_valid")
            hooks: tuple[KitCheck, ...] = (
                KitCheck(
                    source="hooks",
                    id="plugin.loads",
                    status="skipped",
                    message=f"not run: {why}",
                    details=(why,),
                ),
            )
        else:
            site = unpack_wheel(wheel, Path(tmp) / "site")
            limits = {**DEFAULT_DEADLINES_MS, **(deadlines or {})}
            hooks = _run_hooks(manifest, site, limits, timeout_s)
        return KitReport(
            project=str(root),
            wheel=wheel.name,
            plugin_id=manifest.id if manifest else None,
            checks=registry + hooks,
            warnings=placeholder_warnings(manifest),
        )
