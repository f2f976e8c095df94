"""Fixtures for baking the plugin template: one baked project per hook combination, and helpers."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "template"
HOOK_QUESTIONS = ("home_slots", "search", "feed", "transactions")
KINDS = ("partner", "department", "branch")
COMBOS: list[tuple[bool, ...]] = [c for c in itertools.product((True, False), repeat=4) if any(c)]


def combo_id(combo: tuple[bool, ...]) -> str:
    """``(True, False, True, False)`` → ``home_slots+feed``."""
    return "+".join(q for q, on in zip(HOOK_QUESTIONS, combo, strict=True) if on)


def combo_answers(combo: tuple[bool, ...]) -> dict[str, Any]:
    """Answers choosing the hooks in ``combo``; the plugin id and the publisher kind vary with it."""
    index = COMBOS.index(combo)
    kind = KINDS[index % len(KINDS)]
    return {
        **dict(zip(HOOK_QUESTIONS, combo, strict=True)),
        "plugin_name": f"组合{index}",
        "plugin_name_en": f"Combo {index}",
        "publisher_kind": kind,
        **({"publisher_id": "branch-0755"} if kind == "branch" else {}),  # a branch's publisher id
    }


class Baked:
    """A baked project: where it is and the answers cookiecutter used."""

    def __init__(self, path: Path, context: dict[str, Any]) -> None:
        self.path = path
        self.context = context
        self.package: str = context["__package"]
        self.plugin_id: str = context["plugin_id"]

    def chose(self, question: str) -> bool:
        """Whether the hook question was answered yes."""
        return bool(self.context[question])


@pytest.fixture(scope="session", autouse=True)
def _hook_scripts_kept_apart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Cookiecutter leaves each hook script it runs in the temporary directory (two a bake, thousands a
    run): the bakes here write them under the run's own temporary directories, which pytest prunes."""
    import tempfile

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("cookiecutter-hooks")))
        yield


@pytest.fixture
def bake(cookies: Any) -> Callable[..., Any]:
    """Bake the repository's template with ``extra_context``; returns pytest-cookies' Result."""

    def _bake(**extra: Any) -> Any:
        return cookies.bake(extra_context=extra, template=str(TEMPLATE))

    return _bake


@pytest.fixture(scope="module", params=COMBOS, ids=combo_id)
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
    """The template baked once per module for each of the 15 hook combinations."""
    result = cookies_session.bake(extra_context=combo_answers(request.param), template=str(TEMPLATE))
    assert result.exit_code == 0, result.exception
    return Baked(result.project_path, dict(result.context))


def import_baked(baked: Baked) -> ModuleType:
    """Import a baked package from its source tree, writing no bytecode into the project."""
    init = baked.path / "src" / baked.package / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        baked.package, init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[baked.package] = module  # msgspec resolves the Structs' annotations through it
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


@pytest.fixture
def baked_module(baked: Baked) -> Iterator[ModuleType]:
    """The baked plugin package, imported in this process and forgotten afterwards."""
    module = import_baked(baked)
    yield module
    for name in [n for n in sys.modules if n == baked.package or n.startswith(baked.package + ".")]:
        del sys.modules[name]


@pytest.fixture
def cookiecutter_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cookiecutter user config keeping replay files and clones inside the test's directory."""
    config = tmp_path / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {(tmp_path / 'cookiecutters').as_posix()}\n"
        f"replay_dir: {(tmp_path / 'replay').as_posix()}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
    return config
