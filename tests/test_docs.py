"""The README's examples are real: the toy plugin runs and prints what the README shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_toy_plugin_prints_what_the_readme_shows() -> None:
    """`python docs/examples/hello_plugin.py` prints exactly the block under "A toy plugin"."""
    result = subprocess.run(
        [sys.executable, "docs/examples/hello_plugin.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    section = README.split("## A toy plugin", 1)[1]
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    assert shown is not None
    assert result.stdout == shown.group(1)


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` ends by calling exactly the test command the README gives."""
    readme_command = re.search(r"^(uv run pytest)\s+#", README, re.M)
    assert readme_command is not None
    ci_lines = [
        line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert ci_lines[-1] == readme_command.group(1)


def test_readme_demo_command_is_a_real_cli_command() -> None:
    """The demo command the README gives exists in the CLI with the options it documents."""
    from click.testing import CliRunner
    from fulcrum_core.cli import main

    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output
    assert "customers" in result.output
