"""Groups that do something on their own and also hold subcommands (``demo``, ``registry audit``)."""

from __future__ import annotations

import click
from click.core import ParameterSource

__all__ = ["refuse_own_options"]


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
