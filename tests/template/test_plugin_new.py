"""``fulcrum plugin new``: cookiecutter's questions behind the fulcrum command line, scriptable with -x."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fulcrum_core.cli import plugin as plugin_cli
from fulcrum_sdk.manifest import MANIFEST_FILE, parse_manifest, semantic_problems

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template"
New = Callable[..., Result]
CITY = ["-x", "plugin_name=城市优惠", "-x", "plugin_name_en=City Coupons", "-x", "publisher_id=meituan-local"]


@pytest.fixture
def new(tmp_path: Path, cookiecutter_config: Path) -> New:
    """Run ``fulcrum plugin new ARGS`` into the test's directory, with FULCRUM_TEMPLATE unset."""

    def _new(*args: str, input: str | None = None) -> Result:
        args = ("new", "-o", str(tmp_path), *args)
        return CliRunner().invoke(plugin_cli.plugin, args, input=input, env={"FULCRUM_TEMPLATE": None})

    return _new


def test_no_input_with_extra_context_creates_the_project(new: New, tmp_path: Path) -> None:
    """--no-input plus -x answers bakes fulcrum-<id> and prints the next steps through to submission,
    ``fulcrum plugin check`` before it (submitting runs the registry's checks but never the hooks)."""
    result = new("--no-input", *CITY, "-x", "search=no")
    assert result.exit_code == 0, result.output
    project = tmp_path / "fulcrum-city-coupons"
    assert f"Created {project}" in result.output
    wheel = project / "dist" / "fulcrum_city_coupons-0.1.0-py3-none-any.whl"
    assert f"uv pip install {ROOT / 'sdk'} -e . pytest && uv run --no-sync pytest" in result.output
    lines = [line.strip() for line in result.output.splitlines()]
    check = lines.index(f"cd {ROOT} && uv run fulcrum plugin check {project}")
    assert lines.index("uv build --wheel") < check
    submit = f"uv run fulcrum registry submit {wheel} --publisher meituan-local --as "
    assert lines[check + 1].startswith(submit)
    manifest_path = project / "src" / "fulcrum_city_coupons" / MANIFEST_FILE
    manifest = parse_manifest(manifest_path.read_bytes(), file=str(manifest_path))
    assert (manifest.id, manifest.publisher) == ("city-coupons", "meituan-local")
    assert semantic_problems(manifest) == []
    assert "search" not in manifest.hooks
    assert not (project / "tests" / "test_search.py").exists()


def test_the_questions_are_asked_when_input_is_allowed(new: New, tmp_path: Path) -> None:
    """Without --no-input cookiecutter prompts; answering the name and accepting defaults bakes it."""
    answers = "\n".join(["社区团购", "Community Deals", "", "", "2", "", "", "", "n", "", "", "", ""]) + "\n"
    result = new(input=answers)
    assert result.exit_code == 0, result.output
    recorded = json.loads((tmp_path / "fulcrum-community-deals" / ".cookiecutter.json").read_text("utf-8"))
    assert recorded["cookiecutter"]["plugin_name"] == "社区团购"
    assert recorded["cookiecutter"]["publisher_kind"] == "department"
    assert recorded["cookiecutter"]["transactions"] is False


