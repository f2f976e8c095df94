"""Reading branch files: TOML text → typed ``HqFile`` / ``BranchFile`` plus every problem found.

msgspec stops at the first validation error of a value, so each key of each plugin entry (and each
pin and setting inside it) is converted on its own: one pass reports every bad key, each with its key
path and the problem in words (``must be true or false``, the keys there are and a did-you-mean).
The partly parsed file is still returned so ``validate`` can add what it finds.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from fulcrum_sdk._in_words import did_you_mean, in_words
from fulcrum_sdk.display import display_text_problem, find_display_problem
from fulcrum_sdk.manifest import ID_WORDS
from fulcrum_sdk.models import LocalizedText

from fulcrum_core.branches.model import (
    BRANCH_CODE_PATTERN,
    HQ_FILE,
    PLUGIN_ID_PATTERN,
    BranchFile,
    BranchPluginEntry,
    HqFile,
    HqPluginEntry,
    SettingValue,
)
from fulcrum_core.branches.problems import BranchProblem, toml_key

__all__ = ["branch_code_of", "not_read", "parse_branch", "parse_hq", "read_directory"]

_E = TypeVar("_E", bound=BranchPluginEntry)
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_TOP_KEYS = ("name", "plugins")
_NOT_READ = (
    "not read: the host reads only hq.toml and <code>.toml files, named in lowercase and ending in .toml "
    "exactly; rename it (e.g. 0755.toml) or move it out of the directory"
)


def _is_read(path: Path) -> bool:
    return path.suffix == ".toml" and not path.name.startswith(".")


def not_read(directory: Path) -> list[BranchProblem]:
    """Files in ``directory`` named like branch files that the host skips (``0755.TOML``,
    ``0755.toml.bak``, ``0755.tml``). Hidden files (editor swap files) and other names are left alone.

    Raises ``OSError`` when the directory cannot be listed.
    """
    problems = []
    for path in sorted(directory.iterdir()):
        lowered = [suffix.lower() for suffix in path.suffixes]
        looks_like = any(s.startswith(".toml") or s == ".tml" for s in lowered)
        if looks_like and not _is_read(path) and not path.name.startswith(".") and path.is_file():
            problems.append(BranchProblem(str(path), "", _NOT_READ))
    return problems


def branch_code_of(path: str | Path) -> str | None:
    """The branch code a file name stands for (``0755.toml`` → ``0755``); None for ``hq.toml``.

    Raises ``ValueError`` with the reason when the name is neither.
    """
    name = Path(path).name
    if name == HQ_FILE:
        return None
    stem, dot, ext = name.rpartition(".")
    if not dot or ext != "toml" or not BRANCH_CODE_PATTERN.match(stem) or stem == "hq":
        raise ValueError(
            "a branch file is named <code>.toml with a code of lowercase letters, digits and '-' "
            "(e.g. 0755.toml); the HQ file is hq.toml"
        )
    return stem


_TABLE = "a table"
"""What msgspec calls an ``object``, as a branch file's author wrote it."""
_NAMES_TABLE = 'a table of names by language, such as { zh-CN = "上海分行", en = "Shanghai" }'


def _unknown_key(name: str, allowed: tuple[str, ...]) -> str:
    """An unknown key's problem: the keys there are, and the one it nearly spells."""
    if name == "mandatory" and "mandatory" not in allowed:
        return f"only {HQ_FILE} can make a plugin mandatory"
    return f"unknown key; expected one of: {', '.join(allowed)}{did_you_mean(name, allowed)}"


def _field_problem(
    file: str, prefix: tuple[str, ...], exc: msgspec.ValidationError, kind: Any = None,
    an_object: str = _TABLE,
) -> BranchProblem:
    """Turn msgspec's message about a value of type ``kind`` into (key path, problem in words) under
    ``prefix``."""
    message = str(exc)
    match = _AT.search(message)
    path = match["path"] if match else ""
    problem = message[: match.start()] if match else message
    # Inside an entry msgspec's paths are bare field names and [indices]: keep them as written.
    base = toml_key(*prefix)
    key = base + path if path.startswith("[") else ".".join(k for k in (base, path) if k)
    if missing := _MISSING.match(problem):
        key = ".".join(k for k in (key, toml_key(missing["name"])) if k)
        problem = "required key is missing"
    else:
        problem = in_words(kind, message, an_object=an_object)[1]
    return BranchProblem(file, key, problem)


def _items(
    file: str, prefix: tuple[str, ...], raw: object, value_type: Any, problems: list[BranchProblem]
) -> dict[str, Any]:
    """Convert each item of a table on its own so every bad item is reported with its key."""
    if not isinstance(raw, dict):
        problems.append(BranchProblem(file, toml_key(*prefix), f"expected a table, got {type(raw).__name__}"))
        return {}
    good: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            good[key] = msgspec.convert(value, value_type)
        except msgspec.ValidationError as exc:
            problems.append(_field_problem(file, (*prefix, key), exc, value_type))
    return good


def _shown_settings(
    file: str, prefix: tuple[str, ...], settings: dict[str, Any], problems: list[BranchProblem]
) -> dict[str, Any]:
    """The settings whose key and text value are one line of display text; each other one is a problem.
    The value reaches the customer (a plugin makes a banner's title of it), the staff's view of the
    configuration and the plugin's logs; the key those two."""
    good: dict[str, Any] = {}
    for key, value in settings.items():
        where = toml_key(*prefix, "settings", key)
        if (problem := display_text_problem(key)) is not None:
            problems.append(BranchProblem(file, where, f"key: {problem.partition('; ')[0]}"))
        elif isinstance(value, str) and (problem := display_text_problem(value)) is not None:
            if problem.startswith("U+000A "):  # the display text hint names summaries: say a setting's
                problem = problem.partition("; ")[0] + "; a setting is one line"
            problems.append(BranchProblem(file, where, problem))
        else:
            good[key] = value
    return good


