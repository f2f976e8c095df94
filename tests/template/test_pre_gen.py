"""The template's pre_gen hook refuses bad answers with a message naming each question, and bakes nothing."""

from __future__ import annotations

import ast
import json
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from fulcrum_sdk.manifest import RESERVED_PLUGIN_IDS, PluginId, PublisherId

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template"
PRE_GEN = TEMPLATE / "hooks" / "pre_gen_project.py"
FIRST_PARTY_IDS = ("wealth-checkup", "pension", "merchant-promo")
RESERVED = (
    "core", "sdk", "registry", "fulcrum", "admin", "test", "platform", "host", "unknown", *FIRST_PARTY_IDS
)
NO_HOOKS = {"home_slots": False, "search": False, "feed": False, "transactions": False}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize(
    ("answers", "question"),
    [
        ({"plugin_id": "City"}, "plugin_id"),
        ({"plugin_id": "c"}, "plugin_id"),
        ({"plugin_id": "city-"}, "plugin_id"),
        ({"plugin_id": "city_coupons"}, "plugin_id"),
        ({"plugin_id": "9-lives"}, "plugin_id"),
        ({"plugin_id": "a" * 51}, "plugin_id"),
        ({"plugin_id": "fulcrum-coupons"}, "plugin_id"),
        ({"plugin_id": "city--coupons"}, "plugin_id"),
        ({"publisher_id": "Bank Co"}, "publisher_id"),
        ({"publisher_id": "shenzhen", "publisher_kind": "branch"}, "publisher_id"),
        ({"publisher_id": "branch-0755", "publisher_kind": "partner"}, "publisher_id"),
        (NO_HOOKS, "hooks"),
        ({"plugin_name": ""}, "plugin_name"),
        ({"plugin_name": 'say "hi"'}, "plugin_name"),
        ({"plugin_name": "back\\slash"}, "plugin_name"),
        ({"plugin_name_en": " Padded"}, "plugin_name_en"),
        ({"description": "长" * 201}, "description"),
        ({"owner_name": " "}, "owner_name"),
        ({"owner_email": "nobody"}, "owner_email"),
    ],
    ids=[
        "uppercase-id", "one-letter-id", "trailing-hyphen", "underscore", "leading-digit", "too-long",
        "fulcrum-prefix", "double-hyphen", "bad-publisher", "branch-not-branch-code", "partner-as-branch",
        "no-hook", "empty-name", "quote", "backslash", "padded",
        "long-description", "blank-owner", "bad-email",
    ],
)
def test_bad_answers_are_refused_naming_the_question(
    bake: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, Any], question: str
) -> None:
    """Each bad answer stops the bake with exit status 1, a line naming the question, and no files."""
    result = bake(**answers)
    assert isinstance(result.exception, FailedHookException)
    assert result.project_path is None
    assert f"  - {question}:" in capfd.readouterr().err
    assert _files(tmp_path / "cookies") == []


@pytest.mark.parametrize("plugin_id", RESERVED)
def test_reserved_ids_are_refused(bake: Any, capfd: pytest.CaptureFixture[str], plugin_id: str) -> None:
    """Platform names and the first-party plugins' ids cannot be taken by a new plugin."""
    result = bake(plugin_id=plugin_id)
    assert isinstance(result.exception, FailedHookException)
    assert f"plugin_id: {plugin_id!r} is reserved" in capfd.readouterr().err


