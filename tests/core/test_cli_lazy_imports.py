"""``--help`` loads no heavy module: ``fulcrum --help`` lists commands without importing them, and a
command's help is shown before anything it needs to run (alembic, SQLAlchemy, litestar) is imported."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from fulcrum_core.cli import _COMMANDS, _SHORT_HELP, main

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
        ["db", "--help"], ["db", "upgrade", "--help"],
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
