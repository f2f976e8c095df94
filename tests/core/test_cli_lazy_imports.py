"""``--help`` loads no heavy module: ``fulcrum --help`` lists commands without importing them, and a
command's help is shown before anything it needs to run (alembic, SQLAlchemy, litestar) is imported."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from fulcrum_core.cli import _COMMANDS, _SHORT_HELP, main, registry_group

HEAVY = ("alembic", "sqlalchemy", "litestar", "fulcrum_core.app", "fulcrum_registry", "joserfc")

PROBE = """\
import sys
from fulcrum_core.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print("MODULES:", *sorted(sys.modules))
"""


def test_the_listed_help_of_each_command_is_its_own() -> None:
    """The table ``fulcrum --help`` reads is every command's own one-line help, word for word."""
    ctx = click.Context(main)
    assert set(_SHORT_HELP) == set(_COMMANDS)
    for name in _COMMANDS:
        command = main.get_command(ctx, name)
        assert command is not None
        assert _SHORT_HELP[name] == command.get_short_help_str(10_000), name


@pytest.mark.parametrize(
    "args",
    [
        ["--help"], ["token", "issue", "--help"], ["token", "--help"], ["dev", "--help"],
        ["db", "--help"], ["db", "upgrade", "--help"], ["registry", "--help"],
    ],
)
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    """Before, ``fulcrum --help`` imported every command (alembic: seconds) and a click ``Exit`` (what
    ``--help`` raises) was checked against alembic's and SQLAlchemy's errors by importing them."""
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode == 0, ran.stderr
    loaded = ran.stdout.split("MODULES:", 1)[1].split()
    assert [name for name in loaded if name.startswith(HEAVY)] == []


def test_the_top_level_help_lists_every_command_as_click_would() -> None:
    """The listing is click's: every command, its help cut to the terminal width."""
    shown = subprocess.run(
        [sys.executable, "-c", "from fulcrum_core.cli import main; main(['--help'])"],
        capture_output=True, text=True, timeout=120, check=False, env={"COLUMNS": "80"},
    ).stdout
    listed = shown.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(_COMMANDS)
    assert "  token     Access tokens for development." in listed
    assert "  branch    Branch plugin configuration (branches/<code>.toml and..." in listed


def test_group_help_reads_no_settings() -> None:
    """``fulcrum registry --help`` took seconds: the group imported its commands (the registry,
    SQLAlchemy), and the root imported the settings only to tell their errors apart. A group's help
    needs neither."""
    ran = subprocess.run(
        [sys.executable, "-c", PROBE, "registry", "--help"], capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    loaded = ran.stdout.split("MODULES:", 1)[1].split()
    assert "fulcrum_core.cli.registry_group" in loaded
    assert "fulcrum_core.settings" not in loaded
    assert "fulcrum_core.cli.registry" not in loaded


def test_the_listed_help_of_each_registry_command_is_its_own() -> None:
    """``fulcrum registry --help`` lists every command the registry module defines, each with its own
    one-line help, word for word."""
    from fulcrum_core.cli import registry as commands

    group = registry_group.registry
    ctx = click.Context(group)
    assert set(registry_group._SHORT_HELP) == set(registry_group._COMMANDS)
    defined = {getattr(commands, name).name for name in commands.__all__}
    assert defined == set(registry_group._COMMANDS)
    for name in registry_group._COMMANDS:
        command = group.get_command(ctx, name)
        assert command is not None
        assert command.name == name
        assert registry_group._SHORT_HELP[name] == command.get_short_help_str(10_000), name


LISTING = """\
import sys
import click
from fulcrum_core.cli import main
from fulcrum_core.cli.registry_group import registry
if sys.argv[1] == "loaded":
    ctx = click.Context(registry)
    for name in registry.list_commands(ctx):
        registry.get_command(ctx, name)
try:
    main(["registry", "--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""


def test_the_registry_help_is_the_same_before_its_commands_load() -> None:
    """``fulcrum registry --help`` from the table prints what click prints with every command loaded:
    the same commands, their help cut the same way."""
    shown = {
        when: subprocess.run(
            [sys.executable, "-c", LISTING, when],
            capture_output=True, text=True, timeout=120, check=False, env={"COLUMNS": "80"},
        )
        for when in ("lazy", "loaded")
    }
    assert shown["lazy"].returncode == shown["loaded"].returncode == 0, shown["lazy"].stderr
    assert shown["lazy"].stdout == shown["loaded"].stdout
    listed = shown["lazy"].stdout.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(registry_group._COMMANDS)
    assert "  approve              Approve a release in review (a second reviewer is..." in listed
