"""One problem in a branch configuration file, named by file and key path, readable as one line."""

from __future__ import annotations

import msgspec
from fulcrum_sdk.display import display_text_problem

__all__ = ["BranchProblem", "toml_key"]


class BranchProblem(msgspec.Struct, frozen=True):
    """What is wrong (``problem``) at ``key`` (a dotted TOML key path, ``""`` for the whole file)."""

    file: str
    key: str
    problem: str

    @property
    def line(self) -> str:
        """``branches/0755.toml: plugins.merchant-promo.rollout: 130 is out of range 0–100``."""
        if self.key:
            return f"{self.file}: {self.key}: {self.problem}"
        return f"{self.file}: {self.problem}"

    def __str__(self) -> str:
        return self.line


def toml_key(*parts: str) -> str:
    """Join key parts as TOML would write them, quoting parts that are not bare keys (a character that
    would not show as itself escaped, ``"title\\u2067"``).

    ``toml_key("plugins", "x", "pin", "home.banner/v1")`` → ``plugins.x.pin."home.banner/v1"``.
    """
    out = []
    for part in parts:
        if part and all((c.isalnum() and c.isascii()) or c in "-_" for c in part):
            out.append(part)
        else:
            out.append("".join(map(_escaped, msgspec.json.encode(part).decode())))
    return ".".join(out)


def _escaped(char: str) -> str:
    """``char`` as a quoted TOML key holds it: escaped when display text refuses it or it does not print
    (a bidi override in a key made the problem's line read otherwise), else itself."""
    if char.isprintable() and display_text_problem(char) is None:
        return char
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"