def test_a_reserved_id_derived_from_the_name_is_refused(bake: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """A name whose slug is a first-party id (Pension → pension) is caught even without an explicit id."""
    result = bake(plugin_name_en="Pension")
    assert isinstance(result.exception, FailedHookException)
    assert "plugin_id: 'pension' is reserved" in capfd.readouterr().err


def test_names_that_give_no_id_say_to_answer_the_id(bake: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """A name of punctuation alone slugs to nothing: the line says the id comes from the names and to
    answer it, not that '' (never typed) is not a valid id."""
    result = bake(plugin_name="！！", plugin_name_en="!!!")
    assert isinstance(result.exception, FailedHookException)
    err = capfd.readouterr().err
    assert "plugin_id: empty, and the plugin's names give none to propose ('!!!')" in err
    assert "-x plugin_id=city-coupons" in err
    assert "''" not in err


@pytest.mark.parametrize("key", ["plugin_id", "publisher_id"])
def test_consecutive_hyphens_are_refused_once_saying_why(
    bake: Any, capfd: pytest.CaptureFixture[str], key: str
) -> None:
    """An id with '--' is refused as the SDK refuses it, in one line naming the question and why: a
    project's name folds the hyphens, so city--coupons would be city-coupons."""
    result = bake(**{key: "city--coupons"})
    assert isinstance(result.exception, FailedHookException)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith(f"  - {key}:")]
    assert lines == [
        f"  - {key}: 'city--coupons' is not a valid id: use 2-50 lowercase letters, digits and hyphens, "
        "starting with a letter, not ending with a hyphen and no two in a row (e.g. 'city-coupons'); a "
        "project's name folds consecutive hyphens into one, so 'city--coupons' would be 'city-coupons' "
        "(fulcrum-city-coupons): use single hyphens"
    ]


def test_every_problem_is_reported_at_once(bake: Any, capfd: pytest.CaptureFixture[str]) -> None:
    """Several bad answers give one line each, so the developer fixes them in one go."""
    result = bake(plugin_id="Bad", owner_email="x", **NO_HOOKS)
    assert result.exit_code != 0
    err = capfd.readouterr().err
    assert [line.split(":")[0].strip() for line in err.splitlines() if line.startswith("  - ")] == [
        "- plugin_id", "- hooks", "- owner_email",
    ]


def test_an_unknown_kind_is_refused_by_the_choice_list(bake: Any, tmp_path: Path) -> None:
    """A publisher kind outside department|branch|partner is refused before anything is rendered."""
    result = bake(publisher_kind="bank")
    assert isinstance(result.exception, ValueError)
    assert "publisher_kind" in str(result.exception)
    assert _files(tmp_path / "cookies") == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"publisher_kind": "bank"}, "publisher_kind: 'bank' is not a publisher kind"),
        ({"search": "maybe"}, "search: answer yes or no"),
    ],
    ids=["kind", "not-a-boolean"],
)
def test_a_tampered_replay_file_is_refused_by_the_hook(
    bake: Any, tmp_path: Path, cookiecutter_config: Path, capfd: pytest.CaptureFixture[str],
    change: dict[str, str], message: str,
) -> None:
    """Answers that skip cookiecutter's own checks (a replay file) still meet the pre_gen hook."""
    good = bake()
    assert good.exit_code == 0, good.exception
    replay = json.loads((good.project_path / ".cookiecutter.json").read_text(encoding="utf-8"))
    replay["cookiecutter"].update(change)
    replay_file = tmp_path / "tampered.json"
    replay_file.write_text(json.dumps(replay), encoding="utf-8")
    capfd.readouterr()
    with pytest.raises(FailedHookException):
        cookiecutter(
            str(TEMPLATE), replay=str(replay_file), output_dir=str(tmp_path / "out"),
            config_file=str(cookiecutter_config),
        )
    assert message in capfd.readouterr().err
    assert _files(tmp_path / "out") == []


def _hook_constant(name: str) -> Any:
    """The value of a module-level constant in the pre_gen hook, read without running it."""
    for node in ast.parse(PRE_GEN.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            call = node.value
            assert isinstance(call, ast.Call)
            return ast.literal_eval(call.args[0])
    raise AssertionError(f"{name} not found in {PRE_GEN}")


def test_the_hooks_id_rule_is_the_manifests() -> None:
    """The hook checks ids with the pattern fulcrum_sdk.manifest validates plugin and publisher ids with."""
    for annotated in (PluginId, PublisherId):
        assert _hook_constant("ID_PATTERN") == typing.get_args(annotated)[1].pattern


def test_every_first_party_plugin_id_is_reserved() -> None:
    """Each entry-point name under plugins/ is in the hook's reserved list (a new first-party plugin too)."""
    reserved = _hook_constant("RESERVED_IDS")
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        assert set(project["entry-points"]["fulcrum"]) <= reserved, pyproject
    assert set(RESERVED) == reserved
    assert reserved >= RESERVED_PLUGIN_IDS  # what the manifest refuses, the template refuses first
