"""Display text: what the app shows a customer, or a reviewer reads, and the characters it refuses.

A plugin's banner title, icon label, popup and notice text, search hit, feed card, page, transaction
type and result, its manifest's name, description, owner and scope reasons (the consent page shows
them), a publisher's name, a branch's name and the platform's own home content are display text. Any
other character may appear in it, but these are refused, because they make the text read differently
from what it holds, or break the app's layout and the logs that quote it:

- bidi embeddings, overrides and isolates, U+202A–U+202E and U+2066–U+2069: they reorder the text
  around them when shown, so "转账 ¥\\u202e001" reads "转账 ¥100" and a domain can be made to look
  like the bank's (the Trojan Source attacks);
- control characters: C0 (U+0000–U+001F), DEL (U+007F) and C1 (U+0080–U+009F), tab and carriage return
  included; a line feed (U+000A) alone is allowed, and only in a body (a field named ``summary`` or
  ``description``), where it separates paragraphs: a title, label, name, value or reason is one line;
- U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: line breaks JSON carries unescaped, which a
  text view honours where the app lays out one line, and which split a log line;
- the deprecated format characters U+206A–U+206F (one makes digits show as other digits) and the
  interlinear annotation characters U+FFF9–U+FFFB (text between them may be shown or not).

Allowed on purpose: the LEFT-TO-RIGHT and RIGHT-TO-LEFT MARKs (U+200E, U+200F) and the ARABIC LETTER
MARK (U+061C): zero-width letters of one direction, they may move the punctuation beside them but
cannot reverse a run of letters or digits as an override does, and mixed Arabic or Hebrew and Latin
text needs them to show in order; the
ZERO WIDTH JOINER (U+200D) and non-joiner (U+200C), variation selectors and tag characters, which
emoji sequences (👨‍👩‍👧, flags) and many scripts are made of; a zero-width space, a line-break
opportunity. The result check scans a value's JSON once for any refused character and walks its fields
only when it finds one: about a microsecond, once per distinct result (results are memoized by value).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from types import UnionType
from typing import Annotated, Any, Final, Union, cast, get_args, get_origin, get_type_hints

import msgspec

__all__ = [
    "BODY_FIELDS", "DISPLAY_TEXT", "display_text_problem", "find_display_problem", "json_may_refuse",
]


class _DisplayText:
    """The mark of a text field that is display text, as metadata of ``Annotated[str, ...]``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DISPLAY_TEXT"


DISPLAY_TEXT: Final = _DisplayText()
"""Put in ``Annotated[str, ..., DISPLAY_TEXT]`` to make a text field display text (msgspec ignores it);
:class:`~fulcrum_sdk.models.LocalizedText`'s fields carry it, so every field holding one is display text."""

BODY_FIELDS: Final = frozenset({"summary", "description"})
"""Fields whose display text is a body: it may hold line feeds, which separate paragraphs."""

_SHAPING = "\u202a-\u202e\u2028\u2029\u2066-\u206f\ufff9-\ufffb"
_IN_A_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_SHAPING}]")
_IN_A_BODY = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_SHAPING}]")

_IN_JSON = re.compile(
    rb"\\[bfnrtu]|\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xaf]|\xef\xbf[\xb9-\xbb]"
)
"""Any refused character as msgspec writes it in JSON (UTF-8): a C0 control escaped (``\\n``,
``\\u001b``), DEL and C1 controls, separators and the rest as their UTF-8 bytes. It also matches a
backslash written before one of those letters: a pre-filter only, the walk decides."""

_CONTROL_NAMES = {
    0x00: "NULL", 0x07: "BELL", 0x08: "BACKSPACE", 0x09: "CHARACTER TABULATION", 0x0A: "LINE FEED",
    0x0B: "LINE TABULATION", 0x0C: "FORM FEED", 0x0D: "CARRIAGE RETURN", 0x1B: "ESCAPE", 0x7F: "DELETE",
    0x85: "NEXT LINE",
}
"""Names of the control characters that have none in ``unicodedata`` (their Unicode aliases)."""


def _named(char: str) -> str:
    code = ord(char)
    return f"U+{code:04X} {_CONTROL_NAMES.get(code) or unicodedata.name(char, 'CONTROL CHARACTER')}"


def display_text_problem(text: str, *, body: bool = False) -> str | None:
    """Why ``text`` is refused as display text (the first refused character: its code point, name and
    index), or ``None``; ``body``: a summary or description, where a line feed is allowed."""
    found = (_IN_A_BODY if body else _IN_A_LINE).search(text)
    if found is None:
        return None
    problem = f"{_named(found.group())} at index {found.start()} is not allowed in display text"
    if found.group() == "\n":
        problem += "; only a summary or a description may break lines"
    return problem


def json_may_refuse(encoded: bytes) -> bool:
    """False when ``encoded``, a value as ``msgspec.json.encode`` writes it, holds no character display
    text refuses anywhere (so :func:`find_display_problem` would find none): one scan of the bytes in C,
    where walking the value's fields costs a few microseconds. True means: look."""
    return _IN_JSON.search(encoded) is not None