def _entry(
    file: str, plugin_id: str, raw: object, entry_type: type[_E], problems: list[BranchProblem]
) -> _E | None:
    prefix = ("plugins", plugin_id)
    if not PLUGIN_ID_PATTERN.match(plugin_id):
        problem = f"not a plugin id: must be {ID_WORDS}"
        problems.append(BranchProblem(file, toml_key(*prefix), problem))
        return None
    if not isinstance(raw, dict):
        problems.append(BranchProblem(file, toml_key(*prefix), f"expected a table, got {type(raw).__name__}"))
        return None
    data = dict(raw)
    if "pin" in data:
        data["pin"] = _items(file, (*prefix, "pin"), data["pin"], int, problems)
    if "settings" in data:
        data["settings"] = _items(file, (*prefix, "settings"), data["settings"], SettingValue, problems)
        data["settings"] = _shown_settings(file, prefix, data["settings"], problems)
    # msgspec stops at an entry's first bad key: each key is judged on its own, so all are reported.
    fields = {f.encode_name: f.type for f in msgspec.structs.fields(entry_type)}
    found = len(problems)
    for key, value in data.items():
        if key not in fields:
            problems.append(BranchProblem(file, toml_key(*prefix, key), _unknown_key(key, tuple(fields))))
            continue
        try:
            msgspec.convert(value, fields[key])
        except msgspec.ValidationError as exc:
            problems.append(_field_problem(file, (*prefix, key), exc, fields[key]))
        else:
            if key == "allow":  # pilots' customer numbers: the staff's view and the check's lines show them
                for i, customer_id in enumerate(value):
                    if (shown := display_text_problem(customer_id)) is not None:
                        problems.append(BranchProblem(file, f"{toml_key(*prefix, key)}[{i}]", shown))
    if len(problems) > found:
        return None
    try:
        return msgspec.convert(data, entry_type)
    except msgspec.ValidationError as exc:  # a check across keys
        problems.append(_field_problem(file, prefix, exc, entry_type))
        return None


def _parse(
    content: bytes, file: str, entry_type: type[_E]
) -> tuple[dict[str, Any] | None, list[BranchProblem]]:
    """The top-level fields (``name`` converted, ``plugins`` as typed entries) and the problems."""
    problems: list[BranchProblem] = []
    try:
        # A UTF-8 byte-order mark (Windows editors write one) is no TOML error: it was "Invalid statement".
        raw = msgspec.toml.decode(content.removeprefix(codecs.BOM_UTF8))
    except msgspec.DecodeError as exc:
        return None, [BranchProblem(file, "", f"not valid TOML: {exc}")]
    except UnicodeDecodeError as exc:  # msgspec raises it for bytes that are not UTF-8
        return None, [BranchProblem(file, "", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
    if not isinstance(raw, dict):  # pragma: no cover - TOML documents are always tables
        return None, [BranchProblem(file, "", "expected a TOML table")]
    fields: dict[str, Any] = {}
    unknown = [key for key in raw if key not in _TOP_KEYS]
    problems += [BranchProblem(file, toml_key(key), _unknown_key(key, _TOP_KEYS)) for key in unknown]
    if "name" in raw:
        try:
            name = msgspec.convert(raw["name"], LocalizedText)
        except msgspec.ValidationError as exc:
            problems.append(_field_problem(file, ("name",), exc, LocalizedText, _NAMES_TABLE))
        else:
            # The app shows the branch's name: no bidi control, control character or line separator.
            shown = find_display_problem(name)
            if shown is None:
                fields["name"] = name
            else:
                problems.append(BranchProblem(file, f"name.{shown[0]}", shown[1]))
    plugins = raw.get("plugins", {})
    if not isinstance(plugins, dict):
        problems.append(BranchProblem(file, "plugins", f"expected a table, got {type(plugins).__name__}"))
        plugins = {}
    entries = {}
    for plugin_id, entry_raw in plugins.items():
        entry = _entry(file, plugin_id, entry_raw, entry_type, problems)
        if entry is not None:
            entries[plugin_id] = entry
    fields["plugins"] = entries
    return fields, problems


def parse_hq(content: bytes, file: str) -> tuple[HqFile | None, list[BranchProblem]]:
    """Parse ``hq.toml``; None only when the text is not TOML at all."""
    fields, problems = _parse(content, file, HqPluginEntry)
    return (HqFile(**fields) if fields is not None else None), problems


def parse_branch(content: bytes, file: str) -> tuple[BranchFile | None, list[BranchProblem]]:
    """Parse a branch file; None only when the text is not TOML at all."""
    fields, problems = _parse(content, file, BranchPluginEntry)
    return (BranchFile(**fields) if fields is not None else None), problems


def read_directory(directory: Path) -> tuple[dict[str, bytes | None], list[BranchProblem]]:
    """Every ``*.toml`` file in ``directory`` by name; an unreadable file maps to None plus a problem,
    and a file named nearly so (``0755.TOML``), which is not read, is a problem too.

    Raises ``OSError`` when the directory itself cannot be listed, so a caller can tell "the files
    are gone" from "the disk hiccupped".
    """
    files: dict[str, bytes | None] = {}
    problems = not_read(directory)
    for path in sorted(p for p in directory.iterdir() if _is_read(p)):
        try:
            files[path.name] = path.read_bytes()
        except OSError as exc:
            files[path.name] = None
            problems.append(BranchProblem(str(path), "", f"cannot read: {exc.strerror or exc}"))
    return files, problems
