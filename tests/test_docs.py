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


DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "registry" / "README.md",
    ROOT / "branches" / "README.md",
    ROOT / "bench" / "README.md",
    ROOT / "template" / "{{cookiecutter.__project_slug}}" / "README.md",
]


def _docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


def test_documented_variables_are_settings() -> None:
    """Every `FULCRUM_*` variable the docs name is a setting (or a secret, test or bench one)."""
    from fulcrum_core.settings import _ENV_FIELDS, _NOT_SETTINGS, _table_variable_names

    named = set(re.findall(r"\bFULCRUM_[A-Z_]*[A-Z]\b", _docs_text()))
    settings = {*_ENV_FIELDS, "FULCRUM_CONFIG", *_table_variable_names()}
    unknown = {v for v in named if v not in settings and not v.startswith(_NOT_SETTINGS)}
    assert not unknown


def test_readme_lists_every_variable() -> None:
    """The README's configuration section names every `FULCRUM_*` variable the settings read."""
    from fulcrum_core.settings import _ENV_FIELDS

    section = README.split("## Configuration", 1)[1]
    assert [v for v in _ENV_FIELDS if v not in section] == []


def test_documented_settings_exist() -> None:
    """Every setting the docs name by key (`*_ms`, `*_seconds`) is a field of `Settings`."""
    from fulcrum_core.settings import Settings

    named = set(re.findall(r"`([a-z]+(?:_[a-z]+)*_(?:ms|seconds))`", _docs_text()))
    assert named
    # Metric names (``fulcrum_plugin_call_seconds``) are checked against a scrape instead
    # (``tests/core/test_docs_operations.py``).
    named = {name for name in named if not name.startswith("fulcrum_")}
    assert sorted(named - set(Settings.__struct_fields__)) == []


def test_documented_cli_commands_exist() -> None:
    """Every `fulcrum GROUP COMMAND` the docs give resolves to a real CLI command."""
    import click
    from fulcrum_core.cli import main

    missing = []
    for words in re.findall(r"\bfulcrum((?: [a-z][a-z-]*)+)", _docs_text()):
        command: click.Command = main
        for word in words.split():
            if not isinstance(command, click.Group):
                break
            sub = command.get_command(click.Context(command), word)
            if sub is None:
                if not command.invoke_without_command:
                    missing.append(f"fulcrum{words}")
                break
            command = sub
    assert missing == []


def test_registry_readme_lists_the_checks() -> None:
    """The registry README names every submission check, in order, and counts them right."""
    from fulcrum_registry.checks import CHECKS

    text = (ROOT / "registry" / "README.md").read_text(encoding="utf-8")
    section = text.split("## Checks (stable ids)", 1)[1].split("Each result", 1)[0]
    assert re.findall(r"`([a-z_]+\.[a-z_]+)`", section) == list(CHECKS)
    words = {10: "ten", 11: "eleven", 12: "twelve", 13: "thirteen"}
    assert f"the {words[len(CHECKS)]} automated checks" in text


def test_the_partner_guide_states_the_hosts_own_limits() -> None:
    """The limits the partner guide names are the host's: the time a stopping host gives a plugin's
    threads (``SHUTDOWN_THREADS_S``), the largest storage document (``MAX_VALUE_BYTES``) and the
    bounds of a plugin's read cache in a worker."""
    from fulcrum_core.app import SHUTDOWN_THREADS_S
    from fulcrum_core.data.storage import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES
    from fulcrum_sdk.storage import MAX_VALUE_BYTES

    guide = " ".join((ROOT / "docs" / "partner-guide.md").read_text(encoding="utf-8").split())
    assert f"gets {SHUTDOWN_THREADS_S:g} seconds to return" in guide
    assert f"JSON documents of at most {MAX_VALUE_BYTES // 1024} KiB each" in guide
    entries, mib = f"{DEFAULT_CACHE_ENTRIES:,}".replace(",", " "), DEFAULT_CACHE_BYTES // 2**20
    assert f"up to {entries} of them and {mib} MiB in each worker" in guide


def test_the_partner_guide_states_a_plugins_share_of_the_default_executor() -> None:
    """The share of the loop's default executor the guide gives a plugin is the host's, and the error it
    names is the SDK's."""
    from fulcrum_core.app import _default_pool
    from fulcrum_sdk import errors

    pool = _default_pool()
    try:
        assert (pool._size.share, pool._size.base) == (8, 32)
    finally:
        pool.shutdown()
    guide = " ".join((ROOT / "docs" / "partner-guide.md").read_text(encoding="utf-8").split())
    assert "at most eight of your calls run there at once in each worker process" in guide
    assert "`fulcrum_sdk.errors.ThreadShareUsed`" in guide
    assert "ThreadShareUsed" in errors.__all__


def test_the_docs_say_where_errors_are_documented() -> None:
    """The README and the partner guide send readers to the served error catalogue, and say to switch
    on `code`; the route they name is the app's."""
    from fulcrum_core.api.problems import ROUTES

    assert {path for handler in ROUTES for path in handler.paths} == {"/problems", "/problems/{code:str}"}
    guide = (ROOT / "docs" / "partner-guide.md").read_text(encoding="utf-8")
    for text in (README, guide):
        assert "GET /problems" in text or "/problems>" in text
        assert "switch on `code`" in text


def test_the_partner_guide_states_the_deadline_left_to_a_hooks_tasks() -> None:
    """The deadlines the guide gives tasks a hook leaves running are the hooks' own defaults, and the
    metric it names is the one ``/metrics`` has."""
    from fulcrum_core.observability.shared_metrics import _SAMPLES
    from fulcrum_core.settings import Deadlines

    guide = " ".join((ROOT / "docs" / "partner-guide.md").read_text(encoding="utf-8").split())
    deadlines = Deadlines()
    assert deadlines.search == deadlines.feed_items
    stated = (
        f"({deadlines.home_slot_offers} ms on the home page, {deadlines.search} ms for search and feeds, "
        f"{deadlines.execute_transaction // 1000} s for a transaction)"
    )
    assert f"counted from when your hook was called {stated}" in guide
    assert "`fulcrum_plugin_leftover_tasks_total`" in guide
    assert "fulcrum_plugin_leftover_tasks_total" in _SAMPLES


def test_the_stall_figures_the_docs_give_are_the_defaults() -> None:
    """The partner guide's 100 ms and 300 ms, and the README's settings and metrics, are the host's."""
    from fulcrum_core.observability.shared_metrics import _SAMPLES
    from fulcrum_core.settings import Settings

    settings = Settings()
    guide = " ".join((ROOT / "docs" / "partner-guide.md").read_text(encoding="utf-8").split())
    readme = " ".join(README.split())
    hold = settings.breaker.open_on_loop_hold
    assert hold == 2
    assert f"held for {settings.loop_stall_ms} ms or more" in guide
    home_ms = hold * settings.deadlines.home_slot_offers
    stated = f"at a stretch for about twice a hook's deadline or more ({home_ms:g} ms on the home page)"
    assert stated in guide
    assert f"`FULCRUM_LOOP_STALL_MS`, default {settings.loop_stall_ms}" in readme
    for metric in ("fulcrum_event_loop_stalls_total", "fulcrum_event_loop_stalled_seconds_total"):
        assert f"`{metric}{{culprit}}`" in readme
        assert metric in _SAMPLES
