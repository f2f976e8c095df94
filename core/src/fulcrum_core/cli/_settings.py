"""The settings a command runs with: the root's ``--config`` (or ``FULCRUM_CONFIG``) and ``FULCRUM_*``."""

from __future__ import annotations

import click

from fulcrum_core.settings import Settings, SettingsError, load_settings, misspelt_variables

__all__ = ["settings_for"]


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
