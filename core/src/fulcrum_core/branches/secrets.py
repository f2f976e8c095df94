"""Secret references in plugin settings: ``$env:NAME`` and ``$file:PATH``, never literal values.

A setting whose key looks secret (its name contains ``secret``, ``token``, ``password`` or ``key``)
must hold a reference. References are resolved only into the plugin's own settings; every view
meant for people (the admin endpoint, logs, ``fulcrum branch check``) shows the reference or ``***``.
The key test is deliberately broad: a false alarm costs a rename, a miss leaks a credential.

A reference reaches only what the operator put there for plugins: ``$env:`` names a variable of the
``FULCRUM_SECRET_`` namespace (never the host's own configuration, such as its database URL or
pairwise secret, nor anything else in its environment), and ``$file:`` a file inside the branch
directory (a relative path, no ``..``, no symbolic link out of it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from fulcrum_core.branches.model import SettingValue

__all__ = [
    "ENV_PREFIX",
    "REDACTED",
    "SecretRef",
    "SecretUnavailableError",
    "looks_secret",
    "parse_reference",
    "redact",
    "reference_problem",
    "resolve",
    "setting_text",
]

REDACTED = "***"
_SECRET_WORDS = ("secret", "token", "password", "key")
_REFERENCE = re.compile(r"^\$(?P<scheme>env|file):(?P<target>.+)$")
ENV_PREFIX = "FULCRUM_SECRET_"
_ENV_NAME = re.compile(r"^FULCRUM_SECRET_[A-Za-z0-9_]+\Z")
_FILE_PATH = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[^\\\x00]+\Z")  # relative, no "..", no backslash


class SecretRef(msgspec.Struct, frozen=True):
    """A parsed reference: where the value lives, not the value."""

    scheme: Literal["env", "file"]
    target: str

    def __str__(self) -> str:
        return f"${self.scheme}:{self.target}"


class SecretUnavailableError(Exception):
    """A reference cannot be resolved here (variable unset, file unreadable); names no value."""


def looks_secret(key: str) -> bool:
    """True when a setting's name says it holds a credential (``api_token``, ``signingKey``, ...)."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _is_reference_like(value: SettingValue) -> bool:
    return isinstance(value, str) and value.startswith(("$env:", "$file:"))


def parse_reference(value: SettingValue) -> SecretRef | None:
    """The reference ``value`` spells, or None for a literal or a malformed reference."""
    if not isinstance(value, str):
        return None
    match = _REFERENCE.match(value)
    if match is None:
        return None
    target = match["target"]
    if match["scheme"] == "file":
        return SecretRef("file", target) if _FILE_PATH.match(target) else None
    return SecretRef("env", target) if _ENV_NAME.match(target) else None


def reference_problem(key: str, value: SettingValue) -> str | None:
    """Why this setting is unacceptable, or None. Never quotes a value that might be a secret."""
    if _is_reference_like(value) and parse_reference(value) is None:
        return (
            f'is not a valid reference; use "$env:{ENV_PREFIX}NAME" (letters, digits, _) or "$file:PATH" '
            "(relative, inside the branch directory)"
        )
    if looks_secret(key) and parse_reference(value) is None:
        return f'holds a literal secret; use a reference: "$env:{ENV_PREFIX}NAME" or "$file:PATH"'
    return None


def redact(key: str, value: SettingValue) -> SettingValue:
    """What people may see: a reference as written, a secret-looking literal as ``***``."""
    ref = parse_reference(value)
    if ref is not None:
        return str(ref)
    return REDACTED if looks_secret(key) else value


def setting_text(value: SettingValue) -> str:
    """A literal setting as the text a plugin receives (booleans as TOML writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve(value: SettingValue, *, environ: Mapping[str, str], base_dir: Path) -> str:
    """The text a plugin receives: a reference resolved, a literal as text.

    ``$file:`` paths are relative to ``base_dir`` (the branch directory); trailing newlines are
    dropped. Raises :class:`SecretUnavailableError` naming the reference, never any value.
    """
    ref = parse_reference(value)
    if ref is None:
        return setting_text(value)
    if ref.scheme == "env":
        if ref.target not in environ:
            raise SecretUnavailableError(f"{ref} is not set")
        return environ[ref.target]
    root = base_dir.resolve()
    path = (root / ref.target).resolve()
    if not path.is_relative_to(root):  # a symbolic link out of the branch directory
        raise SecretUnavailableError(f"{ref} leads out of the branch directory")
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretUnavailableError(f"{ref} cannot be read: {type(exc).__name__}") from None
