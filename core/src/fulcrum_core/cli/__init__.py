"""The ``fulcrum`` command line: one click group, one module per command group."""

from __future__ import annotations

import click

__all__ = ["main"]


class _Main(click.Group):
    """The top-level group: settings that cannot be loaded and a database that cannot be used are
    one ``Error:`` line naming the problem, for every command, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        from fulcrum_core.settings import SettingsError

        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            raise click.ClickException(f"cannot load settings: {exc}") from None
        except Exception as exc:
            from alembic.util import CommandError
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, CommandError):  # e.g. a revision the packaged migrations do not have
                raise click.ClickException(f"migrations: {exc}") from None
            if not isinstance(exc, OperationalError):
                raise
            raise click.ClickException(
                f"the database refused: {exc.orig}. Is FULCRUM_DATABASE_URL right, the server up, and the "
                "schema migrated (`fulcrum db upgrade`)?"
            ) from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="FULCRUM_CONFIG",
    help="A TOML settings file (default: FULCRUM_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """Fulcrum: the open platform behind the mobile-banking app."""
    ctx.obj = {"config_file": config_file}


def _register() -> None:
    from fulcrum_core.cli import branch, db, plugin, serve, token

    main.add_command(serve.serve)
    main.add_command(serve.demo)
    main.add_command(db.db)
    main.add_command(token.token)
    main.add_command(branch.branch)
    main.add_command(plugin.plugin)
    from fulcrum_core.cli import registry

    main.add_command(registry.registry)
    from fulcrum_core.cli import dev

    main.add_command(dev.dev)


_register()
