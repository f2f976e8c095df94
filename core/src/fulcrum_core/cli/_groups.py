"""Groups whose commands are imported on first use (``fulcrum``, ``fulcrum registry``), and groups that
do something on their own and also hold subcommands (``demo``, ``registry audit``)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click
from click.core import ParameterSource

__all__ = ["LazyGroup", "refuse_own_options"]


class LazyGroup(click.Group):
    """A group that imports each command's module when the command is used (click's lazy-loading group
    recipe): ``lazy`` maps a command name to ``module:attribute``, ``listed_help`` to the one-line help
    its docstring gives (a test keeps them equal), so ``--help`` lists the commands importing none."""

    def __init__(
        self, *args: Any, lazy: Mapping[str, str], listed_help: Mapping[str, str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self.listed_help = dict(listed_help)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """click's, with "Did you mean" drawn from every command, loaded yet or not (as subgroups do)."""
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's command list, its lines from ``listed_help`` for commands not loaded yet."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is None and name in self.listed_help:
                stand_in = click.Command(name, help=self.listed_help[name])  # cut as click cuts its own
                rows.append((name, stand_in.get_short_help_str(limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def refuse_own_options(ctx: click.Context) -> None:
    """A usage error when the group's own options were given before a subcommand, which ignores them."""
    given = [
        param.opts[0]
        for param in ctx.command.params
        if isinstance(param, click.Option)
        and param.name is not None
        and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE
    ]
    if given:
        sub = f"{ctx.command_path} {ctx.invoked_subcommand}"
        raise click.UsageError(
            f"{', '.join(given)}: an option of `{ctx.command_path}` itself, which `{sub}` would ignore; "
            f"see `{sub} --help`"
        )
