"""What the docs tell the platform team is the host's: the metrics they name are in a real ``/metrics``
scrape, with the labels they give; the ``fulcrum`` command lines they show take the options shown; and
the routes the operations guide names are the app's."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tests.test_docs import DOCS, ROOT

GUIDE = ROOT / "docs" / "operations.md"

_METRIC = re.compile(r"(?<![\w/])(fulcrum_[a-z_]*[a-z])(?![\w./-])(\{[^}\n]*\})?")
"""A ``fulcrum_…`` name that is not part of a module path (``fulcrum_core.settings``, ``src/fulcrum_x/``),
with the label braces after it, if any: ``{plugin,hook,state}`` or ``{state="open"}``."""

_NOT_METRICS = frozenset({"fulcrum_conformance"})
"""Names the docs use that are neither metrics nor importable: the SDK's pytest fixture."""

_COMMAND = re.compile(r"\bfulcrum((?: [a-z][a-z-]*)+)([^`|;)#\n]*)")
"""``fulcrum`` and its command words, then the rest of the command up to a shell separator or comment."""

_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")

_ROUTE = re.compile(r"`(?:GET |POST )?(/[a-z0-9/_-]+)`")
"""A route the guide names in code: ``/readyz``, ``GET /v1/plugins``."""


_FENCED = r"^[ \t]*```[a-z]*\n(.*?)^[ \t]*```"
"""A fenced code block, its fences at the start of a line or indented under a list item."""


def _docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS)


def _code(text: str) -> Iterator[str]:
    """Every fenced code block's lines (indented ones in a list item too) and every inline code span of
    ``text``."""
    for block in re.findall(_FENCED, text, re.S | re.M):
        yield from block.splitlines()
    prose = re.sub(_FENCED, "", text, flags=re.S | re.M)
    yield from re.findall(r"`([^`\n]+)`", prose)


def _resolve(main: click.Group, words: list[str]) -> tuple[click.Command, list[str]]:
    """The command the leading ``words`` name, and those words; the rest are its arguments."""
    command: click.Command = main
    path: list[str] = []
    for word in words:
        if not isinstance(command, click.Group):
            break
        sub = command.get_command(click.Context(command), word)
        if sub is None:
            break
        command, path = sub, [*path, word]
    return command, path


@pytest.fixture
def scrape(make_app: Any, kit: Any) -> dict[str, set[str]]:
    """A real ``/metrics`` scrape with a sample in every family: metric and sample name → label names."""
    from fulcrum_core.data.storage import SqlPluginStorage
    from fulcrum_core.observability.setup import runtime_metrics

    def boom(ctx: Any) -> Any:
        raise RuntimeError("down")

    app = make_app(
        kit.plugin("good", home_slot_offers=lambda ctx: [kit.offer("home.banner", "b")]),
        kit.plugin("bad", home_slot_offers=boom),
    )
    assert app.get("/v1/home").status_code == 200
    metrics = runtime_metrics(app.runtime)
    assert metrics is not None
    metrics.observe_leftover("bad", "home_slot_offers", "cancelled")  # as the dispatcher reports them
    metrics.observe_stall("bad", 0.2)
    SqlPluginStorage(app.runtime.db, "good").put("a", {"n": 1})
    staff = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    response = app.get("/metrics", token=staff)
    assert response.status_code == 200
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.samples, f"{family.name}: no sample, so its labels are unknown here"
        for sample in family.samples:
            names = set(sample.labels) - {"le"}
            labels.setdefault(family.name, set()).update(names)
            labels.setdefault(sample.name, set()).update(names)
    return labels


def test_the_metrics_the_docs_name_are_scraped_with_their_labels(scrape: dict[str, set[str]]) -> None:
    """Every metric the docs name is a family or a sample of a real scrape; labels listed after it
    (``{plugin,hook,outcome}``) are all of its labels, and labels a selector uses (``{state="open"}``)
    are among them."""
    named: dict[str, set[str]] = {}
    for name, braces in _METRIC.findall(_docs_text()):
        if name in _NOT_METRICS or importlib.util.find_spec(name) is not None:
            continue
        named.setdefault(name, set()).add(braces)
    assert "fulcrum_plugin_calls_total" in named  # the pattern finds the operations guide's names
    unknown = sorted(name for name in named if name not in scrape)
    assert unknown == [], f"named in the docs, not in /metrics: {unknown}; it has {sorted(scrape)}"
    wrong = []
    for name, all_braces in sorted(named.items()):
        for braces in sorted(all_braces - {""}):
            given = {part.split("=")[0].rstrip("!~").strip() for part in braces.strip("{}").split(",")}
            listed = "=" not in braces
            if (given != scrape[name]) if listed else not given <= scrape[name]:
                wrong.append(f"{name}{braces}: its labels are {sorted(scrape[name])}")
    assert wrong == []


def test_the_command_lines_the_docs_show_take_their_options() -> None:
    """Every ``fulcrum …`` line in the docs' code is a command whose ``--help`` answers (a misspelt
    command or subcommand is named, not read as an argument), and every ``--option`` given after it is
    one of its options."""
    from fulcrum_core.cli import main

    runner, checked, wrong = CliRunner(), set(), []
    for line in (code for path in DOCS for code in _code(path.read_text(encoding="utf-8"))):
        for words, rest in _COMMAND.findall(line):
            command, path = _resolve(main, words.split())
            if not path or (isinstance(command, click.Group) and len(words.split()) > len(path)):
                wrong.append(f"fulcrum{words}: no such command")
                continue
            if tuple(path) not in checked:
                checked.add(tuple(path))
                result = runner.invoke(main, [*path, "--help"])
                if result.exit_code != 0:
                    wrong.append(f"fulcrum {' '.join(path)} --help: exit {result.exit_code}")
            options = {opt for param in command.params for opt in param.opts}
            wrong += [f"fulcrum {' '.join(path)}: no option {opt}" for opt in _OPTION.findall(rest)
                      if opt not in options and opt != "--help"]
    assert ("db", "upgrade") in checked  # the pattern finds the guide's commands
    assert ("registry", "suspend") in checked
    assert ("keys", "retire") in checked  # a block indented under a list item
    assert wrong == []


def test_the_routes_the_operations_guide_names_are_the_apps(make_app: Any) -> None:
    """``/readyz``, ``GET /v1/plugins`` and every other route the guide names is served."""
    app = make_app()
    served = {route.path for route in app.client.app.routes}
    named = set(_ROUTE.findall(GUIDE.read_text(encoding="utf-8")))
    assert {"/healthz", "/readyz", "/metrics", "/v1/plugins"} <= named
    assert sorted(named - served) == []
