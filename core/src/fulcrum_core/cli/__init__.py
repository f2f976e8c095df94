"""The ``fulcrum`` command line: one click group, one module per command group, each imported when used.

Importing every command's module (SQLAlchemy, alembic, litestar, authlib, ...) took seconds on every
call, ``fulcrum token issue`` included, and every worker of ``fulcrum serve --workers N`` pays it again
before it can answer the supervisor's health check (``spawn`` re-imports the ``fulcrum`` script).
"""

from __future__ import annotations

import sys

import click

from fulcrum_core.cli._groups import LazyGroup

__all__ = ["main"]

_COMMANDS = {
    "branch": "fulcrum_core.cli.branch:branch",
    "db": "fulcrum_core.cli.db:db",
    "demo": "fulcrum_core.cli.serve:demo",
    "keys": "fulcrum_core.cli.keys:keys",
    "dev": "fulcrum_core.cli.dev:dev",
    "oauth": "fulcrum_core.cli.oauth:oauth",
    "plugin": "fulcrum_core.cli.plugin:plugin",
    "registry": "fulcrum_core.cli.registry_group:registry",
    "serve": "fulcrum_core.cli.serve:serve",
    "support": "fulcrum_core.cli.support:support",
    "token": "fulcrum_core.cli.token:token",
}
"""Command name → ``module:attribute`` of its click command (click's lazy-loading group recipe)."""

_SHORT_HELP = {
    "branch": "Branch plugin configuration (branches/<code>.toml and branches/hq.toml).",
    "db": "The platform database (one alembic history for every table).",
    "demo": "Migrate and seed a demo database, then serve it with the three plugins on.",
    "dev": "Serve the plugin project in PATH on 127.0.0.1 with demo customers; show each hook call.",
    "keys": "The token signing keys: list, rotate, retire.",
    "oauth": "OAuth clients of the authorization server; a test identity provider for local trials.",
    "plugin": "Create and check plugin projects.",
    "registry": "The plugin registry, straight on the database (see each command's --help).",
    "serve": "Serve the API with the plugins installed in this environment.",
    "support": "Tools for the platform team's support engineers.",
    "token": "Access tokens for development.",
}
"""Each command's one-line help, as its docstring says it (a test keeps them equal), so ``fulcrum
--help`` lists the commands without importing every one (alembic, SQLAlchemy, litestar: seconds)."""


class _Main(LazyGroup):
    """The top-level group: commands load on first use; settings that cannot be loaded and a database
    that cannot be used are one ``Error:`` line naming the problem, for every command, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.NoSuchOption as exc:
            raise _misplaced_root_option(ctx, exc) from None
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own ending (``--help`` is an Exit): nothing of the database to explain
        except Exception as exc:
            # Only a command that imported the settings, alembic or SQLAlchemy can have raised their
            # errors: looking them up (not importing them) keeps `--help` from loading any of them.
            settings = sys.modules.get("fulcrum_core.settings")
            if settings is not None and isinstance(exc, settings.SettingsError):
                raise click.ClickException(f"cannot load settings: {exc}") from None
            alembic_util, sqlalchemy_exc = sys.modules.get("alembic.util"), sys.modules.get("sqlalchemy.exc")
            if alembic_util is not None and isinstance(exc, alembic_util.CommandError):
                # e.g. a revision the packaged migrations do not have
                raise click.ClickException(f"migrations: {exc}") from None
            if sqlalchemy_exc is None:
                raise
            # The data layer wraps the driver's error in a domain error (e.g. DatabaseUnavailable).
            # PostgreSQL reports a missing table or column as a ProgrammingError, SQLite as an
            # OperationalError; its first line is the reason (the rest points into the SQL).
            driver_errors = (sqlalchemy_exc.OperationalError, sqlalchemy_exc.ProgrammingError)
            refused = exc if isinstance(exc, driver_errors) else exc.__cause__
            if not isinstance(refused, driver_errors):
                raise
            said = str(refused.orig).strip()
            reason = said.splitlines()[0] if said else said
            raise click.ClickException(
                f"the database refused: {reason}. Is FULCRUM_DATABASE_URL right, the server up, and the "
                "schema migrated (`fulcrum db upgrade`)?"
            ) from None


def _misplaced_root_option(ctx: click.Context, exc: click.NoSuchOption) -> click.NoSuchOption:
    """``exc`` with a hint when the unknown option is the root's own: click names no reason it is refused."""
    for param in ctx.command.params:
        if isinstance(param, click.Option) and exc.option_name in param.opts and exc.ctx is not None:
            below = exc.ctx.command_path.removeprefix(ctx.command_path).strip()
            usage = f"{ctx.command_path} {exc.option_name} {param.metavar or 'VALUE'} {below} ..."
            return click.NoSuchOption(
                exc.option_name,
                f"No such option: {exc.option_name}. {exc.option_name} is an option of "
                f"{ctx.command_path} itself: put it before the command ({usage})",
                ctx=exc.ctx,
            )
    return exc


@click.group(
    cls=_Main,
    lazy=_COMMANDS,
    listed_help=_SHORT_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    envvar="FULCRUM_CONFIG",
    help="A TOML settings file (default: FULCRUM_CONFIG).",
)
@click.pass_context
def main(ctx: click.Context, config_file: str | None) -> None:
    """Fulcrum: the open platform behind the mobile-banking app."""
    ctx.obj = {"config_file": config_file}
