"""``fulcrum branch check FILE...``: validate branch configuration files and print every problem.

"Approved" means the registry's approved, not suspended releases in the configured database; where
that database holds none (a fresh checkout), the plugins installed in this environment (their
manifests, read without importing them) with a warning; or a TOML export given with ``--approved``.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import click
import msgspec
from fulcrum_sdk.errors import ManifestError
from fulcrum_sdk.hookspecs import PROJECT_NAME
from fulcrum_sdk.manifest import manifest_from_distribution

from fulcrum_core.branches.check import check_files
from fulcrum_core.branches.model import HQ_FILE, ApprovedPlugin
from fulcrum_core.cli._settings import settings_for
from fulcrum_core.settings import Settings

__all__ = ["branch", "installed_plugins", "registry_plugins"]


def installed_plugins() -> tuple[dict[str, ApprovedPlugin], list[str]]:
    """Plugins installed here (entry-point group ``fulcrum``) as an approved set, plus warnings.

    Each installed version counts as approved; the registry's approved releases will replace this.
    """
    approved: dict[str, ApprovedPlugin] = {}
    warnings: list[str] = []
    for ep in importlib.metadata.entry_points(group=PROJECT_NAME):
        if ep.dist is None:
            warnings.append(f"entry point {ep.name!r} has no distribution; skipped")
            continue
        try:
            manifest = manifest_from_distribution(ep.dist)
        except ManifestError as exc:
            warnings.append(f"plugin {ep.name!r} skipped: {exc}")
            continue
        approved[manifest.id] = ApprovedPlugin(
            kind=manifest.kind,
            publisher=manifest.publisher,
            versions=(manifest.version or ep.dist.version,),
            slots=manifest.slots,
        )
    return approved, warnings


def registry_plugins(
    settings: Settings, *, otherwise: str = "check against a list with --approved FILE"
) -> dict[str, ApprovedPlugin] | None:
    """The registry's approved releases as an approved set; ``None`` when there is no database file
    yet (SQLite) or the registry knows no plugin at all (a fresh one): the caller then checks against
    the plugins installed here, saying so.

    A plugin the registry knows with no live approved release (in review, rejected, suspended) is in
    the set without versions, so a file naming it hears "no approved release", not "unknown plugin".
    A registry that cannot be read (the database down or not migrated) is a ``ClickException``: a
    check in CI that quietly fell back to the installed plugins passed without the registry's word;
    its message ends in ``otherwise``, what the caller's user can do instead.
    """
    from fulcrum_registry import RegistryError
    from sqlalchemy.exc import SQLAlchemyError

    from fulcrum_core.data.db import Database, empty_sqlite_file, missing_sqlite_file
    from fulcrum_core.errors import CoreError
    from fulcrum_core.registry_host.host import open_registry

    url = settings.resolved_database_url()
    if missing_sqlite_file(url) is not None:
        return None  # opening it would create it: a check must leave no database behind
    if empty_sqlite_file(url):
        return None  # created, never written: nothing to read
    db = Database(url)
    try:
        service = open_registry(settings, db)
        approved: dict[str, ApprovedPlugin] = {}
        for plugin_id, versions in service.active_policy().items():
            newest = max(versions.values(), key=lambda r: r.release_id)
            manifest = service.get_release(newest.release_id).manifest
            if manifest is None:
                continue
            approved[plugin_id] = ApprovedPlugin(
                kind=manifest.kind,
                publisher=manifest.publisher,
                versions=tuple(sorted(versions)),
                slots=manifest.slots,
            )
        cursor: str | None = None
        while True:
            page = service.catalogue({"limit": 100} if cursor is None else {"limit": 100, "cursor": cursor})
            for plugin in page.items:
                if plugin.id not in approved:
                    known = {"kind": plugin.kind, "publisher": plugin.publisher_id}
                    approved[plugin.id] = msgspec.convert(known, ApprovedPlugin)
            if page.next_cursor is None:
                return approved or None
            cursor = page.next_cursor
    except (RegistryError, CoreError, SQLAlchemyError) as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(
            f"cannot read the registry at {db!r} ({reason}); start or migrate the database "
            f"(`fulcrum db upgrade`), or {otherwise}"
        ) from None
    finally:
        db.dispose()


def _load_approved(path: str) -> dict[str, ApprovedPlugin]:
    try:
        return msgspec.toml.decode(Path(path).read_bytes(), type=dict[str, ApprovedPlugin])
    except (OSError, msgspec.DecodeError) as exc:  # ValidationError is a DecodeError
        raise click.BadParameter(str(exc), param_hint="--approved") from None


def _not_a_branch_file(path: Path) -> bool:
    """A file the host's branch directory may hold but the host never reads (``README.md``, a hidden
    file), so ``branch check branches/*`` passes over it. One named almost like a branch file
    (``0755.TOML``, ``0755.toml.bak``) is still checked: its problem says why the host skips it."""
    near = any(s.startswith(".toml") or s == ".tml" for s in (x.lower() for x in path.suffixes))
    return path.name.startswith(".") or not near


def _files_of(ctx: click.Context, names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with each directory replaced by its files, sorted as the shell expands ``dir/*``; a
    directory holding none exits 1 naming it."""
    files: list[str] = []
    for name in names:
        if not Path(name).is_dir():
            files.append(name)
            continue
        held = sorted(  # not hidden ones (.gitkeep), as the shell's dir/* leaves them out
            str(entry) for entry in Path(name).iterdir() if entry.is_file() and not entry.name.startswith(".")
        )
        if not held:
            click.echo(
                f"{name}: holds no file; name a branch directory or its files (branches/*.toml)", err=True
            )
            ctx.exit(1)
        files += held
    return tuple(files)


@click.group()
def branch() -> None:
    """Branch plugin configuration (branches/<code>.toml and branches/hq.toml)."""


@branch.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--approved",
    "approved_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML of approved plugins: [<id>] kind, publisher, versions, slots (default: the registry).",
)
@click.pass_context
def check(ctx: click.Context, files: tuple[str, ...], approved_file: str | None) -> None:
    """Validate FILES against the approved plugins and the slot inventory; exit 1 on any problem.

    A branch file is checked together with the hq.toml beside it (a warning says when there is none).
    Files the host never reads (README.md) are skipped among branch files (``branches/*``); named alone,
    they are a mistake, and exit 1. A directory stands for its files, as ``branches/*`` does.
    """
    files = _files_of(ctx, files)
    skipped = [f for f in files if _not_a_branch_file(Path(f))]
    if len(skipped) == len(files):  # named on purpose, not swept in by ``branches/*`` beside hq.toml
        for name in skipped:
            click.echo(
                f"{name}: not a branch configuration file: the host reads only hq.toml and <code>.toml "
                "files (such as 0755.toml) in its branch directory; name those",
                err=True,
            )
        ctx.exit(1)
    for name in skipped:
        click.echo(
            f"note: skipped {name}: the host reads only hq.toml and <code>.toml files, not this one", err=True
        )
    files = tuple(f for f in files if f not in skipped)
    settings = settings_for(ctx)
    inventory = {slot: config.capacity for slot, config in settings.slots.items()}
    if approved_file is not None:
        approved = _load_approved(approved_file)
    else:
        from fulcrum_core.data.db import missing_sqlite_file

        from_registry = registry_plugins(settings)
        missing = missing_sqlite_file(settings.resolved_database_url())
        if from_registry is not None:
            approved = from_registry
        else:
            click.echo(
                f"warning: there is no database at {missing} (FULCRUM_DATABASE_URL): "
                "checking against the plugins installed here" if missing is not None else
                "warning: the registry knows no plugin yet; checking against the plugins installed here",
                err=True,
            )
            approved, warnings = installed_plugins()
            for warning in warnings:
                click.echo(f"warning: {warning}", err=True)
    for directory in dict.fromkeys(Path(f).parent for f in files if Path(f).name != HQ_FILE):
        if not (directory / HQ_FILE).exists():
            click.echo(
                f"warning: there is no {HQ_FILE} in {directory}: its branch files are checked without HQ's "
                f"rules (mandatory plugins, HQ's pins); check them beside the {HQ_FILE} the host reads",
                err=True,
            )
    problems = check_files(files, approved=approved, inventory=inventory)
    for problem in problems:
        click.echo(problem.line)
    if problems:
        bad = len({p.file for p in problems})
        click.echo(f"{len(problems)} problem(s) in {bad} file(s)", err=True)
        ctx.exit(1)
    click.echo(f"ok: {len(files)} file(s) checked")
