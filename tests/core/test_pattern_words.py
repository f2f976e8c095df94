"""Every pattern a value is checked against says what it takes in words (``worded``): whoever is refused,
a client, a partner, a branch team or the platform team, reads the words, never the regular expression."""

from __future__ import annotations

import typing
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import msgspec
import pytest
from fulcrum_sdk._in_words import echoed, in_words, pattern_problem, pattern_words, value_at, worded


def _patterns(kind: Any, seen: set[Any]) -> set[str]:
    """The patterns of every ``Meta`` in ``kind``, the Structs it holds included."""
    if typing.get_origin(kind) is Annotated:
        base, *metadata = typing.get_args(kind)
        found = {m.pattern for m in metadata if isinstance(m, msgspec.Meta) and m.pattern is not None}
        return found | _patterns(base, seen)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        if kind in seen:
            return set()
        seen.add(kind)
        hints = typing.get_type_hints(kind, include_extras=True)
        return set().union(*(_patterns(hint, seen) for hint in hints.values()))
    return set().union(*(_patterns(arg, seen) for arg in typing.get_args(kind)))


def _modules() -> list[ModuleType]:
    from fulcrum_core import settings
    from fulcrum_core.api import registry_models
    from fulcrum_core.branches import model as branches
    from fulcrum_registry import schemas
    from fulcrum_sdk import manifest, models, oauth_client

    return [models, manifest, oauth_client, settings, registry_models, branches, schemas]


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_every_pattern_a_struct_checks_is_worded(module: ModuleType) -> None:
    seen: set[Any] = set()
    structs = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, msgspec.Struct)]
    patterns = set().union(*(_patterns(struct, seen) for struct in structs))
    assert [p for p in sorted(patterns) if pattern_words(p) is None] == []


def test_every_pattern_a_route_parameter_checks_is_worded_or_described(tmp_path: Path) -> None:
    """A query, path or header parameter's pattern: the route's own description, else the pattern's words."""
    from fulcrum_core.app import build_runtime, create_app
    from fulcrum_core.settings import load_settings

    settings = load_settings(environ={}, state_dir=str(tmp_path))
    app = create_app(settings, runtime=build_runtime(settings, load_entry_points=False))
    unworded = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            for name, definition in handler.parsed_fn_signature.parameters.items():
                limits = definition.kwarg_definition
                pattern = getattr(limits, "pattern", None)
                if pattern is not None and not limits.description and pattern_words(pattern) is None:
                    unworded.append(f"{route.path} {name}")
    assert unworded == []


def test_a_worded_pattern_is_refused_in_its_words_and_any_other_keeps_msgspecs() -> None:
    """The words are found by the pattern as msgspec quotes it, quotes and backslashes included."""
    said = worded(r"^it's \d+(?!\n)$", "digits after it's")
    kind = Annotated[str, msgspec.Meta(pattern=said)]
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert({"a": "x"}, dict[str, kind])  # type: ignore[valid-type]
    assert in_words(dict[str, kind], str(refused.value)) == ("[...]", "must be digits after it's")
    unknown = Annotated[str, msgspec.Meta(pattern=r"^q(?!\n)$")]
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert("x", unknown)
    assert pattern_problem(str(refused.value)) is None
    assert in_words(unknown, str(refused.value))[1] == str(refused.value)


def test_the_value_at_a_path_is_found_and_echoed_escaped() -> None:
    data = {"action": {"uri": "x"}, "targeting": {"segments": ["a", "b\u202e"]}}
    assert value_at(data, "action.uri") == "x"
    assert echoed(value_at(data, "targeting.segments[1]")) == "'b\\u202e'"
    assert value_at(data, "targeting.segments[5]") is None
    assert value_at(data, "data[...]") is None
