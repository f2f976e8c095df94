"""Minimal TOML for test manifests and settings: the tests' one writer (no TOML writer is a dependency)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["to_toml"]


def _is_tables(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, Mapping) for v in value)


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """``data`` as TOML: JSON strings, numbers and arrays are valid TOML values; tables and arrays of
    tables (``[[oauth.jwks.keys]]``) get their own headers."""
    lines = [
        f"{json.dumps(k)} = {json.dumps(v, ensure_ascii=False)}"
        for k, v in data.items()
        if not isinstance(v, Mapping) and not _is_tables(v)
    ]
    for key, value in data.items():
        name = f"{prefix}{json.dumps(key)}"
        if isinstance(value, Mapping):
            lines += ["", f"[{name}]", to_toml(value, name + ".")]
        elif _is_tables(value):
            for table in value:
                lines += ["", f"[[{name}]]", to_toml(table, name + ".")]
    return "\n".join(lines)