_Problem = tuple[str, str]
"""Where (a field path, ``""`` for the value itself) and what."""
_Walk = Callable[[Any], _Problem | None]
_walks: dict[tuple[Any, bool], Any] = {}
_BUILDING: Final = object()
"""``_walks``' entry for a type being worked out (by the thread holding ``_building``)."""
_MISSING: Final = object()
_building = threading.RLock()


def _joined(head: str, tail: str) -> str:
    if not tail:
        return head
    return head + tail if tail.startswith("[") else f"{head}.{tail}"


def _text_walk(body: bool) -> _Walk:
    def walk(value: Any) -> _Problem | None:
        if isinstance(value, str):
            problem = display_text_problem(value, body=body)
            if problem is not None:
                return "", problem
        return None

    return walk


def _struct_walk(cls: type[msgspec.Struct], body: bool) -> _Walk | None:
    hints = get_type_hints(cls, include_extras=True)
    steps: list[tuple[str, str, _Walk]] = []
    for field in msgspec.structs.fields(cls):
        walk = _walk_of(hints[field.name], body or field.name in BODY_FIELDS)
        if walk is not None:
            steps.append((field.name, field.encode_name, walk))
    if not steps:
        return None

    def walk_struct(value: Any) -> _Problem | None:
        if not isinstance(value, cls):
            return None
        for name, label, step in steps:
            found = step(getattr(value, name))
            if found is not None:
                return _joined(label, found[0]), found[1]
        return None

    return walk_struct


def _items_walk(item: _Walk) -> _Walk:
    def walk(value: Any) -> _Problem | None:
        if isinstance(value, (tuple, list, frozenset, set)):
            for i, each in enumerate(value):
                found = item(each)
                if found is not None:
                    return _joined(f"[{i}]", found[0]), found[1]
        return None

    return walk


def _mapping_walk(key: _Walk | None, value_walk: _Walk | None) -> _Walk:
    def walk(value: Any) -> _Problem | None:
        if isinstance(value, dict):
            for k, v in value.items():
                own = key(k) if key is not None else None
                if own is not None:  # a key's own text: name the table, and the key escaped
                    return "", f"key {k!r:.80}: {own[1]}"
                found = value_walk(v) if value_walk is not None else None
                if found is not None:
                    return _joined(str(k), found[0]), found[1]
        return None

    return walk


def _walk_of(hint: Any, body: bool) -> _Walk | None:
    """How to find refused display text in a value of type ``hint`` (``None``: it holds none)."""
    key = (hint, body)
    try:
        walk = _walks.get(key, _BUILDING)
    except TypeError:  # a hint that cannot be hashed (metadata holding a dict): worked out each time
        return _build(hint, body)
    if walk is not _BUILDING:
        return cast("_Walk | None", walk)
    # Worked out by one thread at a time: while a type is, its entry is _BUILDING, which only the thread
    # working it out may read (as "nothing more": a type that refers to itself). A check in another thread
    # waits: reading it, that check would take the type as holding no display text and pass any character.
    with _building:
        walk = _walks.get(key, _MISSING)
        if walk is _BUILDING:
            return None  # a type that refers to itself adds nothing the second time round
        if walk is not _MISSING:
            return cast("_Walk | None", walk)
        _walks[key] = _BUILDING
        try:
            walk = _walks[key] = _build(hint, body)
        except BaseException:
            del _walks[key]
            raise
        return walk


def _build(hint: Any, body: bool) -> _Walk | None:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *metadata = get_args(hint)
        if any(m is DISPLAY_TEXT for m in metadata):
            return _text_walk(body)
        return _walk_of(base, body)
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        return _struct_walk(hint, body)
    if origin is Union or origin is UnionType:
        walks = [w for w in (_walk_of(arg, body) for arg in get_args(hint)) if w is not None]
        if not walks:
            return None
        if len(walks) == 1:
            return walks[0]

        def any_of(value: Any) -> _Problem | None:
            for each in walks:
                found = each(value)
                if found is not None:
                    return found
            return None

        return any_of
    if origin in (tuple, list, frozenset, set):
        args = [a for a in get_args(hint) if a is not Ellipsis]
        item = _walk_of(args[0], body) if len(args) == 1 else None
        return _items_walk(item) if item is not None else None
    if origin is dict:
        key_type, value_type = get_args(hint)
        key_walk, value_walk = _walk_of(key_type, body), _walk_of(value_type, body)
        return _mapping_walk(key_walk, value_walk) if key_walk or value_walk else None
    return None


def find_display_problem(value: msgspec.Struct) -> tuple[str, str] | None:
    """The first display text in ``value`` (a result, a manifest, a transaction type) that
    :func:`display_text_problem` refuses, as ``(field path, problem)`` (``title.zh-CN``,
    ``sections[1].lines[0].label.en``, ``scopes.required.profile:basic``), or ``None``. The fields to
    look at are worked out once per type, from its annotations."""
    walk = _walk_of(type(value), False)
    return walk(value) if walk is not None else None
