"""The settings a command runs with: the root's ``--config`` (or ``FULCRUM_CONFIG``) and ``FULCRUM_*``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fulcrum_core.settings import Settings, SettingsError, load_settings, misspelt_variables

if TYPE_CHECKING:
    from fulcrum_core.data.db import Database

__all__ = ["existing_database", "require_key_file", "settings_for"]


def settings_for(ctx: click.Context, *, dev_mode: bool | None = None) -> Settings:
    """This invocation's settings; settings that cannot be loaded are one ``Error:`` line naming the
    file or variable and the key, never a traceback. A misspelt ``FULCRUM_*`` variable is a warning."""
    root = ctx.find_root().obj
    config_file = root.get("config_file") if isinstance(root, dict) else None
    if isinstance(root, dict) and not root.get("variables_checked"):
        root["variables_checked"] = True
        for line in misspelt_variables():
            click.echo(f"warning: {line}", err=True)
    try:
        return load_settings(config_file=config_file, dev_mode=dev_mode)
    except SettingsError as exc:
        raise click.ClickException(f"cannot load settings: {exc}") from None


_NO_DATABASE_FIX = (
    "set FULCRUM_DATABASE_URL (or database_url in --config) to the server's, or create one here with "
    "`fulcrum db upgrade` (or `fulcrum demo`)"
)


def existing_database(settings: Settings, fix: str = _NO_DATABASE_FIX) -> Database:
    """The settings' database for a command that only reads it: one ``Error:`` line (ending in ``fix``),
    and nothing created, when it is a SQLite file that does not exist (e.g. run from the wrong directory)."""
    from fulcrum_core.data.db import Database, missing_sqlite_file

    url = settings.resolved_database_url()
    missing = missing_sqlite_file(url)
    if missing is not None:
        raise click.ClickException(f"there is no database at {missing}: {fix}")
    return Database(url)


def require_key_file(settings: Settings) -> None:
    """One ``Error:`` line when the settings' state directory holds no signing keys: a command that signs
    or manages keys never makes them there, since no server running elsewhere would know them."""
    from pathlib import Path

    from fulcrum_core.auth.keys import KEY_FILE_NAME

    key_file = Path(settings.state_dir) / KEY_FILE_NAME
    if not key_file.exists():
        raise click.ClickException(
            f"there are no signing keys at {key_file.resolve()}: the server makes them when it first starts "
            "(`fulcrum demo`, `fulcrum serve`); run this where it runs, or set FULCRUM_STATE_DIR "
            "(or state_dir in --config) to its state directory"
        )