def test_a_project_made_inside_the_workspace_gets_the_workspaces_next_steps(
    new: New, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``-o plugins`` in the checkout (the project's README suggests it) makes a workspace member: there
    ``uv run`` uses the repository's environment and ``uv build`` writes to the repository's ``dist/``,
    so the steps are ``uv sync --all-packages`` and commands from the root. Before, the standalone
    steps were printed: their tests failed to import the plugin, and their wheel path did not exist."""
    checkout = tmp_path / "fulcrum"
    (checkout / "plugins").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text(
        '[tool.uv.workspace]\nmembers = ["sdk", "core", "plugins/*"]\n', encoding="utf-8"
    )
    (checkout / "template").symlink_to(TEMPLATE, target_is_directory=True)
    monkeypatch.setattr(plugin_cli, "find_template", lambda start=None: checkout / "template")
    result = new("--no-input", *CITY, "-o", str(checkout / "plugins"))
    assert result.exit_code == 0, result.output
    steps = [line.strip() for line in result.output.splitlines()]
    wheel = checkout / "dist" / "fulcrum_city_coupons-0.1.0-py3-none-any.whl"
    first = next(i for i, line in enumerate(steps) if line.startswith("Next steps"))
    assert steps[first + 1 :][:5] == [
        f"cd {checkout}",
        "uv sync --all-packages && uv run pytest plugins/fulcrum-city-coupons",
        "uv build --package fulcrum-city-coupons --wheel",
        "uv run fulcrum plugin check plugins/fulcrum-city-coupons",
        f"uv run fulcrum registry submit {wheel} --publisher meituan-local "
        "--as plugins@meituan-local.example.com",
    ]
    assert "uv venv" not in result.output


def test_bad_answers_fail_with_the_hooks_explanation(
    new: New, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A reserved id exits 1, the hook's line names the question, and no project directory is left."""
    result = new("--no-input", "-x", "plugin_id=pension")
    assert result.exit_code == 1
    assert "the template refused the answers" in result.output
    assert "plugin_id: 'pension' is reserved" in capfd.readouterr().err
    assert not (tmp_path / "fulcrum-pension").exists()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("publisher_kind=bank", "bank provided for choice variable publisher_kind"),
        ("search=perhaps", "search could not be converted to a boolean"),
        ("plugin_name={{ oops", "must not contain template syntax"),
        ("plugin_name={{ oops }}", "must not contain template syntax"),
    ],
    ids=["unknown-kind", "not-yes-or-no", "broken-jinja", "undefined-jinja"],
)
def test_answers_cookiecutter_refuses_are_one_line_errors(new: New, answer: str, message: str) -> None:
    """Answers refused before the hook runs exit 1 with one line naming the problem, no traceback."""
    result = new("--no-input", "-x", answer)
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-x", "colour=red"], "unknown question(s) colour"),
        (["-x", "plugin_id"], "is not KEY=VALUE"),
        (["-x", "=x"], "is not KEY=VALUE"),
    ],
    ids=["unknown-key", "no-equals", "empty-key"],
)
def test_malformed_extra_context_is_a_usage_error(new: New, args: list[str], message: str) -> None:
    """A typo in -x is refused (exit 2) instead of being silently ignored by cookiecutter."""
    result = new("--no-input", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_an_output_directory_that_cannot_be_made_is_a_one_line_error(new: New, tmp_path: Path) -> None:
    """``-o`` under a file (or anywhere the user may not write) says where and why, not a traceback."""
    (tmp_path / "notes.txt").write_text("", encoding="utf-8")
    result = new("--no-input", *CITY, "-o", str(tmp_path / "notes.txt" / "plugins"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot create the project directory ")
    assert str(tmp_path / "notes.txt" / "plugins" / "fulcrum-city-coupons") in result.output
    assert "Not a directory" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_existing_project_is_not_overwritten_unless_asked(new: New, tmp_path: Path) -> None:
    """A second bake of the same id fails with a hint; --overwrite-if-exists rewrites it."""
    assert new("--no-input", *CITY).exit_code == 0
    again = new("--no-input", *CITY)
    assert again.exit_code == 1
    assert "--overwrite-if-exists" in again.output
    assert "Error: Error:" not in again.output  # cookiecutter's "Error: " prefix is not said twice
    assert new("--no-input", *CITY, "--overwrite-if-exists").exit_code == 0


def test_the_replay_file_bakes_the_same_answers(new: New, tmp_path: Path) -> None:
    """--replay-file with a project's .cookiecutter.json bakes the same project elsewhere."""
    assert new("--no-input", *CITY, "-x", "feed=no").exit_code == 0
    recorded = tmp_path / "fulcrum-city-coupons" / ".cookiecutter.json"
    other = tmp_path / "other"
    args = ["new", "-o", str(other), "--replay-file", str(recorded)]
    result = CliRunner().invoke(plugin_cli.plugin, args, env={"FULCRUM_TEMPLATE": None})
    assert result.exit_code == 0, result.output
    assert (other / "fulcrum-city-coupons" / ".cookiecutter.json").read_bytes() == recorded.read_bytes()
    assert not (other / "fulcrum-city-coupons" / "tests" / "test_feed.py").exists()


def test_replay_and_extra_context_together_are_refused(new: New, tmp_path: Path) -> None:
    """--replay-file already holds every answer, so combining it with -x is a usage error."""
    replay = tmp_path / "answers.json"
    replay.write_text("{}", encoding="utf-8")
    result = new("--replay-file", str(replay), "-x", "search=no")
    assert result.exit_code == 2
    assert "--replay-file already holds every answer" in result.output


def test_the_template_is_found_in_this_checkout(tmp_path: Path) -> None:
    """find_template locates template/ above the package, and nothing above an unrelated path."""
    assert plugin_cli.find_template() == TEMPLATE
    assert plugin_cli.find_template(tmp_path / "x.py") is None


def test_without_a_template_the_command_says_how_to_give_one(
    new: New, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When no template is found (a wheel install), the error tells the developer to pass --template."""
    monkeypatch.setattr(plugin_cli, "find_template", lambda start=None: None)
    result = new("--no-input")
    assert result.exit_code == 2
    assert "pass --template" in result.output


def test_an_explicit_template_path_is_used(
    new: New, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--template points at a template directory, so an installed fulcrum can bake from a checkout."""
    monkeypatch.setattr(plugin_cli, "find_template", lambda start=None: None)
    result = new("--no-input", "--template", str(TEMPLATE), *CITY)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fulcrum-city-coupons" / "pyproject.toml").is_file()


@pytest.mark.parametrize(
    ("members", "project", "member"),
    [
        ('members = ["plugins/*"]', "plugins/fulcrum-x", "plugins/fulcrum-x"),
        ('members = ["plugins/*"]', "plugins/team/fulcrum-x", None),
        ('members = ["plugins/*"]\nexclude = ["plugins/fulcrum-x"]', "plugins/fulcrum-x", None),
        ('members = ["plugins/*"]\nexclude = ["plugins/old-*"]', "plugins/fulcrum-x", "plugins/fulcrum-x"),
    ],
    ids=["member", "nested-deeper", "excluded", "another-excluded"],
)
def test_a_workspace_member_is_one_uv_takes_for_one(
    tmp_path: Path, members: str, project: str, member: str | None
) -> None:
    """A glob's ``*`` stays inside one directory, as uv reads it, and ``exclude`` leaves a project out:
    ``-o plugins/team`` or an excluded directory makes a standalone project, told the standalone steps."""
    (tmp_path / "pyproject.toml").write_text(f"[tool.uv.workspace]\n{members}\n", encoding="utf-8")
    assert plugin_cli._workspace_member(tmp_path, tmp_path / project) == member


def test_a_bake_leaves_no_hook_scripts_behind(
    new: New, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cookiecutter writes each hook to a temporary file it never removes: every bake left two scripts in
    the system's temporary directory (thousands on a machine that bakes in its tests). ``plugin new``
    gives cookiecutter a scratch directory of its own for the bake, removed after it, refused or not."""
    import tempfile

    scratch = tmp_path / "system-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert new("--no-input", *CITY).exit_code == 0
    assert new("--no-input", "-x", "plugin_id=Bad Id").exit_code == 1
    assert sorted(p.name for p in scratch.iterdir()) == []
