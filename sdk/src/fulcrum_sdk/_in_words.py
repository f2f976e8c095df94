"""msgspec's validation messages in words whoever wrote the JSON or TOML can act on.

msgspec says ``Expected `int`, got `str` ``, ``Object contains unknown field `typ` `` and ``Invalid enum
value 'starer'``: Python types, and no word of what would do. The type decoded knows what would (its
fields, a ``Literal``'s values), so the words are derived from it, never written out per field. The host,
the registry, the manifest, branch files and settings all word their refusals here.
"""

from __future__ import annotations

import difflib
import enum
import re
import types
import typing
from collections.abc import Iterable
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ID_ECHO",
    "NOT_UTF8",
    "bound_problem",
    "choices_of",
    "did_you_mean",
    "dotted",
    "echoed",
    "in_words",
    "not_json",
    "one_of",
    "pattern_problem",
    "pattern_words",
    "split_message",
    "struct_at",
    "type_at",
    "value_at",
    "worded",
]

_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_NAMED = re.compile(r"^Object (?P<what>missing required|contains unknown) field `(?P<name>[^`]+)`$")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.+)$")
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_STEP = re.compile(r"\[\.\.\.\]|\[\d+\]|[^.\[\]]+")
_REGEX = re.compile(r"^Expected `str` matching regex (?P<quoted>.+)\Z")
_BOUND = re.compile(r"^Expected `(?:int|float)` (?P<op>>=|>|<=|<) (?P<n>\S+)\Z")
_MULTIPLE = re.compile(r"^Expected `(?:int|float)` that's a multiple of (?P<n>\S+)\Z")
_LENGTH = re.compile(r"^Expected `(?P<kind>str|bytes|array|object)` of length (?P<op><=|>=) (?P<n>\d+)\Z")

_NOUNS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "array": "a list",
    "null": "null",
}
"""What each of msgspec's type names is, in words (``object`` is the caller's: a JSON object, a table)."""


_PATTERN_WORDS: dict[str, str] = {}
"""What each pattern a value is checked against takes, in words, by the pattern as msgspec quotes it (its
``repr``): the one place the words live, whoever is refused (a client, a partner, a branch, the host)."""


def worded(pattern: str, words: str) -> str:
    """``pattern``, remembered with what it takes in ``words`` (``an e-mail address such as ...``): every
    refusal of a value that fails it says the words, never the regular expression."""
    _PATTERN_WORDS[repr(pattern)] = words
    return pattern


def pattern_words(pattern: str) -> str | None:
    """What ``pattern`` takes, in words, when :func:`worded` was told; else ``None``."""
    return _PATTERN_WORDS.get(repr(pattern))


def pattern_problem(problem: str) -> str | None:
    """msgspec's ``Expected `str` matching regex '...'`` (without its path) as ``must be <words>`` when the
    pattern was :func:`worded`; ``None`` for any other problem or an unworded pattern."""
    quoted = _REGEX.match(problem)
    words = _PATTERN_WORDS.get(quoted["quoted"]) if quoted else None
    return f"must be {words}" if words else None


_BOUND_WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than"}
_UNITS = {"str": "character", "bytes": "byte", "array": "item", "object": "entry"}


def bound_problem(problem: str, value: Any = None) -> str | None:
    """msgspec's refusal of a number out of its bounds or of text, bytes, a list or a table of the wrong
    length (without its path) in words: ``must be at least 1`` for ``Expected `int` >= 1``, ``must be at
    most 2048 characters; it has 2051`` for ``Expected `str` of length <= 2048`` (how many it has when the
    ``value`` refused is given), ``must not be empty`` for a length of at least 1; ``None`` for any other
    problem. msgspec's words name a Python type and, for a length, not the one sent."""
    if bound := _BOUND.match(problem):
        return f"must be {_BOUND_WORDS[bound['op']]} {bound['n']}"
    if multiple := _MULTIPLE.match(problem):
        return f"must be a multiple of {multiple['n']}"
    length = _LENGTH.match(problem)
    if length is None:
        return None
    n = int(length["n"])
    if length["op"] == ">=" and n == 1:
        return "must not be empty"
    unit = _UNITS[length["kind"]]
    units = unit if n == 1 else "entries" if unit == "entry" else f"{unit}s"
    has = f"; it has {len(value)}" if isinstance(value, str | bytes | list | dict) else ""
    verb = "hold" if length["kind"] in ("array", "object") else "be"
    return f"must {verb} {'at most' if length['op'] == '<=' else 'at least'} {n} {units}{has}"


_TRUNCATED = "Input data was truncated"
"""msgspec's words for JSON that stops before its closing quote, bracket or brace."""
NOT_UTF8 = "a string in it is not UTF-8"
"""The problem of a JSON body holding bytes that are not UTF-8 (msgspec raises ``UnicodeDecodeError``)."""


_LONE_HIGH_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*)(\\u[dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)
"""A ``\\uD800``–``\\uDBFF`` escape (after an even run of backslashes: an escape, not escaped text) that no
low-surrogate escape follows: msgspec says "Input data was truncated" about it."""


def not_json(problem: str, body: bytes | None = None) -> str:
    """Why a request body is refused as JSON, ``problem`` being msgspec's ``DecodeError`` message (or
    :data:`NOT_UTF8`): a body cut short says what is missing, not msgspec's "Input data was truncated";
    given the ``body``, half a UTF-16 surrogate pair, which msgspec calls truncated too, is named with its
    byte. Every JSON body the host reads is refused in these words, whichever route decoded it."""
    if problem == _TRUNCATED:
        lone = _LONE_HIGH_SURROGATE.search(body) if body else None
        if lone is not None:
            problem = (
                f"the escape '{lone[2].decode()}' at byte {lone.start(2)} is the first half of a UTF-16 "
                "surrogate pair without its second (a \\uDC00–\\uDFFF escape right after it); send the "
                "character as UTF-8 or as both escapes"
            )
        else:
            problem = "the body ends before the JSON does (a closing quote, bracket or brace is missing)"
    return f"the body is not valid JSON: {problem}"


ID_ECHO = 64
"""Characters of an id quoted back in a problem's detail: the longest id the platform issues fits."""


def echoed(sent: str, limit: int = ID_ECHO) -> str:
    """``sent`` quoted for an error message, escaped as Python writes it (a control or bidi character as
    ``\\u202e``); longer than ``limit``, its first ``limit`` characters, an ellipsis and its length, so a
    300-character value is not sent or logged back whole."""
    if len(sent) <= limit:
        return repr(sent)
    return f"{sent[:limit] + '…'!r} ({len(sent)} characters)"


def value_at(data: Any, path: str) -> Any:
    """The value at msgspec's ``path`` (``action.uri``, ``targeting.segments[0]``) in ``data`` decoded
    without a type (dicts and lists); ``None`` where the path leads nowhere (a table's ``[...]``)."""
    for step in _STEP.findall(path):
        if step.startswith("[") and step != "[...]" and isinstance(data, list):
            index = int(step[1:-1])
            data = data[index] if index < len(data) else None
        elif not step.startswith("[") and isinstance(data, dict):
            data = data.get(step)
        else:
            return None
    return data


def split_message(message: str) -> tuple[str, str]:
    """msgspec's ``"problem - at `$.a.b[0]`"`` as (``a.b[0]``, ``problem``)."""
    at = _AT.search(message)
    return (at["path"], message[: at.start()]) if at else ("", message)


def dotted(path: str) -> str:
    """A msgspec path with list indexes as the project names fields: ``reasons[1]`` is ``reasons.1``."""
    return re.sub(r"\[(\d+)\]", r".\1", path).lstrip(".")


def did_you_mean(name: str, known: Iterable[str], *, cutoff: float = 0.75) -> str:
    """``; did you mean port?`` when ``name`` nearly spells one of ``known``, else nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]}?" if close else ""


def one_of(sent: str, allowed: Iterable[str]) -> str:
    """``'starer' is not one of: starter, plus; did you mean starter?``"""
    allowed = [str(a) for a in allowed]
    return f"{sent!r} is not one of: {', '.join(allowed)}{did_you_mean(sent, allowed)}"


def _bare(kind: Any) -> Any:
    """``X`` for ``Annotated[X, …]`` and ``X | None``; any other type as it is."""
    while typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if (isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union) and len(args) == 1:
        return _bare(args[0])
    return kind


def type_at(kind: Any, path: str) -> Any:
    """The type at msgspec's ``path`` into ``kind`` (``plugins[...].storage_quota``, ``reasons[0]``): each
    name a field, ``[...]`` a table's value, ``[0]`` a list's item; ``None`` where it leads nowhere."""
    return _bare(_declared_at(kind, path))


def _declared_at(kind: Any, path: str) -> Any:
    """The type at ``path`` as the field declares it, ``Annotated`` and optional as it may be."""
    for step in _STEP.findall(path):
        kind = _bare(kind)
        args = typing.get_args(kind)
        if step == "[...]":
            kind = args[1] if typing.get_origin(kind) is dict and len(args) == 2 else None
        elif step.startswith("["):
            kind = args[0] if typing.get_origin(kind) in (list, tuple, set, frozenset) and args else None
        elif isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            kind = {f.encode_name: f.type for f in msgspec.structs.fields(kind)}.get(step)
        else:
            return None
    return kind


def _description(kind: Any) -> str | None:
    """The ``description`` of the ``Meta`` a declared type (optional or not) carries, if any."""
    while kind is not None:
        if typing.get_origin(kind) is Annotated:
            described = [m.description for m in kind.__metadata__ if isinstance(m, msgspec.Meta)]
            if any(described):
                return next(d for d in described if d)
            kind = typing.get_args(kind)[0]
            continue
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        union = isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
        kind = args[0] if union and len(args) == 1 else None
    return None


def struct_at(kind: Any, path: str) -> type[msgspec.Struct] | None:
    """The Struct at msgspec's ``path`` into ``kind``, or ``None`` where the path leads to no Struct."""
    found = type_at(kind, path)
    return found if isinstance(found, type) and issubclass(found, msgspec.Struct) else None


def choices_of(kind: Any) -> list[str] | None:
    """The values a ``Literal`` or ``Enum`` type (optional or annotated alike) takes, in declared order."""
    kind = _bare(kind)
    if typing.get_origin(kind) is Literal:
        return [str(v) for v in typing.get_args(kind)]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return [str(m.value) for m in kind]
    return None


def in_words(
    kind: Any, message: str, *, an_object: str = "a JSON object", field: str = "field"
) -> tuple[str, str]:
    """msgspec's ``message`` about decoding ``kind`` as (the field's msgspec path, the problem in words).

    A missing or unknown field is named in the path; an unknown one gets the fields there are and a
    did-you-mean, an enum value the values allowed, a value of the wrong type what it must be (a whole
    number of fen for a ``*_fen`` field); ``an_object`` is what an object is called where it was written
    (``a table`` in TOML) and ``field`` what a field is (``key``), text failing a pattern what it must be
    (:func:`worded`, else the field's ``Meta(description=...)``), a bound or a length what it must be
    (:func:`bound_problem`). Anything else keeps msgspec's words."""
    path, problem = split_message(message)
    if (must_be := pattern_problem(problem)) is not None:
        return path, must_be
    if _REGEX.match(problem) and (described := _description(_declared_at(kind, path))):
        return path, f"must be {described}"  # a pattern of a plugin's own, in the words its field gives
    named = _NAMED.match(problem)
    if named:
        at = f"{path}.{named['name']}" if path else named["name"]
        if named["what"] == "missing required":
            return at, "is required"
        owner = struct_at(kind, path)
        if owner is None:
            return at, f"is not a {field} here"
        names = [f.encode_name for f in msgspec.structs.fields(owner)]
        known = f"(the {field}s are: {', '.join(names)}){did_you_mean(named['name'], names)}"
        return at, f"is not a {field} here {known}"
    bad = _ENUM.match(problem)
    if bad and (allowed := choices_of(type_at(kind, path))):
        sent = bad["value"].strip("'")
        return path, f"{bad['value']} is not one of: {', '.join(allowed)}{did_you_mean(sent, allowed)}"
    expected = _EXPECTED.match(problem)
    if expected:
        nouns = [an_object if w == "object" else _NOUNS.get(w) for w in expected["want"].split(" | ")]
        if all(nouns):
            if path.rpartition(".")[2].endswith("_fen"):
                nouns = [f"{n} of fen" if n == "a whole number" else n for n in nouns]
            words = typing.cast("list[str]", nouns)
            return path, f"must be {', '.join(words[:-1]) + ' or ' if len(words) > 1 else ''}{words[-1]}"
    if (out_of_bounds := bound_problem(problem)) is not None:
        return path, out_of_bounds
    return path, problem
